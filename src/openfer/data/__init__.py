"""Data set readers (official formats in, canonical labels out) and batch transforms.

``load_dataset(name, root, split, image_size=..., channels=...)`` is the one entry point the
engine, the evaluator and the CLI use; each reader module documents the files it accepts.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Callable, Sequence

from ..errors import OpenferError
from .dataset import ArrayFaceDataset, FaceDataset, ImageFileDataset, with_classes

__all__ = ["ArrayFaceDataset", "FaceDataset", "ImageFileDataset", "DATASETS", "load_dataset"]


def _reader(module: str, function: str = "load", **fixed) -> Callable[..., FaceDataset]:
    """The reader ``<module>.<function>(root, split, **fixed, **options)``, its module imported
    on first use, so that importing :mod:`openfer.data` loads no reader."""
    def read(root, split, **kw) -> FaceDataset:
        reader = getattr(import_module(f".{module}", __name__), function)
        return reader(root, split, **fixed, **kw)
    return read


def _folder(root, split, *, image_size, channels, classes=None, **kw) -> FaceDataset:
    from .folder import read_folder
    root = Path(root)
    if split and split != "all":
        if not (root / split).is_dir():
            raise OpenferError(f"split folder {root / split} not found; with --dataset folder, "
                               "--split names a sub-folder of --root (or use 'all' for root)")
        root = root / split
    return read_folder(root, image_size=image_size, channels=channels, classes=classes)


#: Reader per data set name:
#: ``reader(root, split, *, image_size, channels, classes, **options) -> FaceDataset``.
DATASETS: dict[str, Callable[..., FaceDataset]] = {
    "fer2013": _reader("fer2013"),
    "ferplus": _reader("ferplus"),
    "folder": _folder,
    "rafdb": _reader("rafdb"),
    "affectnet": _reader("affectnet"),
    "affectnet7": _reader("affectnet", seven=True),
    "affwild2": _reader("affwild2"),
    "ckplus": _reader("ckplus"),
    "ckplus_fmpn": _reader("fmpn_layout", "load_ckplus"),
    "mmi": _reader("mmi"),
    "mmi_fmpn": _reader("fmpn_layout", "load_mmi"),
    "jaffe": _reader("jaffe"),
    "ferg": _reader("ferg"),
    "expw": _reader("expw"),
    "sfew": _reader("sfew"),
}


def load_dataset(name: str, root: str | Path, split: str = "all", *,
                 image_size: tuple[int, int] | None = None, channels: int | None = None,
                 classes: Sequence[str] | None = None, **options) -> FaceDataset:
    """Read one split of a data set, with faces converted to ``image_size`` and ``channels``.

    ``options`` go to the reader (e.g. ``align=True`` for AffectNet, ``images="original"`` or
    ``attributes=True`` for RAF-DB). ``classes`` (names, in index order) names a folder's
    classes; for data sets with fixed labels it re-indexes them into that order, by name.
    """
    try:
        reader = DATASETS[name.lower()]
    except KeyError:
        raise OpenferError(f"unknown data set {name!r}; known: {', '.join(sorted(DATASETS))}") \
            from None
    dataset = reader(root, split, image_size=tuple(image_size or (48, 48)),
                     channels=channels or 1, classes=classes, **options)
    if classes:
        # Readers of data sets with fixed labels (all but the folder's) ignore ``classes``:
        # their labels are re-indexed into its order here, by name.
        dataset = with_classes(dataset, classes, advice=f"data set {name!r} has fixed classes; "
                               "list all of them (in any order) or none")
    if isinstance(dataset, ArrayFaceDataset) and (image_size or channels):
        dataset = dataset.converted(image_size, channels)
    return dataset
