"""FER+ (Barsoum et al., ICMI 2016): FER2013's faces with ten crowd votes each
(``microsoft/FERPlus``, FORMATS.md section 8.3).

Two layouts:

- the vote file beside the pixels: ``root`` is ``fer2013.csv`` (or ``.csv.gz``, or their folder)
  and ``fer2013new.csv`` sits beside it (or is named by ``labels=<file>``)::

      Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF

  One row per FER2013 row, in the same order; the two files are paired within each usage
  (``Training``, ``PublicTest``, ``PrivateTest``), by position, as the FER+ README says, and a
  usage the pixel file lacks is simply absent. Rows with an empty ``Image name`` were voted
  "not a face" and are dropped (counted).
- the folders ``src/generate_training_data.py`` writes: ``FER2013Train/``, ``FER2013Valid/``,
  ``FER2013Test/`` (the Training, PublicTest and PrivateTest rows), each with its PNGs and a
  header-less ``label.csv`` of ``fer0000000.png,4,0,0,1,3,2,0,0,0,0`` rows (or, in the copies
  committed to the FERPlus repository, with a quoted face box as the second field).

Labels, as FERPlus's ``src/ferplus.py`` makes them in its ``majority`` mode: a single vote is
treated as noise and zeroed; a face whose top class then has more than half of the votes gets
that class; any other face, or one whose top class is ``unknown`` or ``NF``, is dropped
(counted in ``dataset.dropped``). Eight classes in the vote-column order (neutral first,
contempt last; :data:`openfer.labels.FERPLUS`), not FER2013's. ``mode="crossentropy"`` keeps
and labels the faces as FERPlus's ``crossentropy`` mode does instead (:func:`vote_distribution`).
Every kept face's ten raw counts are in ``dataset.targets["votes"]`` (N, 10) and its label
distribution over the eight classes in ``dataset.targets["label_distribution"]`` (one-hot in
``majority`` mode), which a recipe trains on with ``loss.soft_targets: label_distribution``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import DataFormatError, OpenferError
from ..labels import FERPLUS
from .dataset import ArrayFaceDataset, FaceDataset, ImageFileDataset
from .fer2013 import CSV_NAMES, USAGES, canonical_split, csv_rows, read_csv
from .text import csv_lines

VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
                "contempt", "unknown", "NF")
MODES = ("majority", "crossentropy")
FOLDERS = {"Training": "FER2013Train", "PublicTest": "FER2013Valid",
           "PrivateTest": "FER2013Test"}


def majority_label(votes: np.ndarray) -> int | None:
    """FERPlus's ``majority`` mode: the class (0..7) of a face's ten vote counts, or ``None``
    when no class has more than half of the votes that remain after single votes are zeroed, or
    when the winner is ``unknown`` / ``NF``."""
    kept = np.where(votes <= 1, 0, votes)
    total = kept.sum()
    if total <= 0 or kept.max() <= 0.5 * total:
        return None
    winner = int(np.argmax(kept))
    return winner if winner < len(FERPLUS.emotions) else None


def vote_distribution(votes: np.ndarray) -> np.ndarray | None:
    """FERPlus's ``crossentropy`` (and ``probability``) mode: the label distribution over the
    eight classes, or ``None`` when FERPlus discards the face. As ``src/ferplus.py`` does it:
    single votes are zeroed; the top classes are taken, most votes first (ties together), until
    they hold 75 % of the votes or three are taken, stopping at ``unknown`` / ``NF`` (dropped if
    other classes came first); under half the votes covered, or more than three classes, and
    the face is "unknown"; a face whose largest share is ``unknown`` / ``NF`` is discarded."""
    raw = np.where(votes <= 1, 0, votes).astype(np.float64)
    total = raw.sum()
    chosen = np.zeros(len(raw))
    covered, count, valid = 0.0, 0, True
    while covered < 0.75 * total and count < 3 and valid:
        top = raw.max()
        for i in range(len(raw)):
            if raw[i] == top:
                chosen[i], raw[i] = top, 0
                covered += chosen[i]
                count += 1
                if i >= len(FERPLUS.emotions):          # unknown or NF among the top
                    valid = False
                    if chosen.sum() > top:
                        chosen[i] = 0
                        count -= 1
                    break
    if chosen.sum() <= 0.5 * total or count > 3 or np.argmax(chosen) >= len(FERPLUS.emotions):
        return None
    shares = chosen[:len(FERPLUS.emotions)]
    return shares / shares.sum()


def _votes(fields: list[str], path: Path, line: int) -> np.ndarray:
    try:
        counts = [int(v) for v in fields]
    except ValueError:
        raise DataFormatError(path, f"expected {len(VOTE_COLUMNS)} integer vote counts "
                              f"({', '.join(VOTE_COLUMNS)}), found {','.join(fields)[:60]!r}",
                              line=line) from None
    if any(not 0 <= c <= 100 for c in counts) or sum(counts) > 100:
        raise DataFormatError(path, "vote counts must be between 0 and the number of taggers "
                              "(10 in FER+)", line=line)
    return np.array(counts, np.int64)


def read_vote_file(path: Path) -> dict[str, list[tuple[str, np.ndarray, int]]]:
    """``fer2013new.csv``: per usage, ``(image name, votes, line)`` in file order."""
    rows: dict[str, list[tuple[str, np.ndarray, int]]] = {u: [] for u in USAGES}
    header = "Usage,Image name," + ",".join(VOTE_COLUMNS)
    checked = False
    for line, row in csv_rows(path, require="Image name", hint=f"FER+'s header is {header}"):
        if not checked:                                  # the header's columns, once
            missing = [c for c in ("Usage", *VOTE_COLUMNS) if c not in row]
            if missing:
                raise DataFormatError(path, f"the header has no column {missing[0]!r}", line=1,
                                      hint=f"FER+'s header is {header}")
            checked = True
        usage = row["Usage"].strip()
        if usage not in rows:
            raise DataFormatError(path, f"unknown Usage {usage!r}; expected one of "
                                  f"{', '.join(USAGES)}", line=line, field="Usage")
        rows[usage].append((row["Image name"].strip(),
                            _votes([row[c] for c in VOTE_COLUMNS], path, line), line))
    return rows


def read_label_csv(path: Path) -> list[tuple[str, np.ndarray, int]]:
    """A generated folder's ``label.csv``: ``(image name, votes, line)``; rows of 11 fields, or
    12 with the older quoted face box second."""
    out = []
    for line, row in csv_lines(path):
        if not row or not "".join(row).strip():
            continue
        if len(row) not in (11, 12):
            raise DataFormatError(path, f"expected 11 fields (name and 10 vote counts) or 12 "
                                  f"(with a face box), found {len(row)}", line=line)
        out.append((row[0].strip(), _votes(row[-10:], path, line), line))
    if not out:
        raise DataFormatError(path, "the label file has no rows")
    return out


def _labelled(rows, mode: str) -> tuple[list[int], list[int], list[np.ndarray],
                                        list[np.ndarray], Counter]:
    """Indices, labels, votes and label distributions of the rows FERPlus keeps in ``mode``,
    and the count of the rest by reason."""
    if mode not in MODES:
        raise OpenferError(f"FER+ option mode={mode!r}: use majority or crossentropy")
    keep, labels, votes, shares = [], [], [], []
    dropped: Counter = Counter()
    for i, (name, counts, _) in enumerate(rows):
        if not name:
            dropped["not a face (no image name)"] += 1
            continue
        if mode == "majority":
            label = majority_label(counts)
            distribution = None if label is None else np.eye(len(FERPLUS.emotions))[label]
        else:
            distribution = vote_distribution(counts)
            label = None if distribution is None else int(np.argmax(distribution))
        if label is None:
            dropped["no majority, unknown or not a face" if mode == "majority" else
                    "votes too spread, unknown or not a face"] += 1
            continue
        keep.append(i)
        labels.append(label)
        votes.append(counts)
        shares.append(distribution)
    return keep, labels, votes, shares, dropped


def _finish(dataset: FaceDataset, votes: list[np.ndarray], shares: list[np.ndarray],
            dropped: Counter) -> FaceDataset:
    dataset.targets["votes"] = np.stack(votes) if votes else np.zeros((0, 10), np.int64)
    dataset.targets["label_distribution"] = np.stack(shares).astype(np.float32) if shares else \
        np.zeros((0, len(FERPLUS.emotions)), np.float32)
    dataset.dropped.update(dropped)
    return dataset


def _pixel_file(root: Path) -> Path:
    if root.is_file():
        return root
    for name in CSV_NAMES:
        if (root / name).is_file():
            return root / name
    raise OpenferError(f"no fer2013.csv(.gz) in {root}: FER+ labels FER2013's pixels, which "
                       "come from FER2013's own file")


def load(root, split: str, *, image_size=None, channels=None, labels: str | Path | None = None,
         mode: str = "majority", **_unused) -> FaceDataset:
    root = Path(root)
    if not root.exists():
        raise OpenferError(f"FER+ data not found at {root}: pass fer2013.csv (with "
                           "fer2013new.csv beside it) or the folder of FER2013Train/ ...")
    usage = canonical_split(split)
    if usage not in USAGES:
        raise OpenferError(f"FER+ split {split!r}: use Training, PublicTest or PrivateTest")
    if root.is_dir() and (root / FOLDERS[usage]).is_dir():
        return _load_folders(root, usage, image_size, channels, mode)
    pixels = _pixel_file(root)
    vote_file = Path(labels) if labels else pixels.parent / "fer2013new.csv"
    if not vote_file.is_file():
        raise OpenferError(f"FER+ vote file {vote_file} not found: download fer2013new.csv from "
                           "microsoft/FERPlus and put it beside fer2013.csv (or pass "
                           "labels=<file>)")
    rows = read_vote_file(vote_file)[usage]
    images, _, lines = read_csv(pixels, usage)
    if len(rows) != len(images):
        raise OpenferError(f"{vote_file} has {len(rows)} {usage} rows and {pixels} has "
                           f"{len(images)}: FER+ pairs the two files row by row, so they must "
                           "be the original files, whole")
    keep, classes, votes, shares, dropped = _labelled(rows, mode)
    dataset = ArrayFaceDataset(images[keep], np.asarray(classes, np.int64), FERPLUS.emotions,
                               name=f"ferplus:{usage}", label_set=FERPLUS,
                               sources=[f"{pixels.name}:{lines[i]}" for i in keep])
    return _finish(dataset, votes, shares, dropped)


def _load_folders(root: Path, usage: str, image_size, channels, mode: str) -> FaceDataset:
    folder = root / FOLDERS[usage]
    rows = read_label_csv(folder / "label.csv")
    keep, classes, votes, shares, dropped = _labelled(rows, mode)
    paths = [folder / rows[i][0] for i in keep]
    absent = [p for p in paths if not p.is_file()]
    if absent:
        raise DataFormatError(folder / "label.csv", f"{len(absent)} listed images are missing, "
                              f"e.g. {absent[0].name}", line=rows[keep[paths.index(absent[0])]][2])
    dataset = ImageFileDataset(paths, np.asarray(classes, np.int64), FERPLUS.emotions,
                               image_size=tuple(image_size or (48, 48)), channels=channels or 1,
                               name=f"ferplus:{usage}", label_set=FERPLUS)
    return _finish(dataset, votes, shares, dropped)
