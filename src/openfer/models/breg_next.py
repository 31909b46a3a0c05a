"""BReG-NeXt: residual layers whose shortcut is a bounded, learnable arctan mapping.

Hasani, Negi, Mahoor, "BReG-NeXt: Facial affect computing using adaptive residual networks with
bounded gradient", IEEE TAC 2020; the PyTorch port in Emotion-GCN's repository
(``breg_next.py``, METHODS.md section 1), which Emotion-GCN uses as its second backbone at
112 px. Each residual layer is BN → ELU → pad 1 → conv3×3 (stride s), BN → ELU → pad 1 →
conv3×3, plus the shortcut f(x) = atan(a·x / √(c²+1)) / (a·√(c²+1)) with learnable scalars a, c
(initialised to 1), average-pooled when strided and zero-padded in channels when widening. Stacks
[7×32, 1×64/2, 8×64, 1×128/2, 7×128], BN, ELU, global average pooling → 128 features.

Parameter counts and state-dict keys equal the original's: ``breg_next`` 3,072,567,
``breg_next_multi_task`` 3,072,825 (``fc_cat``/``fc_cont``), ``emotion_gcn_breg_next``
3,291,784 (``model.*``, ``gc1``, ``gc2``, ``A``; the unused ``model._fc0`` is kept, as there).
Departure: the first convolution keeps PyTorch's default initialisation (the TensorFlow
original used a truncated normal; the port says so too).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .classifiers import IMAGENET_MEAN, IMAGENET_STD
from .label_graph import NODES
from .meta import ModelMeta
from .registry import register_model

_PAPER = ("Hasani et al., BReG-NeXt: Facial Affect Computing Using Adaptive Residual Networks "
          "With Bounded Gradient, IEEE TAC 2020")


class BoundedShortcut(nn.Module):
    """f(x) = atan(a·x / √(c²+1)) / (a·√(c²+1)); its gradient is bounded by 1/(c²+1)."""

    def __init__(self):
        super().__init__()
        self._a = nn.Parameter(torch.ones(1))
        self._c = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        root = torch.sqrt(self._c ** 2 + 1)
        return torch.atan(self._a * x / root) / (self._a * root)


class ResidualLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError("a BReG-NeXt layer cannot narrow its channels")
        self._in_channels, self._out_channels, self._stride = in_channels, out_channels, stride
        self._conv0 = nn.Conv2d(in_channels, out_channels, 3, stride)
        self._conv1 = nn.Conv2d(out_channels, out_channels, 3, 1)
        for conv in (self._conv0, self._conv1):
            nn.init.kaiming_uniform_(conv.weight)
        self._shortcut = BoundedShortcut()
        self._batchnorm_conv0 = nn.BatchNorm2d(in_channels)
        self._batchnorm_conv1 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._conv0(F.pad(F.elu(self._batchnorm_conv0(x)), (1, 1, 1, 1)))
        y = self._conv1(F.pad(F.elu(self._batchnorm_conv1(y)), (1, 1, 1, 1)))
        shortcut = self._shortcut(x)
        if self._stride > 1:
            shortcut = F.avg_pool2d(shortcut, self._stride, self._stride)
        extra = self._out_channels - self._in_channels
        if extra:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, extra // 2, extra - extra // 2))
        return y + shortcut


class ResidualStack(nn.Module):
    def __init__(self, layers: int, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self._layer_stack = nn.Sequential(
            ResidualLayer(in_channels, out_channels, stride),
            *(ResidualLayer(out_channels, out_channels, stride) for _ in range(layers - 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._layer_stack(x)


def _trunk() -> nn.Sequential:
    return nn.Sequential(
        ResidualStack(7, 32, 32), ResidualStack(1, 32, 64, 2), ResidualStack(8, 64, 64),
        ResidualStack(1, 64, 128, 2), ResidualStack(7, 128, 128),
        nn.BatchNorm2d(128), nn.ELU(), nn.AdaptiveAvgPool2d(1))


class BReGNeXt(nn.Module):
    """The single-task network (``_conv0``, ``_model``, ``_fc0`` as in the original)."""

    feature_dim = 128

    def __init__(self, num_classes: int = 7):
        super().__init__()
        self._conv0 = nn.Conv2d(3, 32, 3)
        self._model = _trunk()
        self._fc0 = nn.Linear(128, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (B, 128); the pad emulates TensorFlow's "same" padding."""
        return torch.flatten(self._model(self._conv0(F.pad(x, (1, 1, 1, 1)))), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc0(self.features(x))


class MultiTaskBReGNeXt(BReGNeXt):
    """The original's ``multi_BReGNeXt``: expression logits and valence/arousal."""

    def __init__(self, num_classes: int = 7):
        nn.Module.__init__(self)
        self._conv0 = nn.Conv2d(3, 32, 3)
        self._model = _trunk()
        self.fc_cont = nn.Linear(128, 2)
        self.fc_cat = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor):
        f = self.features(x)
        return self.fc_cat(f), self.fc_cont(f)


_META = ModelMeta("breg_next", classes=NODES[:7],       # AffectNet's order, as Emotion-GCN
                  input_size=(112, 112), channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                  alignment={"method": "box", "margin": 0.0, "square": True}, paper=_PAPER)


@register_model("breg_next", _META)
def breg_next(num_classes: int = 7, classes=None, input_size: int = 112) -> nn.Module:
    """BReG-NeXt-50 (bounded arctan shortcuts), 112x112 RGB; 3.07 M params."""
    model = BReGNeXt(len(classes) if classes else num_classes)
    model.meta = _META.replace(input_size=(input_size, input_size),
                               **({"classes": tuple(classes)} if classes else {}))
    return model


@register_model("breg_next_multi_task",
                _META.replace(architecture="breg_next_multi_task",
                              extra_outputs=("valence", "arousal")))
def breg_next_multi_task(num_classes: int = 7, classes=None, input_size: int = 112
                         ) -> nn.Module:
    """Emotion-GCN's multi-task BReG-NeXt baseline (expressions + valence/arousal)."""
    model = MultiTaskBReGNeXt(len(classes) if classes else num_classes)
    model.meta = _META.replace(architecture="breg_next_multi_task",
                               extra_outputs=("valence", "arousal"),
                               input_size=(input_size, input_size))
    return model
