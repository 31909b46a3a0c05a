"""FERNet: openfer's compact expression networks for 48x48 gray faces (the default model family).

Not a published method: a plain VGG-style network (stages of two 3x3 conv + BN + ReLU, max-pool
between stages, global average pooling, dropout, linear head), the design ../shared/docs/DESIGN.md
measured on this machine (``fernet_m``: 32/64/128/256 channels, 1.17 M parameters, 235 MFLOPs;
67.3 % FER2013 PublicTest after 25 epochs). ``fernet_s`` halves the widths (a quarter of the
compute) for CPU latency; ``fernet_sm`` sits between them (24/48/96/192 channels), a distillation
student sized for int8 CPU inference; ``fernet_l`` doubles FERNet-M's widths (4.7 M parameters,
about the VGG variant of Khaireddin & Chen, 2021, without its fully connected layers): a teacher
for distillation (``distill`` in a recipe), too slow for the default model's CPU budget.
``forward_features`` / ``forward_head`` as every openfer model.
"""

from __future__ import annotations

import torch
from torch import nn

from .meta import ModelMeta
from .registry import register_model


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True))


class FERNet(nn.Module):
    def __init__(self, widths=(32, 64, 128, 256), num_classes: int = 7, dropout: float = 0.3,
                 in_chans: int = 1):
        super().__init__()
        stages, cin = [], in_chans
        for i, width in enumerate(widths):
            stages.append(_stage(cin, width))
            if i < len(widths) - 1:
                stages.append(nn.MaxPool2d(2))
            cin = width
        self.features = nn.Sequential(*stages)
        self.num_features = cin
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)                          # (B, C, 6, 6) at 48 px

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return x if pre_logits else self.fc(self.dropout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _meta(name: str) -> ModelMeta:
    return ModelMeta(name, input_size=(48, 48), channels=1, mean=(0.5,), std=(0.25,),
                     alignment={"method": "box", "margin": 0.0, "square": True},
                     notes="openfer's compact VGG-style FER network (not a published method)")


def _fernet(widths, num_classes: int, classes, dropout: float) -> nn.Module:
    return FERNet(widths, len(classes) if classes else num_classes, dropout)


@register_model("fernet_m", _meta("fernet_m"))
def fernet_m(num_classes: int = 7, classes=None, dropout: float = 0.3) -> nn.Module:
    """FERNet-M: VGG-style, 32/64/128/256 channels, 1.17 M parameters, 48x48 gray."""
    return _fernet((32, 64, 128, 256), num_classes, classes, dropout)


@register_model("fernet_s", _meta("fernet_s"))
def fernet_s(num_classes: int = 7, classes=None, dropout: float = 0.2) -> nn.Module:
    """FERNet-S: VGG-style, 16/32/64/128 channels (a quarter of FERNet-M's compute)."""
    return _fernet((16, 32, 64, 128), num_classes, classes, dropout)


@register_model("fernet_sm", _meta("fernet_sm"))
def fernet_sm(num_classes: int = 7, classes=None, dropout: float = 0.25) -> nn.Module:
    """FERNet-SM: VGG-style, 24/48/96/192 channels (between S and M, 0.56x FERNet-M's compute)."""
    return _fernet((24, 48, 96, 192), num_classes, classes, dropout)


@register_model("fernet_l", _meta("fernet_l"))
def fernet_l(num_classes: int = 7, classes=None, dropout: float = 0.4) -> nn.Module:
    """FERNet-L: VGG-style, 64/128/256/512 channels (4x FERNet-M's compute), a teacher."""
    return _fernet((64, 128, 256, 512), num_classes, classes, dropout)
