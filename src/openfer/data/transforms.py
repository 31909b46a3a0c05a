"""Batched preprocessing and augmentation on tensors (on the training device, no per-image work).

Faces arrive as ``uint8`` batches (B, C, H, W). :func:`to_model_input` turns them into the
network input that a model's :class:`~openfer.models.meta.ModelMeta` describes;
:class:`BatchAugment`
applies random geometric and erasing augmentation to a whole float batch with one
``affine_grid`` / ``grid_sample`` call. Random draws use torch's global generator, which the
training engine reseeds at every step so that a resumed run draws the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .dataset import convert_batch, convert_uint8_batch


def to_model_input(batch: torch.Tensor, meta, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, C, H, W) faces -> normalised float input: size and channels from ``meta``.

    Faces are brought to ``meta.load_size`` (resize) and centre-cropped to ``meta.input_size``
    (:func:`to_input_size`); a ``uint8`` batch is scaled to [0, 1], a float batch is taken as
    already in [0, 1] (and resized without rounding).
    """
    x = to_input_size(batch, meta).to(dtype)
    return normalize(x.mul_(1 / 255.0) if batch.dtype == torch.uint8 else x, meta)


def to_input_size(batch: torch.Tensor, meta) -> torch.Tensor:
    """A (B, C, H, W) batch resized to ``meta.load_size`` with ``meta.channels`` and
    centre-cropped to ``meta.input_size``, in its own dtype (``uint8`` stays ``uint8``; the same
    tensor when it fits)."""
    load = tuple(meta.load_size)
    if tuple(batch.shape[-2:]) != load or batch.shape[1] != meta.channels:
        batch = (convert_uint8_batch(batch, load, meta.channels) if batch.dtype == torch.uint8
                 else convert_batch(batch, load, meta.channels))
    return crop_batch(batch, tuple(meta.input_size), random_five=False)


def normalize(x: torch.Tensor, meta) -> torch.Tensor:
    """``(x - mean) / std`` per channel, for ``x`` in [0, 1] (a new tensor)."""
    if len(set(meta.mean)) == 1 and len(set(meta.std)) == 1:     # one value: no small tensors
        return x.sub(float(meta.mean[0])).div_(float(meta.std[0]))
    mean = torch.tensor(meta.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(meta.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


def five_crop_offsets(h, w, ch: int, cw: int) -> tuple:
    """(top, left) of the five ``ch`` x ``cw`` crops of an ``h`` x ``w`` image in torchvision's
    ``FiveCrop`` order: top-left, top-right, bottom-left, bottom-right, centre (the centre with
    the margins halved downwards)."""
    return ((0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw), ((h - ch) // 2, (w - cw) // 2))


def crop_batch(x: torch.Tensor, size: tuple[int, int], random_five: bool) -> torch.Tensor:
    """Crop a batch larger than ``size``: the centre, or per sample one of the five crops
    (4 corners + centre) at random, as DACL's ``RandomFiveCrop`` (and torchvision's FiveCrop)."""
    h, w = x.shape[-2:]
    ch, cw = size
    if (h, w) == (ch, cw):
        return x
    offsets = five_crop_offsets(h, w, ch, cw)
    if not random_five:
        top, left = offsets[-1]
        return x[..., top:top + ch, left:left + cw]
    crops = torch.stack([x[..., t:t + ch, c:c + cw] for t, c in offsets], 1)   # (B, 5, C, h, w)
    choice = torch.randint(0, 5, (x.shape[0],), device=x.device)
    return crops[torch.arange(x.shape[0], device=x.device), choice]


def ten_crops(x: torch.Tensor, size: int) -> torch.Tensor:
    """The ten ``size`` x ``size`` crops of every face of a batch (B, C, H, W), face by face:
    (B * 10, C, size, size), in torchvision's ``TenCrop`` order: top-left, top-right,
    bottom-left, bottom-right and centre of the face, then the same of its mirror image (the
    multi-crop of Krizhevsky et al. 2012, as Khaireddin and Chen 2021 train and test with). The
    centre as :func:`crop_batch`'s (torchvision's for even margins; with an odd margin,
    torchvision's rounding may take the pixel after)."""
    offsets = five_crop_offsets(*x.shape[-2:], size, size)
    crops = [face[..., t:t + size, c:c + size] for face in (x, x.flip(-1)) for t, c in offsets]
    return torch.stack(crops, 1).flatten(0, 1)


@dataclass
class BatchAugment:
    """Random flip, rotation, scale, translation and erasing for a float batch in [0, 1].

    ``rotation`` in degrees (uniform ±), ``scale`` a (min, max) zoom, ``translate`` a fraction of
    the side (uniform ±); ``rotation_p`` and ``translate_p``: the share of faces rotated and
    moved (torchvision's ``RandomApply``; 1 = all). ``erasing`` the probability of erasing one
    random rectangle of ``erasing_area`` (min, max fraction of the image) with ``erasing_fill``
    ``noise`` (Zhong et al., 2020) or ``zero`` (torchvision's ``RandomErasing`` default).
    ``ten_crop``: a crop side; each face becomes its ten crops (:func:`ten_crops`, after the
    geometry, before erasing, which then draws per crop), so the batch grows tenfold and the
    training task repeats each label ten times (Khaireddin and Chen 2021).
    ``five_crop``: faces loaded larger than the model input (``data.image_size``) are cropped
    to it with one of the five crops at random in training (the centre at evaluation).
    ``mixup``: the alpha of mixup (Zhang et al., 2018; 0 = off), which the training task applies
    with :meth:`mix` because it blends the labels too.
    """

    hflip: float = 0.5
    rotation: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)
    translate: float = 0.0
    erasing: float = 0.0
    erasing_area: tuple[float, float] = (0.02, 0.25)
    erasing_fill: str = "noise"
    five_crop: bool = False
    mixup: float = 0.0
    rotation_p: float = 1.0
    translate_p: float = 1.0
    ten_crop: int = 0

    def __post_init__(self) -> None:
        if self.erasing_fill not in ("noise", "zero"):
            raise ValueError(f"augment.erasing_fill must be noise or zero; got "
                             f"{self.erasing_fill!r}")

    @property
    def views_per_face(self) -> int:
        """How many training inputs each face becomes (10 with ``ten_crop``, else 1)."""
        return 10 if self.ten_crop else 1

    @classmethod
    def from_config(cls, config: dict | None) -> "BatchAugment | None":
        if not config:
            return None
        config = dict(config)
        for key in ("scale", "erasing_area"):
            if key in config:
                config[key] = tuple(config[key])
        return cls(**config)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        dev, dt = x.device, x.dtype
        geometric = self.rotation or self.translate or self.scale != (1.0, 1.0) or self.hflip
        if geometric:
            angle = (torch.rand(b, device=dev, dtype=dt) * 2 - 1) * math.radians(self.rotation)
            zoom = torch.empty(b, device=dev, dtype=dt).uniform_(*self.scale)
            shift = (torch.rand(b, 2, device=dev, dtype=dt) * 2 - 1) * (2 * self.translate)
            flip = torch.where(torch.rand(b, device=dev) < self.hflip, -1.0, 1.0).to(dt)
            if self.rotation_p < 1:           # drawn only then: older recipes' draws unchanged
                angle = angle * (torch.rand(b, device=dev) < self.rotation_p).to(dt)
            if self.translate_p < 1:
                shift = shift * (torch.rand(b, 1, device=dev) < self.translate_p).to(dt)
            cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
            theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1),
                                 torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)  # (B, 2, 3)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                              align_corners=False)
        if self.ten_crop:
            x = ten_crops(x, self.ten_crop)
        if self.erasing > 0:
            x = self._erase(x)
        return x

    def mix(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Mixup: ``lam * x + (1 - lam) * x[partner]`` with ``lam ~ Beta(mixup, mixup)`` drawn
        once per batch and a random partner for each face, as the paper's code; returns the
        blend, the partners and ``lam`` (the loss weighs the two labels by ``lam``, ``1 - lam``)."""
        alpha = torch.tensor(float(self.mixup))
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        partner = torch.randperm(x.shape[0], device=x.device)
        return lam * x + (1.0 - lam) * x[partner], partner, lam

    def _erase(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        dev = x.device
        apply = torch.rand(b, device=dev) < self.erasing
        area = torch.empty(b, device=dev).uniform_(*self.erasing_area) * h * w
        log_ratio = torch.empty(b, device=dev).uniform_(math.log(0.3), math.log(3.3))
        ratio = torch.exp(log_ratio)
        eh = torch.sqrt(area * ratio).clamp(1, h).long()
        ew = torch.sqrt(area / ratio).clamp(1, w).long()
        top = (torch.rand(b, device=dev) * (h - eh + 1)).long()
        left = (torch.rand(b, device=dev) * (w - ew + 1)).long()
        rows = torch.arange(h, device=dev).view(1, h, 1)
        cols = torch.arange(w, device=dev).view(1, 1, w)
        mask = ((rows >= top.view(b, 1, 1)) & (rows < (top + eh).view(b, 1, 1))
                & (cols >= left.view(b, 1, 1)) & (cols < (left + ew).view(b, 1, 1))
                & apply.view(b, 1, 1)).unsqueeze(1)              # (B, 1, H, W)
        fill = torch.rand_like(x) if self.erasing_fill == "noise" else x.new_zeros(())
        return torch.where(mask, fill, x)
