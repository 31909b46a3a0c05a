"""Any image folder whose sub-folders are classes (``<root>/<class>/*.jpg``).

Sub-folders are either emotion names (aliases accepted: ``angry``, ``happy``, ``joy``, ...) or
numbers (``0``, ``00``, ``1``...), which need an explicit class list: ``classes[i]`` is the
emotion of folder number ``i`` (DACL's ``train/00..06`` layout). Files that are not images
(by extension) are skipped and counted; hidden files such as ``.DS_Store`` are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import OpenferError
from ..labels import Emotion, LabelSet, emotions_from_names, parse_emotion
from .dataset import ImageFileDataset
from .images import is_image_file


def read_folder(root: str | Path, *, image_size: tuple[int, int], channels: int,
                classes: Sequence[str | Emotion] | None = None, label_set: LabelSet | None = None,
                name: str | None = None, recursive: bool = True) -> ImageFileDataset:
    """Index ``root/<class>/`` images; pixels are decoded lazily at ``image_size``.

    The dataset's classes are ``classes`` when given (its index order), else ``label_set``'s
    emotions, else the emotions found, in canonical :class:`Emotion` order.
    """
    root = Path(root)
    if not root.is_dir():
        raise OpenferError(f"image folder {root} not found (expected {root}/<class>/<images>)")
    explicit = emotions_from_names(classes) if classes else None
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise OpenferError(f"{root} has no class sub-folders; expected {root}/<emotion>/*.jpg "
                           "(e.g. happy/, sad/) or numbered folders with --classes")
    folder_emotion: dict[Path, Emotion] = {}
    for folder in folders:
        if folder.name.isdigit():
            if explicit is None:
                raise OpenferError(
                    f"{folder}: numbered class folders need an explicit class list, e.g. "
                    "--classes neutral,happiness,sadness,surprise,fear,disgust,anger "
                    "(classes[i] is the emotion of folder i)")
            number = int(folder.name)
            if number >= len(explicit):
                raise OpenferError(f"{folder}: folder number {number} has no entry in the class "
                                   f"list of {len(explicit)} classes")
            folder_emotion[folder] = explicit[number]
        else:
            try:
                folder_emotion[folder] = parse_emotion(folder.name)
            except ValueError as exc:
                raise OpenferError(f"{folder}: sub-folder name is not an emotion ({exc})") from None
    duplicates = [e for e in set(folder_emotion.values())
                  if list(folder_emotion.values()).count(e) > 1]
    if duplicates:
        raise OpenferError(f"{root}: several sub-folders name the same class "
                           f"{duplicates[0].value!r}")
    if explicit is not None:
        class_list = explicit
    elif label_set is not None:
        class_list = label_set.emotions
    else:
        class_list = tuple(e for e in Emotion if e in folder_emotion.values())
    missing = [e.value for e in folder_emotion.values() if e not in class_list]
    if missing:
        raise OpenferError(f"{root}: folder class {missing[0]!r} is not in the class list "
                           f"{', '.join(c.value for c in class_list)}")
    index = {e: i for i, e in enumerate(class_list)}
    paths, labels, skipped = [], [], 0
    for folder, emotion in folder_emotion.items():
        files = sorted(folder.rglob("*") if recursive else folder.iterdir())
        for file in files:
            if not file.is_file() or file.name.startswith("."):
                continue
            if is_image_file(file):
                paths.append(file)
                labels.append(index[emotion])
            else:
                skipped += 1
    if not paths:
        raise OpenferError(f"{root}: no images found in its class folders")
    native = [label_set.index_of(class_list[i]) + label_set.base for i in labels] \
        if label_set is not None else labels
    dataset = ImageFileDataset(paths, np.asarray(labels), class_list, image_size=image_size,
                               channels=channels, name=name or f"folder:{root.name}",
                               label_set=label_set, native_labels=np.asarray(native))
    if skipped:
        dataset.dropped["non-image files"] = skipped
    return dataset
