"""An ensemble of trained expression models that read the same input: the mean of their class
probabilities, returned as log-probabilities (so ``argmax`` and ``softmax`` of the output give the
averaged prediction, as 7-model FER2013 ensembles such as Pramerdorfer & Kampel, 2016 do).

Used as the teacher of knowledge distillation (``distill.teachers`` in a recipe: Hinton et al.,
2015, "Distilling the knowledge in a neural network") and to evaluate several runs together.
Members must share the classes (in the same order) and the preprocessing: input size, channels,
mean/std, crop fraction; anything else would feed one of them a face it was not trained on.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import OpenferError

#: The preprocessing fields every member of an ensemble must agree on.
SHARED_FIELDS = ("classes", "input_size", "channels", "mean", "std", "crop_fraction")


def input_mismatch(meta, reference) -> tuple[str, Any, Any] | None:
    """The first of :data:`SHARED_FIELDS` where two models' metadata differ, as ``(key, meta's
    value, reference's value)``; ``None`` when they read the same input and classes."""
    for key in SHARED_FIELDS:
        if getattr(meta, key) != getattr(reference, key):
            return key, getattr(meta, key), getattr(reference, key)
    return None


class Ensemble(nn.Module):
    """``log(mean_i softmax(member_i(x)))`` over the members (all kept in eval mode)."""

    def __init__(self, members: list[nn.Module], names: list[str] | None = None):
        super().__init__()
        if not members:
            raise OpenferError("an ensemble needs at least one model")
        names = names or [m.meta.architecture for m in members]
        first = members[0].meta
        for name, member in zip(names[1:], members[1:]):
            mismatch = input_mismatch(member.meta, first)
            if mismatch:
                key, value, reference = mismatch
                raise OpenferError(
                    f"ensemble member {name}: {key} is {value!r} but {names[0]} has "
                    f"{reference!r}; members must read the same input and predict the same "
                    "classes in the same order")
        self.members = nn.ModuleList(members)
        self.meta = first.replace(architecture="ensemble(" + ", ".join(names) + ")",
                                  metrics={}, recipe=None, command=None, bf16=None, int8=None,
                                  notes=f"mean of the class probabilities of {len(members)} models")

    def train(self, mode: bool = True) -> "Ensemble":
        # A frozen ensemble: its members' batch norm and dropout stay in evaluation mode.
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = torch.stack([torch.log_softmax(m(x).float(), dim=1) for m in self.members])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


def load_ensemble(paths: list[str | Path], map_location: str | torch.device = "cpu") -> Ensemble:
    """An :class:`Ensemble` of models named as :func:`~openfer.models.registry.load_model` takes
    them (weight files, run directories, shipped names), frozen (no gradients)."""
    from .registry import load_model

    members = [load_model(p, map_location=map_location) for p in paths]
    ensemble = Ensemble(members, names=[str(p) for p in paths])
    ensemble.requires_grad_(False)
    return ensemble.eval()
