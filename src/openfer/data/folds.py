"""Subject-independent k-fold splits (the CK+ / MMI protocol of FMPN and most FER papers).

:func:`subject_folds` assigns whole subjects to folds, so that no person is in both the training
and the test part of any fold: subjects sorted, subject number ``i`` in fold ``i mod k`` (the
rule of the ifp-uiuc CK+ scripts, FORMATS.md 4.5). :func:`fold_of_names` reads FMPN's released
lists (``test_ids_<k>.csv``: one image name per line) instead, and
:func:`check_subject_independent` verifies any assignment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataFormatError, OpenferError
from .text import read_text


def subject_of(name: str) -> str:
    """``S005_001_00000011.png`` → ``S005`` (CK+ and FMPN's MMI names start with the subject)."""
    return Path(name).name.split("_")[0]


def subject_folds(subjects: Sequence[str], k: int = 10) -> np.ndarray:
    """Fold index per sample: sorted distinct subjects, subject ``i`` → fold ``i mod k``."""
    distinct = sorted(set(subjects))
    if k < 2:
        raise OpenferError(f"k-fold needs at least 2 folds, not {k}")
    if len(distinct) < k:
        raise OpenferError(f"{len(distinct)} subjects cannot fill {k} subject-independent folds")
    fold = {s: i % k for i, s in enumerate(distinct)}
    return np.array([fold[s] for s in subjects], np.int64)


def read_name_list(path: Path) -> list[str]:
    """One image name per line, no header (FMPN's ``train_ids_<k>.csv`` / ``test_ids_<k>.csv``)."""
    names = []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        name = line.strip().strip(",")
        if not name:
            continue
        if "/" in name or "\\" in name or name.startswith("."):
            raise DataFormatError(path, f"expected an image file name, found {name[:60]!r}",
                                  line=number)
        names.append(name)
    return names


def fold_of_names(folder: str | Path, names: Sequence[str], k: int = 10) -> np.ndarray:
    """Fold index per name from FMPN's ``test_ids_<fold>.csv`` lists (-1: in no test list)."""
    folder = Path(folder)
    where: dict[str, int] = {}
    for fold in range(k):
        path = folder / f"test_ids_{fold}.csv"
        if not path.is_file():
            raise OpenferError(f"{path} not found: fold lists are test_ids_0.csv ... "
                               f"test_ids_{k - 1}.csv (FMPN's layout)")
        for name in read_name_list(path):
            if name in where and where[name] != fold:
                raise DataFormatError(path, f"{name} is also in test_ids_{where[name]}.csv: "
                                      "test folds must not overlap")
            where[name] = fold
    return np.array([where.get(Path(n).name, -1) for n in names], np.int64)


def check_subject_independent(subjects: Sequence[str], folds: np.ndarray) -> None:
    """Raise if a subject appears in two folds (so in a fold's training and test parts)."""
    seen: dict[str, int] = {}
    for subject, fold in zip(subjects, np.asarray(folds).tolist()):
        if fold < 0:
            continue
        if seen.setdefault(subject, fold) != fold:
            raise OpenferError(f"subject {subject} is in folds {seen[subject]} and {fold}: the "
                               "folds are not subject-independent")


def select_fold(folds: np.ndarray, split: str, fold: int | None, k: int) -> np.ndarray:
    """Boolean mask of the samples of ``split`` (all / train / test) for ``fold``."""
    split = {"val": "test", "validation": "test", "training": "train"}.get(split, split)
    if split == "all":
        return np.ones(len(folds), bool)
    if split not in ("train", "test"):
        raise OpenferError(f"split must be all, train or test (with fold=0..{k - 1}), not "
                           f"{split!r}")
    if fold is None:
        raise OpenferError(f"split {split!r} needs a fold: pass fold=0..{k - 1} (recipe: "
                           "data.options.fold; openfer cv sets it for each fold)")
    if not 0 <= int(fold) < k:
        raise OpenferError(f"fold {fold} is outside 0..{k - 1}")
    return (folds == int(fold)) if split == "test" else (folds != int(fold)) & (folds >= 0)


def subject_split(subjects: Sequence[str], split: str, fold: int | None, k: int = 10, *,
                  names: Sequence[str] | None = None, fold_lists: str | Path | None = None
                  ) -> np.ndarray:
    """Indices of the samples of ``split`` (all / train / test of ``fold``) in a
    subject-independent k-fold split: FMPN's lists in ``fold_lists`` (matched on ``names``) when
    given, else :func:`subject_folds`; the assignment is checked with
    :func:`check_subject_independent` either way."""
    if fold_lists:
        fold_index = fold_of_names(fold_lists, [Path(n).name for n in names or ()], k)
    elif split == "all":
        fold_index = np.zeros(len(subjects), np.int64)      # no folds asked for
    else:
        fold_index = subject_folds(subjects, k)
    check_subject_independent(subjects, fold_index)
    return np.flatnonzero(select_fold(fold_index, split, fold, k))
