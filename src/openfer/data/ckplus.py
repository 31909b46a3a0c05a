"""CK+ (Extended Cohn-Kanade) in its owners' layout (FORMATS.md section 4).

::

    cohn-kanade-images/S005/001/S005_001_00000001.png ... S005_001_00000011.png
    Emotion/S005/001/S005_001_00000011_emotion.txt     ("   3.0000000e+00"; or Emotion_labels/)

Each of the labelled sequences (327 in CK+) gives its last ``frames`` frames (3, by sorted file
name) with the sequence's label; with ``neutral=True`` its first frame is also a sample, labelled
neutral. ``contempt=False`` drops the contempt sequences. Codes (CK+ README): 0 neutral,
1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy, 6 sadness, 7 surprise. Unlabelled sequences (no
or an empty ``Emotion`` folder) and ``.DS_Store`` files are skipped; mixed grey/RGB frames are
converted to the channels asked for.

Splits: ``all``, or ``train`` / ``test`` of ``fold`` (0..``folds``-1) in a subject-independent
k-fold split: generated (subject ``i`` in sorted order → fold ``i mod folds``) or, with
``fold_lists=<folder>``, FMPN's released ``test_ids_<k>.csv`` lists. ``dataset.subjects`` holds
each sample's subject and ``dataset.reference_paths`` the first (neutral) frame of its sequence,
from which :mod:`openfer.data.motion_masks` computes FMPN's motion priors. ``crop="detect"``
crops each frame to the largest face a detector (``detector``, default ``auto``) finds, widened by
10 % (:mod:`openfer.data.detected`); the default ``none`` keeps the whole 640x490 frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataFormatError, OpenferError
from ..labels import CKPLUS, Emotion
from .dataset import ImageFileDataset
from .detected import crop_regions
from .folds import subject_split
from .text import read_text

LABEL_DIRS = ("Emotion", "Emotion_labels")


def read_emotion_file(path: Path) -> int:
    """The code in a ``*_emotion.txt`` file (a float in exponent notation) as an int 0..7."""
    text = read_text(path).strip()
    try:
        value = float(text)
    except ValueError:
        raise DataFormatError(path, f"expected one emotion code such as '3.0000000e+00', found "
                              f"{text[:40]!r}", line=1) from None
    if not 0 <= value <= 7 or value != int(value):          # NaN fails the first test
        raise DataFormatError(path, f"emotion code {text!r} is not one of 0..7 (CK+ README)",
                              line=1)
    return int(value)


def sequences(root: Path) -> list[tuple[str, str, list[Path], int]]:
    """(subject, sequence, sorted frames, code) for every labelled sequence."""
    images = root / "cohn-kanade-images"
    if not images.is_dir():
        raise OpenferError(f"{images} not found: CK+ frames are expected in "
                           "cohn-kanade-images/S005/001/S005_001_00000001.png")
    labels = next((root / d for d in LABEL_DIRS if (root / d).is_dir()), None)
    if labels is None:
        raise OpenferError(f"no Emotion/ (or Emotion_labels/) folder under {root}: CK+'s "
                           "labels come from Emotion_labels.zip")
    found = []
    for subject in sorted(p for p in images.iterdir() if p.is_dir()):
        for sequence in sorted(p for p in subject.iterdir() if p.is_dir()):
            label_files = sorted((labels / subject.name / sequence.name).glob("*_emotion.txt"))
            if not label_files:
                continue                                  # unlabelled sequence
            if len(label_files) > 1:
                raise DataFormatError(label_files[1], "a CK+ sequence has one emotion file")
            frames = sorted(sequence.glob("*.png"))
            if not frames:
                raise OpenferError(f"{sequence}: labelled sequence without PNG frames")
            found.append((subject.name, sequence.name, frames, read_emotion_file(label_files[0])))
    if not found:
        raise OpenferError(f"no labelled CK+ sequences under {root}")
    return found


def load(root, split: str = "all", *, image_size, channels, frames: int = 3,
         neutral: bool = False, contempt: bool = True, fold: int | None = None,
         folds: int = 10, fold_lists: str | Path | None = None, crop: str = "none",
         detector: str = "auto", **_unused) -> ImageFileDataset:
    root = Path(root)
    keep = [e for e in CKPLUS.emotions if (neutral or e is not Emotion.NEUTRAL)
            and (contempt or e is not Emotion.CONTEMPT)]
    paths, labels, codes, subjects, references = [], [], [], [], []
    dropped = 0
    for subject, _, sequence_frames, code in sequences(root):
        emotion = CKPLUS.emotions[code]
        if emotion not in keep:
            dropped += 1
            continue
        samples = [(f, code) for f in sequence_frames[-frames:]]
        if neutral:
            samples.insert(0, (sequence_frames[0], 0))
        for path, sample_code in samples:
            paths.append(path)
            codes.append(sample_code)
            labels.append(keep.index(CKPLUS.emotions[sample_code]))
            subjects.append(subject)
            references.append(sequence_frames[0])
    index = subject_split(subjects, split, fold, folds, names=[p.name for p in paths],
                          fold_lists=fold_lists)
    if not len(index):
        raise OpenferError(f"CK+ split {split!r} (fold {fold}) has no samples")
    chosen_paths = [paths[i] for i in index]
    regions, problems = crop_regions(chosen_paths, crop, detector, "CK+")
    dataset = ImageFileDataset(chosen_paths, np.asarray(labels)[index], keep,
                               image_size=image_size, channels=channels, regions=regions,
                               name=f"ckplus:{split}" + (f":fold{fold}" if fold is not None
                                                         else ""),
                               label_set=CKPLUS, native_labels=np.asarray(codes)[index])
    dataset.subjects = [subjects[i] for i in index]
    dataset.reference_paths = [references[i] for i in index]
    dataset.problems += problems
    if dropped:
        dataset.dropped["contempt sequences"] = dropped
    return dataset
