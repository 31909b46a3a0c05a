"""Face regions found by a detector, for data sets whose images are whole heads (JAFFE, CK+).

Readers of such data sets can crop each face before resizing: :func:`detected_regions` runs one
of :mod:`openfer.faces.detect`'s detectors once per image and returns the largest face's box,
widened by a margin, as the (x, y, w, h) regions that
:class:`~openfer.data.dataset.ImageFileDataset` crops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import OpenferError
from . import images as imageio

CROPS = ("none", "detect")


def crop_regions(paths: Sequence[Path], crop: str, detector: str, reader: str
                 ) -> tuple[list | None, list[str]]:
    """A reader's ``crop`` option: ``none`` (whole images: no regions) or ``detect``
    (:func:`detected_regions`); returns the regions and a problem message per image without a
    detected face."""
    if crop not in CROPS:
        raise OpenferError(f"{reader} option crop={crop!r}: use none (whole images) or detect "
                           "(crop the largest face a detector finds)")
    if crop == "none":
        return None, []
    regions, missed = detected_regions(paths, detector)
    return regions, [f"{p}: no face found; the whole image is used" for p in missed]


def detected_regions(paths: Sequence[Path], detector: str = "auto", margin: float = 0.1
                     ) -> tuple[list[tuple[float, float, float, float] | None], list[Path]]:
    """The largest detected face of every image as a square box (x, y, w, h), ``margin`` of
    its side added on each side; ``None`` (the whole image) where no face is found, and the list
    of those images."""
    from ..faces.detect import create_detector

    finder = create_detector(detector)
    regions: list[tuple[float, float, float, float] | None] = []
    missed: list[Path] = []
    for path in paths:
        faces = finder.detect(imageio.read_image(path, 3))
        if not faces:
            regions.append(None)
            missed.append(path)
            continue
        largest = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        x1, y1, x2, y2 = largest.box
        side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        regions.append((cx - side / 2, cy - side / 2, side, side))
    return regions, missed

