"""The LightningModule for expression classification: model, loss, optimiser, metrics.

Methods with their own losses (DACL's sparse center loss, Emotion-GCN's CCC, FMPN's mask loss)
subclass :class:`ClassificationTask` and override :meth:`ClassificationTask.compute_loss` and
:meth:`ClassificationTask.optimizer_parameters` or ``configure_optimizers``; nothing here knows
how many devices run it.

Determinism: at every training step the global torch generator is reseeded from
``(seed, global_step, rank)``, so augmentation and dropout draw the same numbers whether a run
went straight through or was resumed from a checkpoint.
"""

from __future__ import annotations

import math
import os

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
import torchmetrics

from ..data.transforms import BatchAugment, crop_batch, normalize
from ..errors import OpenferError, RecipeError
from ..losses import distillation_loss
from ..models.ensemble import input_mismatch, load_ensemble
from ..models.registry import create_model


def step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


def _start_from(model: torch.nn.Module, init: str, recipe: dict) -> None:
    """Fine-tuning: copy the weights of ``model.init`` (a weight file or shipped name) into the
    recipe's freshly built model, which must be the same architecture. With other classes (RAF-DB
    compound's 11 from the default's 7) every weight but the classifier's is copied, and the
    classifier starts afresh: the layers whose first dimension is the class count."""
    from ..models.registry import load_model

    try:
        source = load_model(init)
    except OpenferError as exc:
        raise RecipeError(f"recipe {recipe['name']}: model.init: {exc}") from None
    if source.meta.architecture != model.meta.architecture:
        raise RecipeError(
            f"recipe {recipe['name']}: model.init {init!r} is {source.meta.architecture}; "
            f"model.name builds {model.meta.architecture}: start from weights of the same "
            "architecture")
    state, own = source.state_dict(), model.state_dict()
    if tuple(source.meta.classes) != tuple(model.meta.classes):
        k_source, k_model = len(source.meta.classes), len(model.meta.classes)
        head = {key for key, value in state.items()
                if value.ndim and value.shape[0] == k_source and own[key].shape[0] == k_model}
        clash = [key for key in state if key not in head and state[key].shape != own[key].shape]
        if not head or clash or k_source == k_model:
            raise RecipeError(
                f"recipe {recipe['name']}: model.init {init!r} has classes "
                f"{list(source.meta.classes)}; the model has {list(model.meta.classes)}, and "
                "its classifier cannot be told apart from the rest: give model.args.classes "
                "the same classes, or no model.init")
        state = {key: value for key, value in state.items() if key not in head}
        missing = model.load_state_dict(state, strict=False).missing_keys
        assert set(missing) == head, missing
        return
    model.load_state_dict(state)


class ClassificationTask(L.LightningModule):
    """Cross-entropy training of any registered classifier from a recipe."""

    def __init__(self, recipe: dict):
        super().__init__()
        self.save_hyperparameters({"recipe": recipe})
        self.recipe = recipe
        self.model = create_model(recipe["model"]["name"], **(recipe["model"]["args"] or {}))
        if recipe["model"].get("init"):
            _start_from(self.model, recipe["model"]["init"], recipe)
        size = recipe["data"].get("image_size")
        if size:
            side = size if isinstance(size, int) else size[0]
            self.model.meta = self.model.meta.replace(
                crop_fraction=self.model.meta.input_size[0] / side)
        self.meta = self.model.meta
        self.augment = BatchAugment.from_config(recipe.get("augment"))
        #: Training inputs per face (10 with ``augment.ten_crop``; each label repeated as many).
        self.views_per_face = self.augment.views_per_face if self.augment is not None else 1
        self.seed = int(recipe["trainer"]["seed"])
        self.channels_last = bool(recipe["trainer"].get("channels_last"))
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        k = self.meta.num_classes
        self.register_buffer("class_weights", torch.ones(k), persistent=False)
        self.val_accuracy = torchmetrics.classification.MulticlassAccuracy(k, average="micro")
        self.val_mean_class_accuracy = torchmetrics.classification.MulticlassAccuracy(
            k, average="macro")
        self.val_macro_f1 = torchmetrics.classification.MulticlassF1Score(k, average="macro")
        self.heads_trained: set[str] = set()
        self._init_distillation(recipe)

    def _init_distillation(self, recipe: dict) -> None:
        """The frozen teacher ensemble of ``distill.teachers`` (not a submodule: it is neither
        trained nor saved in checkpoints) and the mixup switch."""
        distill = recipe.get("distill") or {}
        teachers = list(distill.get("teachers") or [])
        self.mixup = self.augment is not None and self.augment.mixup > 0
        self.distill_alpha = float(distill.get("alpha", 0.0))
        self.distill_temperature = float(distill.get("temperature", 1.0))
        self.soft_targets = (recipe.get("loss") or {}).get("soft_targets")
        if (teachers or self.mixup or self.soft_targets or self.views_per_face > 1) and \
                type(self).training_step is not ClassificationTask.training_step:
            raise RecipeError(f"recipe {recipe['name']}: distill.teachers, augment.mixup, "
                              f"augment.ten_crop and loss.soft_targets work with method "
                              f"'classification', not {recipe['method']!r}")
        object.__setattr__(self, "teacher", None)
        if not teachers:
            return
        teacher = load_ensemble(teachers)
        mismatch = input_mismatch(teacher.meta, self.meta)
        if mismatch:
            key, value, reference = mismatch
            raise RecipeError(
                f"recipe {recipe['name']}: distill.teachers: the teachers' {key} is {value!r} "
                f"but {recipe['model']['name']}'s is {reference!r}; a teacher must read the "
                "student's input")
        if self.channels_last:
            teacher = teacher.to(memory_format=torch.channels_last)
        object.__setattr__(self, "teacher", teacher)

    def on_fit_start(self) -> None:
        if self.teacher is not None:
            self.teacher.to(self.device)

    # -- which extra heads learnt something ------------------------------------------------------
    #: Checkpoint key of the extra heads whose labels training has seen (``meta.heads_trained``
    #: of the weights written from it; inference shows only those heads).
    HEADS_TRAINED = "openfer_heads_trained"

    def record_trained_head(self, name: str) -> None:
        """Note that head ``name`` was fitted to at least one label (multi-task tasks call it)."""
        self.heads_trained.add(name)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[self.HEADS_TRAINED] = sorted(self._heads_trained_everywhere())

    def _heads_trained_everywhere(self) -> set[str]:
        """The heads trained on any process: in a distributed run each process sees its own
        share of the data, so a head labelled only in another's is gathered from it (every
        process saves a checkpoint together, as Lightning requires, so this collective is met
        by all)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered: list = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, sorted(self.heads_trained))
            self.heads_trained = set().union(*map(set, gathered))
        return self.heads_trained

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.heads_trained = set(checkpoint.get(self.HEADS_TRAINED, ()))

    # -- set-up --------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if self.trainer.world_size > 1 and self.device.type == "cpu":
            # Share the machine's cores between the processes instead of oversubscribing them.
            torch.set_num_threads(max(1, (os.cpu_count() or 2) // self.trainer.world_size))
        weights = self.recipe["loss"].get("class_weights")
        if weights is None:
            return
        if weights == "balanced":
            counts = np.bincount(self.trainer.datamodule.train_set.labels,
                                 minlength=self.meta.num_classes).astype(np.float64)
            values = counts.sum() / (len(counts) * np.maximum(counts, 1))
        else:
            values = np.asarray(weights, dtype=np.float64)
            if values.shape != (self.meta.num_classes,):
                raise ValueError(f"loss.class_weights needs {self.meta.num_classes} values or "
                                 "'balanced'")
        self.class_weights.copy_(torch.as_tensor(values, dtype=torch.float32))

    # -- steps ---------------------------------------------------------------------------------
    def crop_and_augment(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """Crop to the input size (one of five at random in training, if asked) and augment;
        every channel of ``x`` gets the same geometry (FMPN stacks its mask onto the face)."""
        five = bool(self.augment is not None and self.augment.five_crop and train)
        x = crop_batch(x, tuple(self.meta.input_size), random_five=five)
        if train and self.augment is not None:
            x = self.augment(x)
        return x

    def prepare_input(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        x = normalize(self.crop_and_augment(x, train), self.meta)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    @property
    def target_kinds(self) -> dict[str, str]:
        """Per-sample targets the data module attaches to every batch: the soft targets."""
        return {self.soft_targets: "distribution"} if self.soft_targets else {}

    def soft_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy against a label distribution (FER+'s crossentropy mode, Barsoum et al.
        2016), with the recipe's label smoothing and the model's regularisation."""
        smoothing = float(self.recipe["loss"]["label_smoothing"])
        targets = targets.float() * (1.0 - smoothing) + smoothing / targets.shape[1]
        loss = -(targets * F.log_softmax(logits.float(), dim=1)).sum(1).mean()
        regularization = getattr(self.model, "regularization_loss", None)
        return loss + regularization() if regularization is not None else loss

    def compute_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits, labels, weight=self.class_weights,
                               label_smoothing=float(self.recipe["loss"]["label_smoothing"]))
        regularization = getattr(self.model, "regularization_loss", None)
        return loss + regularization() if regularization is not None else loss

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        torch.manual_seed(step_seed(self.seed, self.global_step, self.global_rank))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels, *extra = batch
        soft = extra[0][self.soft_targets] if extra and self.soft_targets else None
        x = self.prepare_input(images, train=True)
        if self.views_per_face > 1:                     # augment.ten_crop: ten inputs a face
            labels = labels.repeat_interleave(self.views_per_face)
            soft = soft.repeat_interleave(self.views_per_face, 0) if soft is not None else None
        if self.mixup:
            x, partner, lam = self.augment.mix(x)
        logits = self(x)

        def loss_of(index=slice(None)):
            return self.compute_loss(logits, labels[index]) if soft is None else \
                self.soft_loss(logits, soft[index])
        loss = loss_of()
        if self.mixup:
            loss = lam * loss + (1.0 - lam) * loss_of(partner)
        if self.teacher is not None:
            with torch.no_grad():
                teacher_logits = self.teacher(x)
            soft = distillation_loss(logits, teacher_logits, self.distill_temperature)
            self.log("train/distillation_loss", soft, on_step=False, on_epoch=True)
            loss = (1.0 - self.distill_alpha) * loss + self.distill_alpha * soft
        accuracy = (logits.argmax(1) == labels).float().mean()
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True)
        self.log("train/accuracy", accuracy, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def update_validation_metrics(self, logits: torch.Tensor, labels: torch.Tensor,
                                  loss: torch.Tensor | None = None) -> None:
        """Accuracy, mean class accuracy, macro-F1 and ``val/loss`` of one validation batch
        (``loss``: the method's own, else the cross-entropy of ``logits``)."""
        self.val_accuracy.update(logits, labels)
        self.val_mean_class_accuracy.update(logits, labels)
        self.val_macro_f1.update(logits, labels)
        if loss is None:
            loss = F.cross_entropy(logits, labels)
        self.log("val/loss", loss, on_epoch=True, sync_dist=True, batch_size=len(labels))

    def validation_step(self, batch, batch_idx: int) -> None:
        images, labels = batch[:2]
        self.update_validation_metrics(self(self.prepare_input(images, train=False)), labels)

    def on_validation_epoch_end(self) -> None:
        self.log("val/accuracy", self.val_accuracy.compute(), prog_bar=True)
        self.log("val/mean_class_accuracy", self.val_mean_class_accuracy.compute())
        self.log("val/macro_f1", self.val_macro_f1.compute())
        for metric in (self.val_accuracy, self.val_mean_class_accuracy, self.val_macro_f1):
            metric.reset()

    # -- optimisation --------------------------------------------------------------------------
    def optimizer_parameters(self):
        """What the optimiser updates: the parameters, or parameter groups with their own lr."""
        return self.model.parameters()

    def configure_optimizers(self):
        optimizer = build_optimizer(self.recipe["optimizer"], self.optimizer_parameters())
        scheduler = build_scheduler(self.recipe["scheduler"], optimizer,
                                    int(self.trainer.estimated_stepping_batches),
                                    self.trainer.max_epochs, self.recipe["trainer"]["monitor"])
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


def build_optimizer(config: dict, parameters) -> torch.optim.Optimizer:
    name = config["name"]
    lr, wd = float(config["lr"]), float(config["weight_decay"])
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=wd, betas=tuple(config["betas"]))
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=wd, betas=tuple(config["betas"]))
    return torch.optim.SGD(parameters, lr=lr, momentum=float(config["momentum"]),
                           weight_decay=wd, nesterov=bool(config["nesterov"]))


def build_scheduler(config: dict, optimizer, total_steps: int, max_epochs: int,
                    monitor: str = "val/accuracy"):
    """Lightning scheduler config: ``step`` (per epoch, StepLR), ``cosine`` (per step, linear
    warm-up over ``warmup_epochs`` then cosine decay to ``min_lr``), ``linear_decay`` (per
    epoch, FMPN's: constant, then linear to 0 over ``decay_epochs``) or ``plateau`` (Keras's
    ReduceLROnPlateau: multiply by ``gamma`` after ``patience`` epochs without a rise of
    ``monitor``, down to ``min_lr``)."""
    name = config["name"]
    if name == "none":
        return None
    if name == "linear_decay":
        # FMPN's (CycleGAN's) "lambda" policy with epoch_count 1: constant for max_epochs -
        # decay_epochs epochs, then linear towards 0: 1 - max(0, e + 2 - constant) / (decay + 1).
        # A run shorter than decay_epochs decays over all its epochs from the full rate (the
        # original's formula would start it at (max_epochs - 1) / (decay_epochs + 1) of it).
        decay = min(int(config["decay_epochs"]), max_epochs)
        constant = max_epochs - decay
        return {"scheduler": torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda e: 1.0 - max(0, e + 2 - constant) / float(decay + 1)),
            "interval": "epoch"}
    if name == "plateau":
        return {"scheduler": torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=float(config["gamma"]),
            patience=int(config["patience"]), min_lr=float(config["min_lr"])),
            "interval": "epoch", "monitor": monitor}
    if name == "step":
        return {"scheduler": torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=int(config["step_size"]), gamma=float(config["gamma"])),
            "interval": "epoch"}
    steps_per_epoch = max(1, total_steps // max(1, max_epochs))
    warmup = int(float(config["warmup_epochs"]) * steps_per_epoch)
    base_lr = optimizer.param_groups[0]["lr"]
    floor = float(config["min_lr"]) / base_lr if base_lr else 0.0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return {"scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, factor), "interval": "step"}
