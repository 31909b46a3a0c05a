"""FERG-DB, the Facial Expression Research Group 2D database of stylised characters (Aneja et
al., ACCV 2016), in its owners' layout (FORMATS.md section 7).

``root`` is ``FERG_DB_256/`` (or its parent)::

    FERG_DB_256/<character>/<character>_<emotion>/<character>_<emotion>_<n>.png

Six characters (aia, bonnie, jules, malcolm, mery, ray), seven folder emotions indexed
alphabetically as public loaders do (:data:`openfer.labels.FERG`: anger, disgust, fear, joy,
neutral, sadness, surprise; ``joy`` is happiness). 256x256 colour PNGs, alpha dropped.
Files that are not images (``.DS_Store``, ``Thumbs.db``) are ignored; a folder whose name does
not follow the layout is an error that names it.

There is no official split. ``split`` is ``all``, or ``train`` / ``test`` of one of two
protocols (``protocol`` option):

- ``random`` (default): a stratified random hold-out, ``test_fraction`` (0.1) of every
  character x emotion folder, drawn with ``seed`` (0): the same files for the same options.
- ``character``: leave one character out; ``fold`` 0..5 is the held-out character in sorted
  order (a far harder task: the test faces are of a character never seen); ``folds``, which
  ``openfer cv`` passes, must then be the number of characters.

``dataset.subjects`` holds each image's character.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import OpenferError
from ..labels import FERG
from .dataset import ImageFileDataset
from .folds import select_fold, subject_folds
from .images import is_image_file

FOLDER = "FERG_DB_256"
PROTOCOLS = ("random", "character")


def find_root(root: Path) -> Path:
    for candidate in (root, root / FOLDER):
        if candidate.is_dir() and any(_emotion_folders(c) for c in _characters(candidate)):
            return candidate
    raise OpenferError(f"no FERG-DB images under {root}: expected {FOLDER}/<character>/"
                       "<character>_<emotion>/<character>_<emotion>_<n>.png")


def _characters(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _emotion_folders(character: Path) -> list[Path]:
    return sorted(p for p in character.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and p.name.startswith(character.name + "_"))


def index(root: Path) -> tuple[list[Path], list[int], list[str]]:
    """(image paths, native label, character) of every image, in sorted path order."""
    paths, labels, characters = [], [], []
    for character in _characters(root):
        for folder in sorted(p for p in character.iterdir()
                             if p.is_dir() and not p.name.startswith(".")):
            prefix, _, emotion = folder.name.partition("_")
            if prefix != character.name or emotion not in FERG.native_names:
                raise OpenferError(f"{folder}: expected a folder named {character.name}_<emotion>"
                                   f" with <emotion> one of {', '.join(FERG.native_names)}")
            label = FERG.native_names.index(emotion)
            for file in sorted(folder.iterdir()):
                if file.is_file() and is_image_file(file):
                    paths.append(file)
                    labels.append(label)
                    characters.append(character.name)
    if not paths:
        raise OpenferError(f"{root}: no FERG-DB images in its character folders")
    return paths, labels, characters


def random_test_mask(labels: list[int], characters: list[str], fraction: float,
                     seed: int) -> np.ndarray:
    """``fraction`` of each character x emotion group (at least one image of a group of two or
    more), drawn with ``seed``."""
    if not 0 < fraction < 1:
        raise OpenferError(f"FERG option test_fraction={fraction}: expected a fraction in (0, 1)")
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), bool)
    groups: dict[tuple[str, int], list[int]] = {}
    for i, key in enumerate(zip(characters, labels)):
        groups.setdefault(key, []).append(i)
    for key in sorted(groups):
        members = np.asarray(groups[key])
        count = int(round(len(members) * fraction)) or (1 if len(members) > 1 else 0)
        test[rng.permutation(members)[:count]] = True
    return test


def load(root, split: str = "all", *, image_size, channels, protocol: str = "random",
         test_fraction: float = 0.1, seed: int = 0, fold: int | None = None,
         folds: int | None = None, **_unused) -> ImageFileDataset:
    folder = find_root(Path(root))
    paths, labels, characters = index(folder)
    if protocol not in PROTOCOLS:
        raise OpenferError(f"FERG option protocol={protocol!r}: use random or character")
    if folds is not None and protocol == "character" and folds != len(set(characters)):
        raise OpenferError(f"FERG option folds={folds}: leaving one character out makes "
                           f"{len(set(characters))} folds (openfer cv --folds "
                           f"{len(set(characters))})")
    if split == "all":
        chosen = np.ones(len(paths), bool)
        name = "ferg:all"
    elif protocol == "character":
        count = len(set(characters))
        chosen = select_fold(subject_folds(characters, count), split, fold, count)
        name = f"ferg:{split}:fold{fold}"
    else:
        test = random_test_mask(labels, characters, float(test_fraction), int(seed))
        chosen = select_fold(test.astype(np.int64), split, 1, 2)
        name = f"ferg:{split}"
    where = np.flatnonzero(chosen)
    if not len(where):
        raise OpenferError(f"FERG-DB split {split!r} has no images")
    dataset = ImageFileDataset([paths[i] for i in where], np.asarray(labels)[where],
                               FERG.emotions, image_size=image_size, channels=channels,
                               name=name, label_set=FERG)
    dataset.subjects = [characters[i] for i in where]
    return dataset
