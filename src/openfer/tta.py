"""Test-time augmentation (TTA): a face's class probabilities averaged over several views of it.

Two modes, each an option of ``openfer eval --tta`` / ``openfer predict --tta`` and of
:class:`openfer.infer.Recognizer` (``tta=``) and :func:`openfer.evaluate.evaluate`:

- ``flip``: the face and its mirror image (2 views), as most FER2013 papers report it.
- ``shifts``: the face and its mirror, each also moved by 2 % and 4 % of the input side (1 and
  2 pixels at 48 px) up, down, left and right, the border pixels repeated (18 views). This is
  the multi-crop testing of the FER2013 literature (ten crops, e.g. Khaireddin and Chen 2021)
  done on the whole input: openfer's FERNet recipes train on whole faces moved by up to 8 %
  (``augment.translate``), so the views stay inside what the networks have seen, and no crop
  is resized. Departs from ten-crop testing in the views (shifted whole faces, not corner
  crops) and their number; chosen on PublicTest (benchmarks/results/README.md).

Measured on FER2013 PublicTest (all 3,589 faces, fp32; benchmarks/results/README.md), accuracy
plain / flip / shifts: distilled FERNet-M (the default) 69.94 / 70.21 / 70.66 %, FERNet-S 68.43 /
69.04 / 69.91 %, Deep-Emotion 56.14 / 57.06 / 57.34 %. ``shifts`` costs 18 forward passes per
face, ``flip`` 2.
"""

from __future__ import annotations

from typing import Callable

import torch

from .errors import OpenferError

MODES = ("flip", "shifts")
SHIFTS = (0.02, 0.04)          # of the input side: 1 and 2 pixels at 48 px


def tta_mode(tta: bool | str | None) -> str | None:
    """The mode of a ``tta`` argument: None (off: ``False``, ``None``, ``"none"``), ``"flip"``
    (also ``True``) or ``"shifts"``; anything else raises :class:`OpenferError`."""
    if tta is None or tta is False or tta == "none":
        return None
    if tta is True:
        return "flip"
    if tta in MODES:
        return str(tta)
    raise OpenferError(f"tta must be one of none, {', '.join(MODES)} (or True/False); "
                       f"got {tta!r}")


def shifted(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """``x`` (..., H, W) moved by ``dx`` columns and ``dy`` rows, the border pixels repeated; any
    dtype (uint8 images as well as network inputs)."""
    height, width = x.shape[-2:]
    rows = (torch.arange(height, device=x.device) - dy).clamp_(0, height - 1)
    cols = (torch.arange(width, device=x.device) - dx).clamp_(0, width - 1)
    return x.index_select(-2, rows).index_select(-1, cols)


def views(x: torch.Tensor, mode: str | None):
    """The views of a batch ``x`` (B, C, H, W) that ``mode`` averages over, ``x`` first."""
    yield x
    if mode is None:
        return
    yield x.flip(-1)
    if mode == "shifts":
        side = min(x.shape[-2:])
        for step in sorted({max(1, round(f * side)) for f in SHIFTS}):
            for dx, dy in ((step, 0), (-step, 0), (0, step), (0, -step)):
                view = shifted(x, dx, dy)
                yield view
                yield view.flip(-1)


def averaged(probabilities: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
             mode: str | None):
    """The mean of ``probabilities(view)`` over the views of ``x`` (tensors or numpy arrays)."""
    total, count = None, 0
    for view in views(x, mode):
        p = probabilities(view)
        total = p if total is None else total + p
        count += 1
    return total / count if count > 1 else total
