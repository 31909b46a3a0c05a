"""ExpW, the Expression in-the-Wild data set (Zhang, Luo, Loy & Tang, "From facial expression
recognition to interpersonal relation prediction", IJCV 2018), in its owners' layout (FORMATS.md
section 9.1).

``root`` is the folder that holds ``data/`` (or ``data/`` itself)::

    data/label/label.lst          one line per face, 8 fields separated by spaces:
                                  image_name face_id_in_image face_box_top face_box_left
                                  face_box_right face_box_bottom face_box_cofidence
                                  expression_label
    data/image/origin/<image_name>   the whole scenes (JPEG)

Labels are 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral — FER2013's order
(:data:`openfer.labels.EXPW`), mapped by name to any model. Several faces may share an image, so a
face is ``(image_name, face_id)``; its box is given as top, left, right, bottom (not x, y, w, h)
and cropped as ``image[top:bottom, left:right]``, clipped to the image. A face listed again under
the same key is dropped and counted (``dataset.dropped``: an identical repeat, or one whose box or
label differs, named in ``dataset.problems``); the first line is kept. ``min_confidence``
(default none) drops faces whose detector confidence is lower, counted too. ``dataset.sources``
are ``label.lst:<line>``; ``dataset.targets["box_confidence"]`` holds each face's confidence.

There is no official split. ``split`` is ``all``, or ``train`` / ``val`` / ``test`` of a seeded
random split by image (every face of one photo on the same side), stratified by the label of the
image's first face: ``val_fraction`` and ``test_fraction`` (0.1 each) of every class, drawn with
``seed`` (0), the same images for the same options. Papers that use ExpW draw their own splits,
so numbers from different splits do not compare exactly.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..errors import DataFormatError, OpenferError
from ..labels import EXPW
from .dataset import ImageFileDataset
from .text import read_text

SPLITS = ("train", "val", "test")
FIELDS = ("image_name", "face_id_in_image", "face_box_top", "face_box_left", "face_box_right",
          "face_box_bottom", "face_box_cofidence", "expression_label")


def find_root(root: Path) -> Path:
    """The ``data/`` folder: ``root`` itself or ``root/data``."""
    for candidate in (root, root / "data"):
        if (candidate / "label" / "label.lst").is_file():
            return candidate
    raise OpenferError(f"no ExpW label file under {root}: expected data/label/label.lst "
                       "(and the images in data/image/origin/)")


def read_labels(path: Path) -> list[dict]:
    """Every face of ``label.lst`` as a dict of :data:`FIELDS` (ints, the confidence a float)
    plus ``line``; duplicates are kept here (see :func:`unique_faces`)."""
    rows = []
    for number, raw in enumerate(read_text(path).splitlines(), 1):
        parts = raw.split()
        if not parts:
            continue
        if len(parts) != len(FIELDS):
            raise DataFormatError(path, f"expected {len(FIELDS)} space-separated fields "
                                  f"({' '.join(FIELDS)}), found {len(parts)}: {raw.strip()[:80]!r}",
                                  line=number)
        row = {"image_name": parts[0], "line": number}
        for field, text in zip(FIELDS[1:6], parts[1:6]):
            try:
                row[field] = int(text)
            except ValueError:
                raise DataFormatError(path, f"{field} {text!r} is not a whole number of pixels",
                                      line=number, field=field) from None
        try:
            confidence = float(parts[6])
        except ValueError:
            confidence = math.nan
        if not math.isfinite(confidence):
            raise DataFormatError(path, f"face_box_cofidence {parts[6]!r} is not a number",
                                  line=number, field="face_box_cofidence")
        row["face_box_cofidence"] = confidence
        label = parts[7]
        if not label.isdigit() or int(label) not in EXPW.codes:
            raise DataFormatError(path, f"expression_label {label!r} is not an ExpW code; expected "
                                  "0..6 (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, "
                                  "6 neutral)", line=number, field="expression_label")
        row["expression_label"] = int(label)
        if row["face_id_in_image"] < 0:
            raise DataFormatError(path, f"face_id_in_image {row['face_id_in_image']} is negative",
                                  line=number, field="face_id_in_image")
        if (row["face_box_right"] <= row["face_box_left"]
                or row["face_box_bottom"] <= row["face_box_top"]):
            raise DataFormatError(path, "the face box is empty: expected top < bottom and left < "
                                  f"right, found top {row['face_box_top']}, left "
                                  f"{row['face_box_left']}, right {row['face_box_right']}, bottom "
                                  f"{row['face_box_bottom']}", line=number, field="face_box_right")
        rows.append(row)
    if not rows:
        raise DataFormatError(path, "the label file has no faces")
    return rows


def unique_faces(rows: list[dict], path: Path) -> tuple[list[dict], dict[str, int], list[str]]:
    """The first line of every ``(image_name, face_id)``; the dropped repeats counted by kind
    and, where a repeat disagrees with the first, a message naming both lines."""
    first: dict[tuple[str, int], dict] = {}
    dropped: dict[str, int] = defaultdict(int)
    problems = []
    for row in rows:
        key = (row["image_name"], row["face_id_in_image"])
        kept = first.setdefault(key, row)
        if kept is row:
            continue
        if all(kept[f] == row[f] for f in FIELDS):
            dropped["duplicate lines"] += 1
        else:
            dropped["repeated faces with another box or label"] += 1
            problems.append(f"{path}, line {row['line']}: face {key[1]} of {key[0]} repeats line "
                            f"{kept['line']} with another box or label; line {kept['line']} kept")
    return list(first.values()), dict(dropped), problems


def split_images(first_labels: dict[str, int], val_fraction: float, test_fraction: float,
                 seed: int) -> dict[str, str]:
    """``train`` / ``val`` / ``test`` per image name: in each class (an image's first face's
    label), ``round(n * fraction)`` images drawn with ``seed`` for val and for test."""
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise OpenferError(f"ExpW option {name}={value}: expected a fraction in [0, 1)")
    if val_fraction + test_fraction >= 1:
        raise OpenferError(f"ExpW options val_fraction={val_fraction} and test_fraction="
                           f"{test_fraction} leave no training images; their sum must be below 1")
    rng = np.random.default_rng(seed)
    by_label: dict[int, list[str]] = defaultdict(list)
    for image, label in sorted(first_labels.items()):
        by_label[label].append(image)
    part = {}
    for label in sorted(by_label):
        images = [by_label[label][i] for i in rng.permutation(len(by_label[label]))]
        n_test = int(round(len(images) * test_fraction))
        n_val = int(round(len(images) * val_fraction))
        for i, image in enumerate(images):
            part[image] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return part


def load(root, split: str = "all", *, image_size, channels, val_fraction: float = 0.1,
         test_fraction: float = 0.1, seed: int = 0, min_confidence: float | None = None,
         **_unused) -> ImageFileDataset:
    folder = find_root(Path(root))
    label_file = folder / "label" / "label.lst"
    asked, split = split, {"training": "train", "validation": "val"}.get(split.lower(),
                                                                         split.lower())
    if split not in (*SPLITS, "all"):
        raise OpenferError(f"unknown ExpW split {asked!r}; use train, val, test or all (ExpW has "
                           "no official split: see val_fraction, test_fraction, seed)")
    rows, dropped, problems = unique_faces(read_labels(label_file), label_file)
    if min_confidence is not None:
        kept = [r for r in rows if r["face_box_cofidence"] >= float(min_confidence)]
        if len(kept) < len(rows):
            dropped[f"box confidence below {min_confidence}"] = len(rows) - len(kept)
        rows = kept
    origin = folder / "image" / "origin"
    missing = [r for r in rows if not (origin / r["image_name"]).is_file()]
    if missing:
        example = missing[0]
        raise DataFormatError(label_file, f"{len(missing)} listed face(s) have no image in "
                              f"{origin}, e.g. {example['image_name']}; extract the whole image "
                              "archive there", line=example["line"], field="image_name")
    if split != "all":
        first_labels: dict[str, int] = {}
        for row in rows:
            first_labels.setdefault(row["image_name"], row["expression_label"])
        part = split_images(first_labels, float(val_fraction), float(test_fraction), int(seed))
        rows = [r for r in rows if part[r["image_name"]] == split]
    if not rows:
        raise OpenferError(f"ExpW split {split!r} of {label_file} has no faces")
    labels = np.asarray([r["expression_label"] for r in rows]) - EXPW.base
    regions = [(r["face_box_left"], r["face_box_top"], r["face_box_right"] - r["face_box_left"],
                r["face_box_bottom"] - r["face_box_top"]) for r in rows]
    dataset = ImageFileDataset([origin / r["image_name"] for r in rows], labels, EXPW.emotions,
                               image_size=image_size, channels=channels, regions=regions,
                               name=f"expw:{split}", label_set=EXPW,
                               native_labels=labels + EXPW.base)
    dataset.sources = [f"{label_file.name}:{r['line']}" for r in rows]
    dataset.targets["box_confidence"] = np.asarray([r["face_box_cofidence"] for r in rows],
                                                   np.float32)
    dataset.dropped.update(dropped)
    dataset.problems.extend(problems)
    return dataset
