"""FMPN's pseudo ground-truth facial-motion masks, one per class, from training data only.

Sequence data (CK+, or any data set whose samples carry ``reference_paths``, the neutral first
frame of their sequence): the mask of class c is the average over the training samples of c of
|expressive face − its neutral face| (aligned faces, grey), as the FMPN paper describes. Image
data sets without sequences (FER2013, RAF-DB, AffectNet): |mean face of c − mean neutral face|,
this project's analogue (the paper has none; FMPN released no AffectNet masks). Each mask is then
min-max normalised to 0–255, as FMPN's released ``imgs_res/<fold>/<class>.png`` are; a class with
no motion of its own (neutral, or a class absent from the fold) gets the mean of the other
classes' masks. :func:`write_masks` stores them in FMPN's layout, with a ``masks.json`` that says
in which class order and from which training split they were computed, so that a later run
(FMPN's stage 2, from its stage-1 run) can take them instead of computing them again
(:func:`matching_masks`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import OpenferError
from ..labels import Emotion
from . import images as imageio
from .dataset import load_face, to_grey


def _grey(batch: torch.Tensor) -> np.ndarray:
    return to_grey(batch.float())[:, 0].numpy().astype(np.float64)


def _normalise(motion: np.ndarray, present: np.ndarray, classes) -> np.ndarray:
    """Min-max each class's motion map to 0-255; classes without motion get the others' mean."""
    masks = np.zeros_like(motion)
    has = np.zeros(len(motion), bool)
    for c in range(len(motion)):
        low, high = motion[c].min(), motion[c].max()
        if present[c] and high > low and classes[c] is not Emotion.NEUTRAL:
            masks[c] = (motion[c] - low) / (high - low) * 255
            has[c] = True
    if not has.any():
        raise OpenferError("no class has motion: motion masks need expressive and neutral faces")
    for c in np.flatnonzero(~has):
        masks[c] = masks[has].mean(0)
    return masks.round().clip(0, 255).astype(np.uint8)


def compute_class_masks(dataset, batch_size: int = 256) -> np.ndarray:
    """``uint8`` (num_classes, H, W) masks at the data set's image size (see module doc)."""
    k = len(dataset.classes)
    h, w = dataset.image_size
    sums, counts = np.zeros((k, h, w)), np.zeros(k, np.int64)
    references = getattr(dataset, "reference_paths", None)
    labels = np.asarray(dataset.labels)
    if references is not None:                                   # sequences: |expr − neutral|
        cache: dict[str, np.ndarray] = {}
        region_of = getattr(dataset, "region", lambda i: None)
        for i in range(len(dataset)):
            face = _grey(dataset[i][0][None])[0]
            region = region_of(i)            # the neutral frame cut as the sample is: aligned
            key = f"{references[i]}|{np.asarray(region).tolist() if region is not None else ''}"
            if key not in cache:
                cache[key] = load_face(references[i], 1, (h, w), region)[:, :, 0].astype(
                    np.float64)
            sums[labels[i]] += np.abs(face - cache[key])
            counts[labels[i]] += 1
        return _normalise(sums / np.maximum(counts, 1)[:, None, None], counts > 0,
                          dataset.classes)
    neutral = [i for i, e in enumerate(dataset.classes) if e is Emotion.NEUTRAL]
    if not neutral:
        raise OpenferError(f"{dataset.name} has neither neutral frames of sequences nor a "
                           "neutral class: give FMPN masks (fmpn.masks=<folder>) instead")
    for start in range(0, len(dataset), batch_size):
        index = np.arange(start, min(start + batch_size, len(dataset)))
        item = dataset[index] if hasattr(dataset, "images") else None
        if item is None:
            faces = np.stack([_grey(dataset[int(i)][0][None])[0] for i in index])
        else:
            faces = _grey(item[0])
        for c in np.unique(labels[index]):
            sums[c] += faces[labels[index] == c].sum(0)
            counts[c] += int((labels[index] == c).sum())
    means = sums / np.maximum(counts, 1)[:, None, None]
    return _normalise(np.abs(means - means[neutral[0]]), counts > 0, dataset.classes)


PROVENANCE = "masks.json"


def training_fingerprint(dataset) -> str:
    """A SHA-256 of what a training split holds: its labels, and its pixels when it is held in
    memory (FER2013, decoded image sets) or else each file's path, size and modification time.
    Recorded with computed masks, so that masks are reused only for the same data, not merely
    the same path: a data set replaced or relabelled in place gets its masks computed afresh."""
    import hashlib
    import os

    digest = hashlib.sha256(np.ascontiguousarray(dataset.labels, np.int64).tobytes())
    images = getattr(dataset, "images", None)
    if images is not None:
        array = np.asarray(images)                      # a CPU tensor or an array
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).data)
    else:
        for path in dataset.sources or ():
            try:
                stat = os.stat(path)
                digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            except OSError:
                digest.update(f"{path}\0missing\n".encode())
    return digest.hexdigest()


def write_masks(masks: np.ndarray, folder: str | Path, classes: list[str] | None = None,
                source: dict | None = None) -> list[Path]:
    """``<folder>/<class>.png`` for each class (FMPN's ``imgs_res/<fold>/`` layout), and with
    ``classes`` (the masks' class names, in index order) ``<folder>/masks.json`` recording them
    and ``source``, the training split they were computed from (see :func:`matching_masks`)."""
    from PIL import Image

    from ..fileio import atomic_write_text, atomic_write_with

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for c, mask in enumerate(masks):
        path = folder / f"{c}.png"
        atomic_write_with(path, lambda tmp, m=mask: Image.fromarray(m).save(tmp, format="PNG"))
        written.append(path)
    if classes is not None:
        if len(classes) != len(masks):
            raise ValueError(f"{len(masks)} masks but {len(classes)} class names")
        record = {"classes": list(classes), "source": source}
        atomic_write_text(folder / PROVENANCE, json.dumps(record, indent=2) + "\n")
        written.append(folder / PROVENANCE)
    return written


def mask_classes(folder: str | Path) -> list[str] | None:
    """The class order recorded beside masks written by :func:`write_masks`, or None."""
    record = _provenance(Path(folder))
    return list(record["classes"]) if record else None


def matching_masks(folder: str | Path, source: dict) -> tuple[np.ndarray, list[str]] | None:
    """The masks in ``folder`` and their class order when its ``masks.json`` says they were
    computed from exactly ``source`` (data set, root, split, options, size); None otherwise
    (no record, another split or fold, another size), in which case the caller computes them."""
    folder = Path(folder)
    record = _provenance(folder)
    if not record or record.get("source") != json.loads(json.dumps(source)):
        return None
    classes = list(record["classes"])
    try:
        masks = read_masks(folder, len(classes))
    except OpenferError:
        return None
    if tuple(masks.shape[1:]) != tuple(source.get("image_size", masks.shape[1:])):
        return None
    return masks, classes


def _provenance(folder: Path) -> dict | None:
    try:
        record = json.loads((folder / PROVENANCE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("classes"), list):
        return None
    return record


def read_masks(folder: str | Path, num_classes: int) -> np.ndarray:
    """``<folder>/<class>.png`` → ``uint8`` (num_classes, H, W): masks written by
    :func:`write_masks`, or one fold of FMPN's ``imgs_res/<fold>/``."""
    folder = Path(folder)
    masks = []
    for c in range(num_classes):
        path = folder / f"{c}.png"
        if not path.is_file():
            raise OpenferError(f"{path} not found: masks are <folder>/<class index>.png, one "
                               f"per class (0..{num_classes - 1})")
        masks.append(imageio.read_image(path, 1)[:, :, 0])
    if len({m.shape for m in masks}) != 1:
        raise OpenferError(f"{folder}: the masks must share one size")
    return np.stack(masks)
