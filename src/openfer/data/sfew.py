"""SFEW 2.0, Static Facial Expressions in the Wild (Dhall et al., EmotiW 2015; frames of movies),
as its aligned-face archives unzip (FORMATS.md section 9.2).

``root`` is the folder that holds the unzipped archives::

    Train/Train_Aligned_Faces/<Emotion>/<movie>_<frame>_<n>.png    (Train_Aligned_Faces.zip)
    Val/Val_Aligned_Faces/<Emotion>/...                            (Val_Aligned_Faces_new.zip)
    Test/Test_Aligned_Faces/<name>.png                             (Test_Aligned_Faces.zip)

A split folder may also sit directly under ``root`` (``Train_Aligned_Faces/``) or without its
inner level (``Train/<Emotion>/``). There is no label file: the label is the folder name, one of
Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise, indexed alphabetically as public loaders do
(:data:`openfer.labels.SFEW`). ``split`` is ``train``, ``val`` (the split papers report on),
``test`` (no labels: every face's label is -1, for prediction only; training and evaluation
refuse it) or ``all`` (train and val). The aligned faces (143x181 in one public script) are
resized whole to the model's input, as public loaders do; files that are not images are skipped
and counted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import OpenferError
from ..labels import SFEW
from .dataset import ImageFileDataset
from .folder import read_folder
from .images import is_image_file

FOLDERS = {"train": "Train", "val": "Val", "test": "Test"}


def split_folder(root: Path, split: str) -> Path:
    """The folder of ``split``'s faces: ``<Split>/<Split>_Aligned_Faces``, ``<Split>_Aligned_Faces``
    or ``<Split>`` under ``root``, whichever exists first."""
    top = FOLDERS[split]
    for candidate in (root / top / f"{top}_Aligned_Faces", root / f"{top}_Aligned_Faces",
                      root / top):
        if candidate.is_dir():
            return candidate
    raise OpenferError(f"no SFEW {split} faces under {root}: expected {top}/{top}_Aligned_Faces/ "
                       f"(unzip {top}_Aligned_Faces*.zip into {root / top})")


def load(root, split: str = "all", *, image_size, channels, **_unused) -> ImageFileDataset:
    root = Path(root)
    if not root.is_dir():
        raise OpenferError(f"SFEW folder {root} not found")
    asked, split = split, {"training": "train", "validation": "val"}.get(split.lower(),
                                                                         split.lower())
    if split == "all":
        train, val = (load(root, s, image_size=image_size, channels=channels)
                      for s in ("train", "val"))
        dataset = ImageFileDataset(train.paths + val.paths, np.concatenate([train.labels,
                                   val.labels]), SFEW.emotions, image_size=image_size,
                                   channels=channels, name="sfew:all", label_set=SFEW,
                                   native_labels=np.concatenate([train.native_labels,
                                                                 val.native_labels]))
        dataset.dropped = train.dropped + val.dropped
        return dataset
    if split not in FOLDERS:
        raise OpenferError(f"unknown SFEW split {asked!r}; use train, val, test (unlabelled) or "
                           "all (train and val)")
    folder = split_folder(root, split)
    loose = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and is_image_file(p)) if split == "test" else []
    if loose:
        # The test archive has no emotion folders: its faces carry no label.
        unlabelled = np.full(len(loose), -1)
        return ImageFileDataset(loose, unlabelled, SFEW.emotions, image_size=image_size,
                                channels=channels, name="sfew:test", label_set=SFEW,
                                native_labels=unlabelled)
    return read_folder(folder, image_size=image_size, channels=channels, label_set=SFEW,
                       name=f"sfew:{split}")
