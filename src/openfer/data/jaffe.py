"""JAFFE, the Japanese Female Facial Expression database (Lyons et al., FG 1998), as its owners
distribute it (FORMATS.md section 6).

``root`` is the flat image folder (or a parent holding ``jaffe/`` or ``jaffedbase/``)::

    KA.AN1.39.tiff      <subject>.<code><repetition>.<image number>.tiff (or .tif)
    README              other files (README, .DS_Store) are ignored

213 images of 10 subjects, 256x256 greyscale. Codes: AN anger, DI disgust, FE fear,
HA happiness, NE neutral, SA sadness, SU surprise; labels stay in that (alphabetical) order
(:data:`openfer.labels.JAFFE`). ``neutral=False`` drops the NE images (the 6-class protocol).

There is no official split. ``split`` is ``all``, or ``train`` / ``test`` of ``fold``
(0..``folds``-1) in a subject-independent k-fold split: subjects sorted, subject ``i`` in fold
``i mod folds``; the default ``folds=10`` is leave-one-subject-out. ``dataset.subjects`` holds
each image's subject.

Options:

- ``crop="detect"`` crops each face before resizing (the images are whole heads with hair and
  shoulders): the largest face that ``detector`` (default ``auto``) finds, widened by 10 %; an
  image without a detected face stays whole and is named in ``dataset.problems``. Default
  ``none``: the whole image, as public JAFFE readers use it.
- ``ratings=<file>`` reads the semantic ratings table that public readers transcribe from the
  download page (CSV ``N, HAP, SAD, SUR, ANG, DIS, FEA, PIC``, ``PIC`` = ``KM-NE1``: subject,
  hyphen, code and repetition, joined to the images without their image number; ratings of one
  to five from 60 raters). They become ``dataset.targets["ratings"]``, (N, 6) in the order
  anger, disgust, fear, happiness, sadness, surprise, NaN for an image the table lacks (the
  table without the fear images, for one).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import DataFormatError, OpenferError
from ..labels import JAFFE, Emotion
from .dataset import ImageFileDataset
from .detected import crop_regions
from .folds import subject_split
from .text import csv_records

NAME = re.compile(r"^(?P<subject>[A-Za-z]{2})\.(?P<code>[A-Za-z]{2})(?P<repetition>\d+)"
                  r"\.(?P<number>\d+)\.tiff?$", re.IGNORECASE)
#: The ratings table's columns, in the order of :data:`RATING_EMOTIONS`.
RATING_COLUMNS = ("ANG", "DIS", "FEA", "HAP", "SAD", "SUR")
RATING_EMOTIONS = (Emotion.ANGER, Emotion.DISGUST, Emotion.FEAR, Emotion.HAPPINESS,
                   Emotion.SADNESS, Emotion.SURPRISE)
FOLDERS = ("jaffe", "jaffedbase")


def find_root(root: Path) -> Path:
    """The folder that holds the TIFFs: ``root`` itself or its ``jaffe/`` / ``jaffedbase/``."""
    if not root.is_dir():
        raise OpenferError(f"JAFFE folder {root} not found")
    for candidate in (root, *(root / name for name in FOLDERS)):
        if candidate.is_dir() and any(p.suffix.lower() in (".tiff", ".tif")
                                      for p in candidate.iterdir()):
            return candidate
    raise OpenferError(f"no JAFFE images under {root}: expected a folder of files such as "
                       "KA.AN1.39.tiff (or a jaffe/ or jaffedbase/ folder holding them)")


def parse_name(path: Path) -> tuple[str, str, int]:
    """``KA.AN1.39.tiff`` -> (subject ``KA``, code ``AN``, repetition 1)."""
    match = NAME.match(path.name)
    if match is None:
        raise DataFormatError(path, "the file name does not follow JAFFE's "
                              "<subject>.<code><repetition>.<number>.tiff (e.g. KA.AN1.39.tiff)")
    code = match["code"].upper()
    if code not in JAFFE.native_names:
        raise DataFormatError(path, f"expression code {code!r} is not one of JAFFE's "
                              f"{', '.join(JAFFE.native_names)}")
    return match["subject"].upper(), code, int(match["repetition"])


def read_ratings(path: str | Path) -> dict[str, np.ndarray]:
    """The semantic ratings table: ``{"KM-NE1": ratings in RATING_COLUMNS order}``."""
    path = Path(path)
    if not path.is_file():
        raise OpenferError(f"JAFFE ratings file {path} not found")
    ratings: dict[str, np.ndarray] = {}
    for line, row in csv_records(path, (*RATING_COLUMNS, "PIC"), key=str.upper,
                                 hint="expected N, HAP, SAD, SUR, ANG, DIS, FEA, PIC"):
        key = row["PIC"].upper()
        if not re.fullmatch(r"[A-Z]{2}-[A-Z]{2}\d+", key):
            raise DataFormatError(path, f"PIC {key!r} is not <subject>-<code><repetition> "
                                  "(e.g. KM-NE1)", line=line, field="PIC")
        try:
            values = np.array([float(row[c]) for c in RATING_COLUMNS], np.float32)
        except ValueError:
            raise DataFormatError(path, "a rating is not a number", line=line) from None
        if not np.all((values >= 1) & (values <= 5)):
            raise DataFormatError(path, "ratings are on a 1-5 scale", line=line)
        if key in ratings:
            raise DataFormatError(path, f"{key} is rated twice", line=line, field="PIC")
        ratings[key] = values
    if not ratings:
        raise DataFormatError(path, "the ratings file has no rows")
    return ratings


def load(root, split: str = "all", *, image_size, channels, neutral: bool = True,
         fold: int | None = None, folds: int = 10, crop: str = "none", detector: str = "auto",
         ratings: str | Path | None = None, **_unused) -> ImageFileDataset:
    folder = find_root(Path(root))
    keep = [e for e in JAFFE.emotions if neutral or e is not Emotion.NEUTRAL]
    paths, labels, codes, subjects, keys = [], [], [], [], []
    dropped = 0
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in (".tiff", ".tif") or path.name.startswith("."):
            continue                                     # README, .DS_Store, ...
        subject, code, repetition = parse_name(path)
        native = JAFFE.native_names.index(code)
        emotion = JAFFE.emotions[native]
        if emotion not in keep:
            dropped += 1
            continue
        paths.append(path)
        labels.append(keep.index(emotion))
        codes.append(native)
        subjects.append(subject)
        keys.append(f"{subject}-{code}{repetition}")
    if not paths:
        raise OpenferError(f"{folder}: no JAFFE images of the classes asked for")
    index = subject_split(subjects, split, fold, folds)
    chosen = [paths[i] for i in index]
    table = read_ratings(ratings) if ratings is not None else None    # fail before detecting
    regions, problems = crop_regions(chosen, crop, detector, "JAFFE")
    dataset = ImageFileDataset(chosen, np.asarray(labels)[index], keep, image_size=image_size,
                               channels=channels, regions=regions,
                               name=f"jaffe:{split}" + (f":fold{fold}" if fold is not None
                                                        else ""),
                               label_set=JAFFE, native_labels=np.asarray(codes)[index])
    dataset.subjects = [subjects[i] for i in index]
    dataset.problems += problems
    if dropped:
        dataset.dropped["neutral images"] = dropped
    if table is not None:
        dataset.targets["ratings"] = np.stack([
            table.get(keys[i], np.full(len(RATING_COLUMNS), np.nan, np.float32)) for i in index])
    return dataset
