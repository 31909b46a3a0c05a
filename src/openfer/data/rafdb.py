"""RAF-DB basic and compound (Li, Deng & Du, CVPR 2017) in the owners' layout (FORMATS.md
section 1).

``root`` is the ``basic/`` folder (or its parent); for ``subset="compound"`` (the ``rafdb_compound``
data set) the ``compound/`` folder (or its parent), laid out the same way, with labels 1..11 of
:data:`openfer.labels.RAFDB_COMPOUND` (1 Happily Surprised ... 11 Disgustedly Surprised; FORMATS.md
1.5)::

    EmoLabel/list_patition_label.txt      "<image_name> <label>", 1..7 in RAF order
                                          (list_partition_label.txt accepted too)
    Image/aligned/<stem>_aligned.jpg      100x100 aligned faces (default; an extra aligned/
                                          level from unzipping is accepted)
    Image/original/<stem>.jpg             web images, cropped with
    Annotation/boundingbox/<stem>_boundingbox.txt   "x_min y_min x_max y_max" when present
    Annotation/manual/<stem>_manu_attri.txt         5 landmark lines, gender, race, age

The split comes from the name prefix (basic: ``train_`` 12,271 / ``test_`` 3,068; compound:
3,162 / 792, the lines a public split script slices at). Labels stay in RAF's order
(:data:`openfer.labels.RAFDB`, 1 Surprise ... 7 Neutral), mapped by name to any model.
Files not in the label file are ignored. With ``attributes=True`` the manual annotations become
``dataset.targets`` ``gender`` (0 male, 1 female, 2 unsure), ``race`` (0 Caucasian,
1 African-American, 2 Asian) and ``age`` (0: 0-3, 1: 4-19, 2: 20-39, 3: 40-69, 4: 70+), -1 where
a file is missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataFormatError, OpenferError
from ..labels import RAFDB, RAFDB_COMPOUND
from .dataset import ImageFileDataset
from .text import read_text

LABEL_FILES = ("list_patition_label.txt", "list_partition_label.txt")
ATTRIBUTES = ("gender", "race", "age")
ATTRIBUTE_RANGES = {"gender": 3, "race": 3, "age": 5}


SUBSETS = {"basic": RAFDB, "compound": RAFDB_COMPOUND}


def find_root(root: Path, subset: str = "basic") -> Path:
    for candidate in (root, root / subset):
        if any((candidate / "EmoLabel" / name).is_file() for name in LABEL_FILES):
            return candidate
    raise OpenferError(f"no RAF-DB label file under {root}: expected "
                       f"{subset}/EmoLabel/list_patition_label.txt (the owners' spelling)")


def read_labels(path: Path, subset: str = "basic") -> list[tuple[str, int, int]]:
    """``(image_name, label, line)`` for every line of a RAF-DB label file of ``subset`` (basic
    or compound)."""
    label_set = SUBSETS[subset]
    rows = []
    for number, raw in enumerate(read_text(path).splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DataFormatError(path, f"expected '<image_name> <label>', found {line[:60]!r}",
                                  line=number)
        name, label = parts
        if not label.isdigit() or int(label) not in label_set.codes:
            codes = ", ".join(f"{c} {label_set.name_of(c)}" for c in label_set.codes)
            raise DataFormatError(path, f"label {label!r} is not a RAF-DB {subset} code; "
                                  f"expected {label_set.base}..{label_set.codes[-1]} ({codes})",
                                  line=number, field="label")
        if not (name.startswith("train_") or name.startswith("test_")):
            raise DataFormatError(path, f"image name {name!r} starts with neither train_ nor "
                                  "test_", line=number)
        rows.append((name, int(label), number))
    if not rows:
        raise DataFormatError(path, "the label file has no entries")
    return rows


def read_manual_attributes(path: Path) -> tuple[np.ndarray, dict[str, int]]:
    """Landmarks (5, 2) and gender/race/age codes from a ``*_manu_attri.txt`` file."""
    lines = [t.strip() for t in read_text(path).splitlines() if t.strip()]
    if len(lines) < 8:
        raise DataFormatError(path, f"expected 8 lines (5 landmarks, gender, race, age), "
                              f"found {len(lines)}")
    try:
        landmarks = np.array([[float(v) for v in t.split()[:2]] for t in lines[:5]])
    except (ValueError, IndexError):
        raise DataFormatError(path, "landmark lines 1-5 must hold two numbers 'x y'") from None
    codes = {}
    for offset, name in enumerate(ATTRIBUTES):
        text = lines[5 + offset]
        if not text.isdigit() or int(text) >= ATTRIBUTE_RANGES[name]:
            raise DataFormatError(path, f"{name} {text!r} is not a code "
                                  f"0..{ATTRIBUTE_RANGES[name] - 1}", line=6 + offset, field=name)
        codes[name] = int(text)
    return landmarks, codes


def _aligned_dir(root: Path) -> Path:
    base = root / "Image" / "aligned"
    return base / "aligned" if (base / "aligned").is_dir() else base


def load(root, split: str, *, image_size, channels, images: str = "aligned",
         attributes: bool = False, subset: str = "basic", **_unused) -> ImageFileDataset:
    if subset not in SUBSETS:
        raise OpenferError(f"RAF-DB subset must be basic or compound, not {subset!r}")
    label_set = SUBSETS[subset]
    root = find_root(Path(root), subset)
    label_file = next(root / "EmoLabel" / n for n in LABEL_FILES
                      if (root / "EmoLabel" / n).is_file())
    split = {"training": "train", "val": "test", "validation": "test"}.get(split.lower(),
                                                                          split.lower())
    if split not in ("train", "test", "all"):
        raise OpenferError(f"unknown RAF-DB split {split!r}; use train, test or all")
    rows = [r for r in read_labels(label_file, subset)
            if split == "all" or r[0].startswith(split + "_")]
    paths, labels, regions = [], [], []
    for name, label, number in rows:
        stem = Path(name).stem
        if images == "aligned":
            path = _aligned_dir(root) / f"{stem}_aligned.jpg"
            region = None
        elif images == "original":
            path = root / "Image" / "original" / name
            box_file = root / "Annotation" / "boundingbox" / f"{stem}_boundingbox.txt"
            region = _read_box(box_file) if box_file.is_file() else None
        else:
            raise OpenferError(f"RAF-DB images must be 'aligned' or 'original', not {images!r}")
        if not path.is_file():
            raise DataFormatError(label_file, f"image {path} listed here does not exist",
                                  line=number)
        paths.append(path)
        labels.append(label - label_set.base)
        regions.append(region)
    dataset = ImageFileDataset(paths, np.asarray(labels), label_set.emotions,
                               image_size=image_size, channels=channels,
                               regions=regions if images == "original" else None,
                               name=f"{label_set.name}:{split}", label_set=label_set,
                               native_labels=np.asarray(labels) + label_set.base)
    if attributes:
        values = {a: np.full(len(rows), -1, np.int64) for a in ATTRIBUTES}
        for i, (name, _, _) in enumerate(rows):
            path = root / "Annotation" / "manual" / f"{Path(name).stem}_manu_attri.txt"
            if path.is_file():
                _, codes = read_manual_attributes(path)
                for a in ATTRIBUTES:
                    values[a][i] = codes[a]
            else:
                dataset.dropped["missing attribute files"] += 1
        dataset.targets.update(values)
    return dataset


def _read_box(path: Path) -> tuple[float, float, float, float]:
    parts = path.read_text(encoding="utf-8").split()
    try:
        x1, y1, x2, y2 = (float(v) for v in parts[:4])
    except ValueError:
        raise DataFormatError(path, "expected four numbers 'x_min y_min x_max y_max'") from None
    return (x1, y1, x2 - x1, y2 - y1)
