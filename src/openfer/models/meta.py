"""What travels with every model: classes in index order, input geometry and normalisation.

Label-order mistakes are the most reported bug in FER tools, so a model never exists without
its :class:`ModelMeta`; checkpoints store it beside the weights (see :mod:`openfer.checkpoint`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..labels import Emotion, FER2013, emotions_from_names


@dataclass
class ModelMeta:
    """Metadata of a model: enough to preprocess a face and name its outputs.

    ``mean`` and ``std`` apply to pixels scaled to [0, 1]: the network input is
    ``(pixel / 255 - mean) / std`` per channel.
    """

    architecture: str
    classes: tuple[str, ...] = tuple(e.value for e in FER2013.emotions)
    input_size: tuple[int, int] = (48, 48)
    channels: int = 1
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    #: How faces are cropped and aligned before resizing (:mod:`openfer.faces.align`).
    alignment: dict[str, Any] = field(
        default_factory=lambda: {"method": "box", "margin": 0.0, "square": True})
    training_data: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    recipe: str | None = None
    command: str | None = None
    license: str | None = None
    paper: str | None = None
    #: Faces are resized to ``input_size / crop_fraction`` and centre-cropped to ``input_size``
    #: (timm's crop_pct; DACL: 224/256).
    crop_fraction: float = 1.0
    #: Extra outputs beside the class logits (e.g. ("valence", "arousal")).
    extra_outputs: tuple[str, ...] = ()
    #: The extra heads (a multi-task model's, Emotion-GCN's valence/arousal) whose labels
    #: training saw, as ``openfer train`` records them; inference outputs only these (a head
    #: trained on no label outputs noise). None: not recorded, so no head is shown.
    heads_trained: tuple[str, ...] | None = None
    notes: str | None = None
    #: bfloat16 inference measured against fp32 on a test split
    #: (``scripts/check_precision.py --precision bf16``):
    #: ``{"split", "n", "top1_agreement", "accuracy_fp32", "accuracy_bf16"}``. Only models that
    #: carry it run in bf16 under ``Recognizer(precision="auto")``.
    bf16: dict[str, Any] | None = None
    #: int8 inference (:mod:`openfer.models.quantize`): the activations' calibrated scales and
    #: the check against fp32 (``scripts/check_precision.py --precision int8``): ``{"scheme",
    #: "torch", "weights" (SHA-256 of the weights it holds for), "weight_bits" (7; 8 where
    #: absent), "float_layers" (kept in fp32: the classifier head; none where absent), "faces",
    #: "calibration", "input", "activations", "check": {"split", "n",
    #: "top1_agreement", "accuracy_fp32", "accuracy_int8"}}``. Only models that carry it run in
    #: int8, under ``precision="int8"`` or, on x86 CPUs with AVX2, ``"auto"``.
    int8: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.classes = tuple(e.value for e in emotions_from_names(self.classes))
        self.input_size = tuple(int(v) for v in self.input_size)
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        self.extra_outputs = tuple(self.extra_outputs)
        if self.heads_trained is not None:
            self.heads_trained = tuple(self.heads_trained)
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"{self.architecture}: mean/std need one value per channel "
                             f"({self.channels})")

    @property
    def emotions(self) -> tuple[Emotion, ...]:
        return emotions_from_names(self.classes)

    @property
    def load_size(self) -> tuple[int, int]:
        """Size faces are resized to before the centre crop to ``input_size``."""
        return tuple(int(round(v / self.crop_fraction)) for v in self.input_size)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("classes", "input_size", "mean", "std", "extra_outputs", "heads_trained"):
            if data[key] is not None:
                data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelMeta":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def replace(self, **changes) -> "ModelMeta":
        return dataclasses.replace(self, **changes)
