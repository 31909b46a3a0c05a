"""Multi-task training: an emotion head plus attribute / valence-arousal heads, labels masked.

Used by ``method: multitask`` recipes with a model that has ``forward_heads`` (``multitask_cnn``,
``multitask``; :mod:`openfer.models.multitask`). Batches carry the data set's per-sample targets
(:attr:`openfer.data.dataset.FaceDataset.targets`); a head whose targets the data set lacks gets
"missing" for every sample and so adds nothing to the loss (FER2013 has no attributes). The loss
is :func:`openfer.losses.masked_multitask_loss` with ``loss.head_weights`` (the paper's: emotion 2,
gender 0.1, race 1.5, age 4). Validation logs the emotion metrics (``val/accuracy`` is the emotion
head's, which checkpoints, early stopping and plateau schedules follow) and each head's accuracy
(categorical) or CCC (regression) as ``val/<head>/...``.
"""

from __future__ import annotations

import numpy as np
import torch

from ..losses import masked_multitask_loss
from ..metrics import regression_report
from ..models.multitask import head_kind
from .task import ClassificationTask


class MultiTaskTask(ClassificationTask):
    def __init__(self, recipe: dict):
        super().__init__(recipe)
        if not hasattr(self.model, "forward_heads"):
            raise ValueError(f"method multitask needs a multi-task model (multitask_cnn, "
                             f"multitask), not {recipe['model']['name']}")
        self.head_sizes = dict(self.model.head_sizes)
        weights = dict(recipe["loss"].get("head_weights") or {})
        unknown = sorted(set(weights) - {"emotion", *self.head_sizes})
        if unknown:
            raise ValueError(f"loss.head_weights names heads the model lacks: {unknown}; its "
                             f"heads: emotion, {', '.join(self.head_sizes)}")
        self.head_weights = weights
        self._val: dict[str, list] = {}

    @property
    def target_kinds(self) -> dict[str, str]:
        """What the data module must attach to every batch: head name -> kind."""
        return {name: head_kind(name) for name in self.head_sizes}

    def _loss(self, outputs, labels, targets):
        return masked_multitask_loss(
            outputs, {"emotion": labels, **targets}, self.head_weights,
            class_weights={"emotion": self.class_weights},
            label_smoothing=float(self.recipe["loss"]["label_smoothing"]))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels, targets = batch
        for name, target in targets.items():
            labelled = ~torch.isnan(target) if target.is_floating_point() else target >= 0
            if self.head_weights.get(name, 1.0) and bool(labelled.any()):
                self.record_trained_head(name)
        outputs = self.model.forward_heads(self.prepare_input(images, train=True))
        loss, parts = self._loss(outputs, labels, targets)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True)
        for name, value in parts.items():
            self.log(f"train/loss_{name}", value, on_step=False, on_epoch=True)
        valid = labels >= 0
        accuracy = (outputs["emotion"].argmax(1)[valid] == labels[valid]).float().mean()
        self.log("train/accuracy", accuracy, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        images, labels, targets = batch
        outputs = self.model.forward_heads(self.prepare_input(images, train=False))
        loss, _ = self._loss(outputs, labels, targets)
        self.update_validation_metrics(outputs["emotion"], labels, loss=loss)
        for name, target in targets.items():
            prediction = outputs[name].float()
            prediction = prediction[:, 0] if head_kind(name) == "regression" else \
                prediction.argmax(1)
            self._val.setdefault(name, []).append((prediction.cpu(), target.cpu()))

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        for name, pairs in self._val.items():
            prediction = torch.cat([p for p, _ in pairs]).numpy()
            target = torch.cat([t for _, t in pairs]).numpy()
            if head_kind(name) == "regression":
                valid = ~np.isnan(target)
                if valid.sum() > 1:
                    self.log(f"val/{name}/ccc",
                             regression_report(target[valid], prediction[valid])["ccc"])
            else:
                valid = target >= 0
                if valid.any():
                    self.log(f"val/{name}/accuracy",
                             float((prediction[valid] == target[valid]).mean()))
        self._val.clear()
