"""Deep-Emotion: an attentional CNN with a spatial transformer (Minaee & Abdolrashidi, 2019).

S. Minaee, A. Abdolrashidi, "Deep-Emotion: Facial Expression Recognition Using Attentional
Convolutional Network", arXiv:1902.01019 (Sensors 21(9):3046, 2021). No official code exists;
two unofficial implementations are reproduced (../shared/docs/METHODS.md section 3):

* :class:`DeepEmotion` (``deep_emotion``): the PyTorch reference ``omarsayed7/Deep-Emotion``. The
  spatial transformer warps the 48x48 input; the localisation net is the PyTorch STN tutorial's
  (k7/k5 convolutions, 640-d). 66,877 parameters, state-dict keys as the original.
  **Departure:** the original calls ``F.dropout(out)`` without ``training=self.training``, so
  dropout stays on at evaluation and predictions are random; here dropout follows
  ``model.train()`` / ``model.eval()``. ``reference_dropout_bug=True`` restores the original.
* :class:`DeepEmotionPaper` (``deep_emotion_paper``): the paper's description as the Keras fork
  ``kaushal-k/Deep-Emotion`` builds it: θ is predicted from the image (k3 'same' convolutions with
  4x4 pooling, 90-d) and applied to the 9x9x10 feature map, no batch norm, and an L2 penalty
  (factor 0.01, Keras ``l2`` default) on the kernels and biases of both fully connected layers,
  returned by :meth:`DeepEmotionPaper.regularization_loss`. Input is raw 0..255 pixels as in the
  fork (``mean 0, std 1/255``). Keras ``RandomNormal(0.05)`` initialisation; the bilinear sampler
  of the fork's ``stn`` package is ``grid_sample(align_corners=True, padding_mode='border')``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .meta import ModelMeta
from .registry import register_model

_PAPER = ("Minaee & Abdolrashidi, Deep-Emotion: Facial Expression Recognition Using Attentional "
          "Convolutional Network, arXiv:1902.01019 (2019)")


def _identity_theta(layer: nn.Linear) -> None:
    """Start the transformer at the identity: zero weights, bias [1, 0, 0, 0, 1, 0]."""
    nn.init.zeros_(layer.weight)
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([1, 0, 0, 0, 1, 0], dtype=layer.bias.dtype))


class DeepEmotion(nn.Module):
    """The PyTorch reference network (``omarsayed7/Deep-Emotion`` ``deep_emotion.py``)."""

    def __init__(self, num_classes: int = 7, dropout: float = 0.5,
                 reference_dropout_bug: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, 3)
        self.conv2 = nn.Conv2d(10, 10, 3)
        self.pool2 = nn.MaxPool2d(2, 2)
        self.conv3 = nn.Conv2d(10, 10, 3)
        self.conv4 = nn.Conv2d(10, 10, 3)
        self.pool4 = nn.MaxPool2d(2, 2)
        self.norm = nn.BatchNorm2d(10)
        self.fc1 = nn.Linear(810, 50)
        self.fc2 = nn.Linear(50, num_classes)
        self.localization = nn.Sequential(
            nn.Conv2d(1, 8, kernel_size=7), nn.MaxPool2d(2, stride=2), nn.ReLU(True),
            nn.Conv2d(8, 10, kernel_size=5), nn.MaxPool2d(2, stride=2), nn.ReLU(True))
        self.fc_loc = nn.Sequential(nn.Linear(10 * 8 * 8, 32), nn.ReLU(True), nn.Linear(32, 6))
        _identity_theta(self.fc_loc[2])
        self.dropout = dropout
        self.reference_dropout_bug = reference_dropout_bug

    def stn(self, x: torch.Tensor) -> torch.Tensor:
        """Warp the input face with the predicted affine transform θ (B, 2, 3)."""
        theta = self.fc_loc(self.localization(x).flatten(1)).view(-1, 2, 3)  # (B, 2, 3)
        grid = F.affine_grid(theta, list(x.size()), align_corners=False)
        return F.grid_sample(x, grid, align_corners=False)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stn(x)                               # (B, 1, 48, 48)
        out = F.relu(self.conv1(out))                   # (B, 10, 46, 46)
        out = self.conv2(out)                           # (B, 10, 44, 44)
        out = F.relu(self.pool2(out))                   # (B, 10, 22, 22)
        out = F.relu(self.conv3(out))                   # (B, 10, 20, 20)
        out = self.norm(self.conv4(out))                # (B, 10, 18, 18)
        return F.relu(self.pool4(out))                  # (B, 10, 9, 9)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        active = True if self.reference_dropout_bug else self.training
        out = F.dropout(features, self.dropout, training=active).flatten(1)   # (B, 810)
        out = F.relu(self.fc1(out))
        return out if pre_logits else self.fc2(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class DeepEmotionPaper(nn.Module):
    """The paper's variant as the Keras fork builds it (θ applied to the feature map, L2 on FC)."""

    def __init__(self, num_classes: int = 7, dropout: float = 0.5, l2: float = 0.01):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, 3)
        self.conv2 = nn.Conv2d(10, 10, 3)
        self.conv3 = nn.Conv2d(10, 10, 3)
        self.conv4 = nn.Conv2d(10, 10, 3)
        self.drop = nn.Dropout(dropout)
        self.localization = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.MaxPool2d(4), nn.ReLU(True),
            nn.Conv2d(8, 10, 3, padding=1), nn.MaxPool2d(4), nn.ReLU(True))
        self.fc_loc = nn.Sequential(nn.Linear(10 * 3 * 3, 32), nn.ReLU(True), nn.Linear(32, 6))
        self.fc1 = nn.Linear(810, 50)
        self.fc2 = nn.Linear(50, num_classes)
        self.l2 = l2
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(module.weight, std=0.05)     # Keras RandomNormal default
                nn.init.zeros_(module.bias)
        _identity_theta(self.fc_loc[2])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv1(x))                           # (B, 10, 46, 46)
        out = F.relu(F.max_pool2d(self.conv2(out), 2))        # (B, 10, 22, 22)
        out = F.relu(self.conv3(out))                         # (B, 10, 20, 20)
        out = F.relu(F.max_pool2d(self.conv4(out), 2))        # (B, 10, 9, 9)
        out = self.drop(out)
        theta = self.fc_loc(self.localization(x).flatten(1)).view(-1, 2, 3)
        grid = F.affine_grid(theta, list(out.size()), align_corners=True)
        return F.grid_sample(out, grid, align_corners=True, padding_mode="border")

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        out = F.relu(self.fc1(features.flatten(1)))
        return out if pre_logits else self.fc2(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def regularization_loss(self) -> torch.Tensor:
        """Keras ``l2(0.01)`` on kernel and bias of both dense layers: 0.01 · Σ w²."""
        return self.l2 * sum(p.pow(2).sum() for layer in (self.fc1, self.fc2)
                             for p in (layer.weight, layer.bias))


@register_model("deep_emotion", ModelMeta(
    "deep_emotion", mean=(0.5,), std=(0.5,), paper=_PAPER,
    notes="PyTorch reference (omarsayed7/Deep-Emotion); always-on dropout bug fixed"))
def deep_emotion(num_classes: int = 7, classes=None, dropout: float = 0.5,
                 reference_dropout_bug: bool = False) -> nn.Module:
    """Deep-Emotion, PyTorch reference architecture (STN warps the 48x48 input; 66,877 params)."""
    return DeepEmotion(len(classes) if classes else num_classes, dropout, reference_dropout_bug)


_PAPER_META = ModelMeta(
    "deep_emotion_paper", mean=(0.0,), std=(1 / 255,), paper=_PAPER,
    notes="paper/Keras variant (kaushal-k/Deep-Emotion): theta on the 9x9x10 feature map, "
          "L2 0.01 on the FC layers, raw 0..255 input")


@register_model("deep_emotion_paper", _PAPER_META)
def deep_emotion_paper(num_classes: int = 7, classes=None, dropout: float = 0.5,
                       l2: float = 0.01, input_scaling: str = "raw") -> nn.Module:
    """Deep-Emotion, paper/Keras variant (θ on the 9x9x10 feature map, L2 on the FC layers).

    ``input_scaling="raw"`` feeds 0..255 pixels as the Keras fork does; ``"normalized"`` feeds
    (x - 0.5) / 0.5 of [0, 1] pixels (an openfer option: with raw input and the fork's Adam 0.005
    the network collapses to the majority class on FER2013, see the README).
    """
    model = DeepEmotionPaper(len(classes) if classes else num_classes, dropout, l2)
    if input_scaling == "normalized":
        model.meta = _PAPER_META.replace(mean=(0.5,), std=(0.5,),
                                         notes=_PAPER_META.notes.replace(
                                             "raw 0..255 input", "input (x - 0.5) / 0.5"))
    elif input_scaling != "raw":
        raise ValueError(f"input_scaling must be 'raw' or 'normalized', got {input_scaling!r}")
    return model
