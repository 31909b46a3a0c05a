"""Data set readers (official formats in, canonical labels out) and batch transforms.

``load_dataset(name, root, split, image_size=..., channels=...)`` is the one entry point the
engine, the evaluator and the CLI use; each reader module documents the files it accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from ..errors import OpenferError
from .dataset import ArrayFaceDataset, FaceDataset, ImageFileDataset

__all__ = ["ArrayFaceDataset", "FaceDataset", "ImageFileDataset", "DATASETS", "load_dataset"]


def _fer2013(root, split, **kw) -> FaceDataset:
    from . import fer2013
    return fer2013.load(root, split, **kw)


def _folder(root, split, *, image_size, channels, classes=None, **kw) -> FaceDataset:
    from .folder import read_folder
    root = Path(root)
    if split and split != "all":
        if not (root / split).is_dir():
            raise OpenferError(f"split folder {root / split} not found; with --dataset folder, "
                               "--split names a sub-folder of --root (or use 'all' for root)")
        root = root / split
    return read_folder(root, image_size=image_size, channels=channels, classes=classes)


def _rafdb(root, split, **kw) -> FaceDataset:
    from . import rafdb
    return rafdb.load(root, split, **kw)


def _affectnet(root, split, **kw) -> FaceDataset:
    from . import affectnet
    return affectnet.load(root, split, **kw)


def _affectnet7(root, split, **kw) -> FaceDataset:
    from . import affectnet
    return affectnet.load(root, split, seven=True, **kw)


def _affwild2(root, split, **kw) -> FaceDataset:
    from . import affwild2
    return affwild2.load(root, split, **kw)


def _ckplus(root, split, **kw) -> FaceDataset:
    from . import ckplus
    return ckplus.load(root, split, **kw)


def _ckplus_fmpn(root, split, **kw) -> FaceDataset:
    from . import fmpn_layout
    return fmpn_layout.load_ckplus(root, split, **kw)


def _mmi_fmpn(root, split, **kw) -> FaceDataset:
    from . import fmpn_layout
    return fmpn_layout.load_mmi(root, split, **kw)


def _ferplus(root, split, **kw) -> FaceDataset:
    from . import ferplus
    return ferplus.load(root, split, **kw)


def _jaffe(root, split, **kw) -> FaceDataset:
    from . import jaffe
    return jaffe.load(root, split, **kw)


def _ferg(root, split, **kw) -> FaceDataset:
    from . import ferg
    return ferg.load(root, split, **kw)


#: Reader per data set name:
#: ``reader(root, split, *, image_size, channels, classes, **options) -> FaceDataset``.
DATASETS: dict[str, Callable[..., FaceDataset]] = {
    "fer2013": _fer2013,
    "ferplus": _ferplus,
    "folder": _folder,
    "rafdb": _rafdb,
    "affectnet": _affectnet,
    "affectnet7": _affectnet7,
    "affwild2": _affwild2,
    "ckplus": _ckplus,
    "ckplus_fmpn": _ckplus_fmpn,
    "mmi_fmpn": _mmi_fmpn,
    "jaffe": _jaffe,
    "ferg": _ferg,
}


def load_dataset(name: str, root: str | Path, split: str = "all", *,
                 image_size: tuple[int, int] | None = None, channels: int | None = None,
                 classes: Sequence[str] | None = None, **options) -> FaceDataset:
    """Read one split of a data set, with faces converted to ``image_size`` and ``channels``.

    ``options`` go to the reader (e.g. ``align=True`` for AffectNet, ``images="original"`` or
    ``attributes=True`` for RAF-DB).
    """
    try:
        reader = DATASETS[name.lower()]
    except KeyError:
        raise OpenferError(f"unknown data set {name!r}; known: {', '.join(sorted(DATASETS))}") \
            from None
    dataset = reader(root, split, image_size=tuple(image_size or (48, 48)),
                     channels=channels or 1, classes=classes, **options)
    if isinstance(dataset, ArrayFaceDataset) and (image_size or channels):
        dataset = dataset.converted(image_size, channels)
    return dataset
