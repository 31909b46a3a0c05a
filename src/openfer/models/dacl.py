"""DACL: ResNet-18 with an attention network for the sparse center loss.

A. H. Farzaneh, X. Qi, "Facial Expression Recognition in the Wild via Deep Attentive Center
Loss", WACV 2021; original code ``amirhfarzaneh/dacl`` (METHODS.md section 2). 103,042,311
parameters at 224 px with 7 classes, state-dict keys as the original (``attention.0`` ...
``attention_heads``, ``fc``).

The attention network ("CE-unit" + multi-head binary classifier) reads the flattened
``layer4`` map: Linear(512·h·w → 3584) → BN → ReLU → Linear(→512) → BN → ReLU → Linear(→64) → BN →
Tanh (the latent e) → Linear(64 → 2·512) → per-dimension softmax over 2 → A ∈ (0,1)^512.
**Departures:** the first layer is sized from the feature-map shape, so inputs other than 224 px
work (224 gives the original 25,088-wide layer); ``forward`` returns the logits (so evaluation,
export and inference treat DACL like any classifier) and :meth:`DACL.forward_train` returns the
original's ``(f, logits, A)``.
"""

from __future__ import annotations

import torch
from torch import nn

from .backbones.resnet import BasicBlock, ResNet
from .meta import ModelMeta
from .registry import register_model

DACL_MEAN = (0.5752, 0.4495, 0.4012)
DACL_STD = (0.2086, 0.1911, 0.1827)
_PAPER = ("Farzaneh & Qi, Facial Expression Recognition in the Wild via Deep Attentive Center "
          "Loss, WACV 2021")


class DACL(ResNet):
    def __init__(self, num_classes: int = 7, input_size: int = 224):
        super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=1000)
        side = -(-input_size // 32)                      # layer4 map side: 7 at 224 px
        self.attention = nn.Sequential(
            nn.Linear(512 * side * side, 3584), nn.BatchNorm1d(3584), nn.ReLU(inplace=True),
            nn.Linear(3584, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True),
            nn.Linear(512, 64), nn.BatchNorm1d(64), nn.Tanh())
        self.attention_heads = nn.Linear(64, 2 * 512)
        for module in list(self.attention) + [self.attention_heads]:
            if isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight)
                nn.init.zeros_(module.bias)
        del self.fc                                      # re-registered last, as in the original
        self.fc = nn.Linear(512, num_classes)            # PyTorch default init, as the original

    def attention_weights(self, x4: torch.Tensor) -> torch.Tensor:
        """A (B, 512) in (0, 1) from the layer4 map (B, 512, h, w)."""
        e = self.attention(torch.flatten(x4, 1))
        return self.attention_heads(e).view(-1, 512, 2).softmax(-1)[:, :, 1]

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(f, logits, A)``: pooled features (B, 512), logits, attention weights (B, 512)."""
        x4 = self.forward_features(x)                    # (B, 512, 7, 7) at 224 px
        f = self.forward_head(x4, pre_logits=True)
        return f, self.fc(f), self.attention_weights(x4)


_META = ModelMeta(
    "dacl_resnet18", input_size=(224, 224), channels=3, mean=DACL_MEAN, std=DACL_STD,
    paper=_PAPER, alignment={"method": "box", "margin": 0.1, "square": True},
    notes="ResNet-18 + attention network for the sparse center loss (amirhfarzaneh/dacl)")


@register_model("dacl_resnet18", _META)
def dacl_resnet18(num_classes: int = 7, classes=None, input_size: int = 224,
                  pretrained: str | None = None, sha256: str | None = None) -> nn.Module:
    """DACL: ResNet-18 with the attention network of the sparse center loss (103 M params)."""
    from .pretrained import load_pretrained

    model = DACL(len(classes) if classes else num_classes, input_size)
    if pretrained:
        # MS-Celeb-1M or ImageNet ResNet-18: the backbone only; attention and fc stay new.
        model.pretrained_report = load_pretrained(model, pretrained,
                                                  drop=("fc", "attention", "attention_heads"),
                                                  sha256=sha256)
    model.meta = _META.replace(input_size=(input_size, input_size))
    return model
