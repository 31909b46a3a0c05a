"""Multi-task FER: expression with age, gender, race (and valence/arousal) heads.

Two registered models (METHODS.md 5):

``multitask_cnn``
    The published network of Saroop et al., "Facial Emotion Recognition: A multi-task approach
    using deep learning" (arXiv 2110.15028; sashankmvv/Emotion-recognition, Keras): 50x50 input
    (gray replicated to 3 channels), conv blocks 64 (5x5) / 128 / 256 (3x3), each two
    conv -> ELU -> batch norm, then max-pool and dropout 0.6 / 0.5 / 0.4; flatten (9,216), dense
    128 ELU, batch norm, dropout 0.4; four softmax heads emotion 7 (RAF-DB order), gender 3,
    race 3, age 5. 2,398,162 trainable parameters, as the original. He-normal initialisation and
    Keras's batch-norm constants (momentum 0.99, epsilon 1e-3). ``input_scaling="raw"`` feeds
    0..255 pixels as the original; ``"normalized"`` feeds (x - 0.5) / 0.5.

``multitask``
    Any registered classifier (``backbone=``, e.g. ``fernet_m`` or ``resnet18``) with extra heads
    on its pooled features: its own classifier stays the emotion head.

Both return the emotion logits from ``forward`` (so every classifier tool, export and
``openfer predict`` work unchanged) and every head from ``forward_heads`` as a dict. Heads are
categorical (``gender``, ``race``, ``age``, with RAF-DB's manual-annotation codes; any other name
with a class count) or regression (``valence``, ``arousal``: one linear output each).
Departure from the original: training masks a missing attribute out of its head's loss
(:func:`openfer.losses.masked_multitask_loss`) instead of fitting all-zero targets.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..labels import RAFDB
from .meta import ModelMeta
from .registry import create_model, register_model

#: RAF-DB's manual attribute codes (FORMATS.md 1.3), index order.
ATTRIBUTE_CLASSES = {
    "gender": ("male", "female", "unsure"),
    "race": ("caucasian", "african-american", "asian"),
    "age": ("0-3", "4-19", "20-39", "40-69", "70+"),
}
REGRESSION_HEADS = ("valence", "arousal")
#: The published loss weights, in its output order (emotion, gender, race, age).
PAPER_LOSS_WEIGHTS = {"emotion": 2.0, "gender": 0.1, "race": 1.5, "age": 4.0}

_PAPER = ("Saroop, Ghugare, Mathamsetty, Vasani, Facial Emotion Recognition: A multi-task "
          "approach using deep learning, arXiv 2110.15028, 2021")


def head_spec(heads) -> dict[str, int]:
    """``{"gender": 3, ...}`` from a list of names (RAF-DB sizes; 1 for valence/arousal) or a
    dict of name -> output count; ``emotion`` is implicit and not listed."""
    if isinstance(heads, dict):
        spec = {str(k): int(v) for k, v in heads.items()}
    else:
        spec = {}
        for name in heads:
            if name in ATTRIBUTE_CLASSES:
                spec[name] = len(ATTRIBUTE_CLASSES[name])
            elif name in REGRESSION_HEADS:
                spec[name] = 1
            else:
                raise ValueError(f"head {name!r} needs a class count: pass heads as a mapping, "
                                 f"e.g. {{{name!r}: 4}}; known heads: "
                                 f"{', '.join([*ATTRIBUTE_CLASSES, *REGRESSION_HEADS])}")
    spec.pop("emotion", None)
    for name, size in spec.items():
        if name in REGRESSION_HEADS and size != 1:
            raise ValueError(f"head {name!r} is a regression head with one output, not {size}")
        if size < 1:
            raise ValueError(f"head {name!r} needs at least one output")
    return spec


def head_kind(name: str) -> str:
    return "regression" if name in REGRESSION_HEADS else "categorical"


class MultiTaskCNN(nn.Module):
    """The published multi-task network (see the module docstring)."""

    def __init__(self, num_classes: int = 7, heads=("gender", "race", "age"),
                 dropout=(0.6, 0.5, 0.4, 0.4)):
        super().__init__()

        def block(cin, cout, kernel, p):
            layers = []
            for i in range(2):
                layers += [nn.Conv2d(cin if i == 0 else cout, cout, kernel, padding=kernel // 2),
                           nn.ELU(inplace=True), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)]
            return nn.Sequential(*layers, nn.MaxPool2d(2), nn.Dropout(p))

        self.features = nn.Sequential(block(3, 64, 5, dropout[0]), block(64, 128, 3, dropout[1]),
                                      block(128, 256, 3, dropout[2]))
        self.dense = nn.Sequential(nn.Flatten(), nn.Linear(256 * 6 * 6, 128), nn.ELU(inplace=True),
                                   nn.BatchNorm1d(128, eps=1e-3, momentum=0.01),
                                   nn.Dropout(dropout[3]))
        self.num_features = 128
        self.fc = nn.Linear(128, num_classes)                    # the emotion head
        self.head_sizes = head_spec(heads)
        self.heads = nn.ModuleDict({n: nn.Linear(128, k) for n, k in self.head_sizes.items()})
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):       # Keras he_normal, zero bias
                fan_in = module.weight[0].numel()
                nn.init.trunc_normal_(module.weight, std=math.sqrt(2.0 / fan_in),
                                      a=-2 * math.sqrt(2.0 / fan_in), b=2 * math.sqrt(2.0 / fan_in))
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # gray replicated, as the original (a no-op on 3 channels; no branch, so it traces)
        return self.features(x.expand(-1, 3, -1, -1))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dense(x)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        pooled = self.forward_head(self.forward_features(x), pre_logits=True)
        out = {"emotion": self.fc(pooled)}
        out.update({name: head(pooled) for name, head in self.heads.items()})
        return out


class MultiTaskNet(nn.Module):
    """A registered classifier (its head = emotion) with extra heads on its pooled features."""

    def __init__(self, backbone: nn.Module, heads):
        super().__init__()
        self.backbone = backbone
        dim = getattr(backbone, "num_features", None)
        if dim is None or not hasattr(backbone, "forward_head"):
            raise ValueError(f"{type(backbone).__name__} has no forward_features / forward_head "
                             "split with num_features; choose another backbone")
        self.num_features = dim
        self.head_sizes = head_spec(heads)
        self.heads = nn.ModuleDict({n: nn.Linear(dim, k) for n, k in self.head_sizes.items()})

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.backbone.forward_head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward_heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone.forward_features(x)
        pooled = self.backbone.forward_head(features, pre_logits=True)
        head = getattr(self.backbone, "fc", None) or self.backbone.classifier
        out = {"emotion": head(pooled)}
        out.update({name: layer(pooled) for name, layer in self.heads.items()})
        return out


_CNN_META = ModelMeta(
    "multitask_cnn", classes=tuple(e.value for e in RAFDB.emotions), input_size=(50, 50),
    channels=1, mean=(0.0,), std=(1 / 255,), paper=_PAPER,
    alignment={"method": "box", "margin": 0.0, "square": True},
    notes="published multi-task network (sashankmvv/Emotion-recognition): raw 0..255 input, "
          "emotion in RAF-DB order, gender/race/age heads")


@register_model("multitask_cnn", _CNN_META)
def multitask_cnn(num_classes: int = 7, classes=None, heads=("gender", "race", "age"),
                  input_scaling: str = "raw") -> nn.Module:
    """Multi-task CNN (Saroop et al. 2021): 50x50, emotion + gender + race + age heads."""
    model = MultiTaskCNN(len(classes) if classes else num_classes, heads)
    if input_scaling == "normalized":
        model.meta = _CNN_META.replace(mean=(0.5,), std=(0.5,), notes=_CNN_META.notes.replace(
            "raw 0..255 input", "input (x - 0.5) / 0.5"))
    elif input_scaling != "raw":
        raise ValueError(f"input_scaling must be 'raw' or 'normalized', got {input_scaling!r}")
    return model


@register_model("multitask", ModelMeta("multitask"))
def multitask(backbone: str = "fernet_m", heads=("gender", "race", "age"), num_classes: int = 7,
              classes=None, **backbone_args) -> nn.Module:
    """Any registered classifier with extra heads (age, gender, race, valence, arousal)."""
    if backbone.startswith("multitask"):
        raise ValueError("the multitask backbone must be a single-task classifier")
    if classes is not None:
        backbone_args["classes"] = classes
    elif num_classes != 7:
        backbone_args["num_classes"] = num_classes
    inner = create_model(backbone, **backbone_args)
    model = MultiTaskNet(inner, heads)
    model.meta = inner.meta.replace(architecture="multitask",
                                    notes=f"{backbone} with heads "
                                          f"{', '.join(['emotion', *model.head_sizes])}")
    return model
