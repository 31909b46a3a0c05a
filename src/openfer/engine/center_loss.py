"""Training with a center loss: DACL's sparse center loss, or Wen et al.'s plain center loss.

DACL (WACV 2021, METHODS.md 2): L = CE + λ·L_SC(f, y, A, C), one SGD for the network (the
attention network learns through L_SC) and a second plain SGD with learning rate α for the class
centers C, which applies the original's center update Δc (not scaled by λ). The ``center_loss``
method is the paper's "center loss" baseline: the same with A = 1 on any backbone's pooled
features. Uses Lightning's manual optimisation (two optimisers); the step schedule advances per
epoch as with automatic optimisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import init_centers, sparse_center_loss
from .task import ClassificationTask, build_optimizer, build_scheduler


class CenterLossTask(ClassificationTask):
    """``sparse=True``: DACL (model needs ``forward_train`` -> (f, logits, A))."""

    def __init__(self, recipe: dict):
        super().__init__(recipe)
        self.automatic_optimization = False
        self.sparse = recipe.get("method") == "dacl"
        if self.sparse and not hasattr(self.model, "forward_train"):
            raise ValueError(f"method dacl needs a DACL model (e.g. dacl_resnet18), not "
                             f"{recipe['model']['name']}")
        dim = getattr(self.model, "num_features", 512)
        self.centers = torch.nn.Parameter(init_centers(self.meta.num_classes, dim))
        self.center_lambda = float(recipe["loss"]["center_lambda"])
        self.center_alpha = float(recipe["loss"]["center_alpha"])

    def _features_logits_attention(self, x: torch.Tensor):
        if self.sparse:
            return self.model.forward_train(x)
        pooled = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        head = self.model.fc if hasattr(self.model, "fc") else self.model.classifier
        return pooled, head(pooled), torch.ones_like(pooled)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        optimizer, center_optimizer = self.optimizers()
        features, logits, attention = self._features_logits_attention(
            self.prepare_input(images, train=True))
        ce = F.cross_entropy(logits, labels, weight=self.class_weights,
                             label_smoothing=float(self.recipe["loss"]["label_smoothing"]))
        center = sparse_center_loss(features, labels, attention, self.centers)
        loss = ce + self.center_lambda * center
        optimizer.zero_grad()
        center_optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()
        center_optimizer.step()
        scheduler = self.lr_schedulers()
        if scheduler is not None and self.recipe["scheduler"]["name"] == "cosine":
            scheduler.step()
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True)
        self.log("train/center_loss", center, on_step=False, on_epoch=True)
        self.log("train/accuracy", (logits.argmax(1) == labels).float().mean(), prog_bar=True,
                 on_step=False, on_epoch=True)
        return loss

    def on_train_epoch_end(self) -> None:
        scheduler = self.lr_schedulers()
        if scheduler is not None and self.recipe["scheduler"]["name"] == "step":
            scheduler.step()

    def configure_optimizers(self):
        optimizer = build_optimizer(self.recipe["optimizer"], self.model.parameters())
        centers = torch.optim.SGD([self.centers], lr=self.center_alpha)
        scheduler = build_scheduler(self.recipe["scheduler"], optimizer,
                                    int(self.trainer.estimated_stepping_batches),
                                    self.trainer.max_epochs)
        if scheduler is None:
            return [optimizer, centers]
        return [optimizer, centers], [scheduler["scheduler"]]
