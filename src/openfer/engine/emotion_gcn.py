"""Emotion-GCN training: expressions and valence/arousal together (METHODS.md section 1).

Used by ``method: emotion_gcn`` recipes with a model that returns ``(expression logits,
(valence, arousal))``: ``emotion_gcn``, ``emotion_gcn_breg_next`` and the multi-task baselines
``emotion_gcn_multi_task`` / ``breg_next_multi_task``. The loss is the paper's

    L = L_cat + lambda_multi · L_cont,   L_cat = class-weighted cross-entropy,
    L_cont = 1 − (CCC_valence + CCC_arousal) / 2  (per mini-batch, :func:`ccc_loss`)

with ``loss.lambda_multi`` (default 1). The original parses ``--lambda_multi`` and never uses it
(the weights are fixed 1:1); here it is real. Samples without valence/arousal (NaN: FER2013,
AffectNet's -2) add nothing to L_cont; a batch with fewer than two such samples has no L_cont
(a CCC needs two). Validation logs the expression metrics (``val/accuracy`` is what checkpoints
follow, as the original selects on validation accuracy) and ``val/valence/ccc``,
``val/arousal/ccc``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..losses import ccc_loss
from ..metrics import regression_report
from .task import ClassificationTask

DIMENSIONS = ("valence", "arousal")


class EmotionGCNTask(ClassificationTask):
    def __init__(self, recipe: dict):
        super().__init__(recipe)
        if tuple(self.meta.extra_outputs or ()) != DIMENSIONS:
            raise ValueError(f"method emotion_gcn needs a model with expression and valence/"
                             f"arousal outputs (emotion_gcn, emotion_gcn_breg_next, "
                             f"emotion_gcn_multi_task, breg_next_multi_task), not "
                             f"{recipe['model']['name']}")
        self.lambda_multi = float(recipe["loss"]["lambda_multi"])
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    @property
    def target_kinds(self) -> dict[str, str]:
        return {name: "regression" for name in DIMENSIONS}

    def _losses(self, logits, continuous, labels, targets):
        categorical = F.cross_entropy(logits, labels, weight=self.class_weights,
                                      label_smoothing=float(self.recipe["loss"]["label_smoothing"]))
        target = torch.stack([targets[name] for name in DIMENSIONS], 1).to(continuous.dtype)
        valid = ~torch.isnan(target).any(1)
        if int(valid.sum()) < 2 or self.lambda_multi == 0:
            return categorical, continuous.sum() * 0.0           # keeps the graph connected
        if self.training:
            for name in DIMENSIONS:
                self.record_trained_head(name)
        return categorical, ccc_loss(continuous[valid].float(), target[valid].float())

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels, targets = batch
        logits, continuous = self(self.prepare_input(images, train=True))
        categorical, cont = self._losses(logits, continuous, labels, targets)
        loss = categorical + self.lambda_multi * cont
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True)
        self.log("train/loss_cat", categorical, on_step=False, on_epoch=True)
        self.log("train/loss_cont", cont, on_step=False, on_epoch=True)
        self.log("train/accuracy", (logits.argmax(1) == labels).float().mean(), prog_bar=True,
                 on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        images, labels, targets = batch
        logits, continuous = self(self.prepare_input(images, train=False))
        self.update_validation_metrics(logits, labels)
        target = torch.stack([targets[name] for name in DIMENSIONS], 1)
        self._val.append((continuous.float().cpu(), target.float().cpu()))

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        if not self._val:
            return
        prediction = torch.cat([p for p, _ in self._val]).numpy()
        target = torch.cat([t for _, t in self._val]).numpy()
        self._val.clear()
        for column, name in enumerate(DIMENSIONS):
            valid = ~np.isnan(target[:, column])
            if valid.sum() > 1:
                self.log(f"val/{name}/ccc", regression_report(
                    target[valid, column], prediction[valid, column])["ccc"])
