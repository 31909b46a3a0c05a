"""FER2013 (Goodfellow et al., ICONIP 2013) in every layout its owners and Kaggle distribute.

Accepted ``root`` (see ../shared/docs/FORMATS.md section 8):

* ``fer2013.csv`` (plain or gzip-compressed, detected by content): header ``emotion,pixels,Usage``;
  ``pixels`` holds 2,304 space-separated values 0..255 (a 48x48 gray face, row-major); ``Usage``
  is ``Training`` (28,709 rows), ``PublicTest`` (3,589) or ``PrivateTest`` (3,589).
* ``icml_face_data.csv``: the same rows under ``emotion, Usage, pixels`` (other order, leading
  spaces). Columns are always selected by name, never by position.
* Kaggle's pair ``train.csv`` (``emotion,pixels``) and ``test.csv`` (``pixels`` only: unlabelled,
  readable for prediction, refused for evaluation).
* Kaggle's image folders ``train/<emotion>/*.jpg`` and ``test/<emotion>/*.jpg``; emotion folders
  are mapped by name (their alphabetical order is not FER2013's index order).
* A directory holding any of the above.

Split names: ``Training``, ``PublicTest``, ``PrivateTest`` (aliases ``train``, ``val``) and, for
the Kaggle layouts, ``test``; ``all`` reads every row. Labels are FER2013's own indices
(0 Angry ... 6 Neutral), :data:`openfer.labels.FER2013`.
"""

from __future__ import annotations

import csv
import gzip
import io
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import DataFormatError, OpenferError
from ..labels import FER2013
from ..process_state import catching_warnings
from .dataset import ArrayFaceDataset, FaceDataset

USAGES = ("Training", "PublicTest", "PrivateTest")
PIXELS = 48 * 48
_SPLIT_ALIASES = {"training": "Training", "train": "Training", "publictest": "PublicTest",
                  "public": "PublicTest", "val": "PublicTest", "valid": "PublicTest",
                  "validation": "PublicTest", "privatetest": "PrivateTest",
                  "private": "PrivateTest", "all": "all", "test": "test"}
CSV_NAMES = ("fer2013.csv", "fer2013.csv.gz", "icml_face_data.csv", "icml_face_data.csv.gz")


def canonical_split(split: str) -> str:
    try:
        return _SPLIT_ALIASES[split.strip().lower().replace("_", "").replace("-", "")]
    except KeyError:
        raise OpenferError(f"unknown FER2013 split {split!r}; use Training, PublicTest, "
                           "PrivateTest (or train, val), 'test' for Kaggle's test files, "
                           "or all") from None


def open_text(path: Path) -> io.TextIOBase:
    """Open a text file that may be gzip-compressed (detected by its magic bytes)."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def parse_pixels(text: str, path: Path, line: int) -> np.ndarray:
    """Parse one ``pixels`` field into a (48, 48) uint8 array, or raise naming the line."""
    with catching_warnings():
        warnings.simplefilter("error")
        try:
            values = np.fromstring(text, dtype=np.int32, sep=" ")
        except (DeprecationWarning, ValueError):
            values = None
    if values is None or values.size != PIXELS:
        tokens = text.split()
        bad = next((t for t in tokens if not t.lstrip("-").isdigit()), None)
        if bad is not None:
            raise DataFormatError(path, f"pixel value {bad[:20]!r} is not an integer",
                                  line=line, field="pixels")
        raise DataFormatError(path, f"expected {PIXELS} pixel values (a 48x48 face), "
                              f"found {len(tokens)}", line=line, field="pixels")
    if values.min() < 0 or values.max() > 255:
        bad = values[(values < 0) | (values > 255)][0]
        raise DataFormatError(path, f"pixel value {bad} is outside 0..255", line=line,
                              field="pixels")
    return values.astype(np.uint8).reshape(48, 48)


def csv_rows(path: Path, require: str = "pixels",
             hint: str = "FER2013 files have the header 'emotion,pixels,Usage' (or Kaggle's "
                         "'emotion,pixels')") -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line_number, row)`` of a FER2013-style CSV (plain or gzip; FER+'s vote file too),
    column names stripped of spaces; a file without the ``require`` column, or malformed, raises
    :class:`DataFormatError` with its line."""
    try:
        handle = open_text(path)
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise DataFormatError(path, "file is empty; expected a header such as "
                                  "'emotion,pixels,Usage'") from None
        except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, csv.Error) as exc:
            raise DataFormatError(path, f"cannot read the header ({exc})") from None
        columns = [c.strip() for c in header]
        if require not in columns:
            raise DataFormatError(path, f"header {header!r} has no {require!r} column",
                                  line=1, hint=hint)
        try:
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != len(columns):
                    raise DataFormatError(path, f"expected {len(columns)} fields "
                                          f"({','.join(columns)}), found {len(row)}",
                                          line=reader.line_num)
                yield reader.line_num, dict(zip(columns, row))
        except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, csv.Error) as exc:
            raise DataFormatError(path, f"cannot read the file ({exc})",
                                  line=reader.line_num + 1) from None


def read_csv(path: str | Path, split: str = "all", *, kaggle_split: str | None = None
             ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Read the rows of a FER2013 CSV that belong to ``split``.

    Returns ``images`` (N, 48, 48) uint8, ``labels`` (N,) int64 (``-1`` where the file has no
    ``emotion`` column) and the 1-based line number of each row. ``kaggle_split`` is the usage
    of every row for files without a ``Usage`` column (``Training`` for train.csv).
    """
    path = Path(path)
    split = canonical_split(split)
    images, labels, lines = [], [], []
    usages_seen: set[str] = set()
    for line, row in csv_rows(path):
        usage = row.get("Usage", kaggle_split or "all").strip()
        if "Usage" in row and usage not in USAGES:
            raise DataFormatError(path, f"unknown Usage {usage!r}; expected one of "
                                  f"{', '.join(USAGES)}", line=line, field="Usage")
        usages_seen.add(usage)
        if split != "all" and usage != split:
            continue
        label = -1
        if "emotion" in row:
            text = row["emotion"].strip()
            if not (text.isdigit() and int(text) < len(FER2013)):
                raise DataFormatError(path, f"emotion {text[:20]!r} is not a FER2013 label; "
                                      "expected an integer 0..6 (0 Angry, 1 Disgust, 2 Fear, "
                                      "3 Happy, 4 Sad, 5 Surprise, 6 Neutral)",
                                      line=line, field="emotion")
            label = int(text)
        images.append(parse_pixels(row["pixels"], path, line))
        labels.append(label)
        lines.append(line)
    if not images and split != "all":
        if split == "test" and usages_seen & set(USAGES):
            raise OpenferError(f"{path}: split 'test' is ambiguous for fer2013.csv; use "
                               "PublicTest (validation) or PrivateTest (the standard test set)")
        raise OpenferError(f"{path} has no rows of split {split!r}; it has "
                           f"{', '.join(sorted(usages_seen)) or 'no rows'}")
    stack = np.stack(images) if images else np.zeros((0, 48, 48), np.uint8)
    return stack, np.asarray(labels, np.int64), lines


def load(root: str | Path, split: str, **_unused) -> FaceDataset:
    """Load one split of FER2013 from any accepted layout (see the module docstring)."""
    root = Path(root)
    if not root.exists():
        raise OpenferError(f"FER2013 data not found at {root}; pass the path of fer2013.csv "
                           "(or .csv.gz), of Kaggle's train.csv/test.csv, or of their folder")
    split_name = canonical_split(split)
    if root.is_dir():
        return _load_directory(root, split_name)
    kaggle = {"train.csv": "Training", "test.csv": "test"}.get(root.name.lower())
    images, labels, lines = read_csv(root, split_name if not kaggle else "all",
                                     kaggle_split=kaggle)
    if kaggle and split_name not in ("all", kaggle):
        raise OpenferError(f"{root} is Kaggle's {root.name}, which holds only the "
                           f"{kaggle!r} split, not {split!r}")
    return ArrayFaceDataset(images, labels, FER2013.emotions, name=f"fer2013:{split_name}",
                            label_set=FER2013, sources=[f"{root.name}:{n}" for n in lines])


def _load_directory(root: Path, split: str) -> FaceDataset:
    for name in CSV_NAMES:
        if (root / name).is_file():
            return load(root / name, split)
    if (root / "train.csv").is_file() or (root / "test.csv").is_file():
        if split in ("Training", "test"):
            return load(root / ("train.csv" if split == "Training" else "test.csv"), split)
        raise OpenferError(f"{root} holds Kaggle's train.csv/test.csv pair, whose splits are "
                           f"'Training' and 'test' (test.csv mixes PublicTest and PrivateTest, "
                           f"unlabelled); {split!r} is not available there")
    if (root / "train").is_dir() or (root / "test").is_dir():
        return _load_image_folders(root, split)
    raise OpenferError(f"no FER2013 files in {root}: expected fer2013.csv(.gz), "
                       "icml_face_data.csv, train.csv/test.csv, or train/ and test/ folders")


def _load_image_folders(root: Path, split: str) -> FaceDataset:
    """Kaggle's image version: ``train/<emotion>/*.jpg``, ``test/<emotion>/*.jpg``.

    ``PublicTest`` and ``PrivateTest`` select the test images whose names start with that usage
    (e.g. ``PrivateTest_123.jpg``), as the image release names them.
    """
    from .folder import read_folder

    sub = {"Training": "train"}.get(split, "test")
    directory = root / sub
    if not directory.is_dir():
        raise OpenferError(f"{directory} not found: Kaggle's FER2013 image layout has "
                           "train/<emotion>/ and test/<emotion>/ folders")
    dataset = read_folder(directory, image_size=(48, 48), channels=1, label_set=FER2013,
                          name=f"fer2013:{split}")
    if split in ("PublicTest", "PrivateTest"):
        keep = [i for i, p in enumerate(dataset.paths) if p.name.startswith(split)]
        if not keep:
            raise OpenferError(f"no image in {directory} is named {split}_*: this copy does not "
                               "record the usage in file names; use split 'test' for all of it")
        dataset.paths = [dataset.paths[i] for i in keep]
        dataset.labels = dataset.labels[keep]
        dataset.native_labels = dataset.native_labels[keep]
        dataset.sources = [dataset.sources[i] for i in keep]
    return dataset.to_array_dataset()
