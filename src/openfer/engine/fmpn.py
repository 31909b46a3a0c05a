"""FMPN training, both stages (METHODS.md section 4; ``method: fmpn`` recipes).

Stage ``mask`` (the original's ``resface`` solver): the mask generator alone learns the class's
pseudo ground-truth motion mask, L = MSE(M, M_gt); only its parameters are optimised.
Stage ``joint`` (``res_cls``): L = CE(logits, y) + λ·MSE(M, M_gt) with λ = ``fmpn.lambda_mask``
(0.1 as released; the paper's weighting, reported as 10, is a recipe override), one Adam over
classifier + fusion at ``optimizer.lr`` and the generator at ``fmpn.generator_lr`` (1e-5); the
generator starts from ``fmpn.generator_from`` (a stage-1 run, its weights file, or a folder with
``generator.safetensors`` or the original's ``*_net_resface.pth``).

Masks (``fmpn.masks``): ``computed`` from the training split only
(:func:`openfer.data.motion_masks.compute_class_masks`, written to ``<run>/masks/``; taken from
the ``generator_from`` run instead when that run computed them from the same split),
``released`` (FMPN's ``<data.root>/imgs_res/<fold>/``) or a folder of ``<class>.png`` (``{fold}``
is replaced by the fold). Each sample's target is its class's mask, brought to the image's size
and cropped and flipped together with the image (the original's shared ``lucky_dict``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import OpenferError
from ..models.fmpn import FMPN, load_parts, mask_loss
from .task import ClassificationTask
from ..data.transforms import normalize


class FMPNTask(ClassificationTask):
    def __init__(self, recipe: dict):
        super().__init__(recipe)
        if not isinstance(self.model, FMPN):
            raise OpenferError(f"method fmpn needs model.name=fmpn, not "
                               f"{recipe['model']['name']!r}")
        config = recipe["fmpn"]
        self.stage = config["stage"]
        self.lambda_mask = float(config["lambda_mask"])
        self.register_buffer("class_masks", torch.zeros(0), persistent=False)
        self._val_mse: list[torch.Tensor] = []
        if config.get("generator_from"):
            load_generator(self.model, config["generator_from"])

    # -- masks ---------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.class_masks.numel():
            return
        data = self.trainer.datamodule.train_set
        masks = self._masks(data, Path(self.trainer.default_root_dir),
                            write=self.trainer.is_global_zero)
        size = tuple(data.image_size)
        tensor = torch.from_numpy(masks).float()[:, None] / 255.0
        if tuple(tensor.shape[-2:]) != size:
            tensor = F.interpolate(tensor, size=size, mode="bilinear", align_corners=False,
                                   antialias=True)
        self.class_masks = tensor.clamp(0, 1).to(self.device)

    def _masks(self, train_set, run_dir: Path | None = None, write: bool = True) -> np.ndarray:
        """The class masks in the model's class order (the labels the batches carry).

        ``computed`` masks are written to ``<run_dir>/masks/`` with the split they came from;
        when this run (resumed) or the run ``fmpn.generator_from`` names already holds masks
        from the same training split (data set, root, split, options, size, and the same faces
        and labels in it: stage 1 of the same fold), those are taken instead of reading every
        training face again."""
        from ..data.motion_masks import (compute_class_masks, mask_classes, matching_masks,
                                         read_masks, training_fingerprint, write_masks)

        cfg = self.recipe["data"]
        options = dict(cfg.get("options") or {})
        source = self.recipe["fmpn"]["masks"]
        size = tuple(train_set.image_size)
        if source == "computed":
            split = mask_source(cfg, size, training_fingerprint(train_set))
            own = run_dir / "masks" if run_dir is not None else None
            found, taken_from = None, None
            candidates = [own] if own is not None else []
            for folder in candidates + _earlier_masks(self.recipe["fmpn"].get("generator_from")):
                found = matching_masks(folder, split)
                if found:
                    taken_from = folder
                    print(f"FMPN masks taken from {folder} (computed from the same training "
                          "split)", file=sys.stderr)
                    break
            if found:
                masks, order = found
            else:
                raw = self._native_split(cfg, options, size)
                order = [str(e.value) for e in raw.classes]
                masks = compute_class_masks(raw)
            if own is not None and write and taken_from != own:   # a resumed run's are there
                write_masks(masks, own, classes=order, source=split)   # in the data set's order
        else:
            fold = options.get("fold", 0)
            folder = (Path(cfg["root"]) / "imgs_res" / str(fold) if source == "released"
                      else Path(str(source).format(fold=fold)))
            order = mask_classes(folder)
            if order is None:       # FMPN's released masks: in the reader's class order
                raw = self._native_split(cfg, options, size)
                order = [str(e.value) for e in raw.classes]
            masks = read_masks(folder, len(order))
        names = [str(e.value) for e in train_set.classes]
        missing = [n for n in names if n not in order]
        if missing:
            raise OpenferError(f"no motion mask for the model's classes {missing}")
        return np.stack([masks[order.index(n)] for n in names])

    @staticmethod
    def _native_split(cfg: dict, options: dict, size: tuple[int, int]):
        """The training split as its reader gives it (file-backed sets read no pixels here): its
        class order is the order of computed masks and of FMPN's released ones."""
        from ..data import load_dataset

        return load_dataset(cfg["dataset"], cfg["root"], cfg["train_split"], image_size=size,
                            channels=1, classes=cfg.get("classes"), **options)

    # -- steps ---------------------------------------------------------------------------------
    def _inputs(self, images: torch.Tensor, labels: torch.Tensor, train: bool):
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        m = self.class_masks[labels].to(x.dtype)
        both = self.crop_and_augment(torch.cat([x, m], 1), train)
        return normalize(both[:, :3], self.meta), both[:, 3:]

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        x, target = self._inputs(images, labels, train=True)
        logits, mask = self.model.forward_with_mask(x)
        mse = mask_loss(mask, target)
        self.log("train/mask_mse", mse, prog_bar=True, on_step=False, on_epoch=True)
        if self.stage == "mask":
            self.log("train/loss", mse, on_step=True, on_epoch=True)
            return mse
        ce = F.cross_entropy(logits, labels, weight=self.class_weights,
                             label_smoothing=float(self.recipe["loss"]["label_smoothing"]))
        loss = ce + self.lambda_mask * mse
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True)
        self.log("train/loss_cls", ce, on_step=False, on_epoch=True)
        self.log("train/accuracy", (logits.argmax(1) == labels).float().mean(), prog_bar=True,
                 on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        images, labels = batch
        x, target = self._inputs(images, labels, train=False)
        logits, mask = self.model.forward_with_mask(x)
        self.update_validation_metrics(logits, labels)
        self.log("val/mask_mse", mask_loss(mask, target), on_epoch=True, sync_dist=True,
                 batch_size=len(labels))

    # -- optimisation --------------------------------------------------------------------------
    def optimizer_parameters(self):
        if self.stage == "mask":                      # stage 1: the generator alone
            return self.model.generator.parameters()
        return [{"params": self.model.classifier.parameters()},
                {"params": self.model.fusion.parameters()},
                {"params": self.model.generator.parameters(),
                 "lr": float(self.recipe["fmpn"]["generator_lr"])}]


def load_generator(model: FMPN, source: str | Path) -> None:
    """Initialise the mask generator from a stage-1 run, weights file or parts folder."""
    source = Path(source)
    if source.is_dir() and (source / "best.safetensors").is_file():
        source = source / "best.safetensors"
    if source.is_dir():
        load_parts(model, source, parts=("generator",))
        return
    from ..models.registry import load_model

    trained = load_model(source)
    if not isinstance(trained, FMPN):
        raise OpenferError(f"{source} is not an FMPN model; fmpn.generator_from needs a stage-1 "
                           "run of method fmpn")
    try:
        model.generator.load_state_dict(trained.generator.state_dict())
    except RuntimeError as error:
        raise OpenferError(f"{source}: its mask generator does not fit this model "
                           f"({str(error).splitlines()[0]}); use the same generator_width") \
            from None


def mask_source(data: dict, image_size: tuple[int, int], fingerprint: str | None = None) -> dict:
    """What computed masks depend on: the recipe's training split, read grey at ``image_size``,
    and what that split holds (``fingerprint``, :func:`~openfer.data.motion_masks.
    training_fingerprint`), recorded in ``masks.json``; a later run reuses masks only when all of
    this matches."""
    source = {"dataset": data["dataset"], "root": str(Path(data["root"]).expanduser().resolve()),
              "split": data["train_split"], "classes": data.get("classes"),
              "options": dict(data.get("options") or {}), "image_size": list(image_size)}
    return {**source, "fingerprint": fingerprint} if fingerprint else source


def _earlier_masks(generator_from) -> list[Path]:
    """Mask folders of the run ``fmpn.generator_from`` names (the run, or a file inside it)."""
    if not generator_from:
        return []
    path = Path(generator_from)
    run = path if path.is_dir() else path.parent
    return [run / "masks"]
