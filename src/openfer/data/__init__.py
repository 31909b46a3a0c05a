"""Data set readers (official formats in, canonical labels out) and batch transforms.

``load_dataset(name, root, split, image_size=..., channels=...)`` is the one entry point the
engine, the evaluator and the CLI use; each reader module documents the files it accepts.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Callable, Sequence

from ..errors import OpenferError
from ..labels import CKPLUS_FMPN, MMI
from .dataset import ArrayFaceDataset, FaceDataset, ImageFileDataset, with_classes

__all__ = ["ArrayFaceDataset", "FaceDataset", "ImageFileDataset", "DATASETS", "load_dataset"]


#: Keyword arguments every reader receives from :func:`load_dataset` (not reader options).
_COMMON = {"image_size", "channels", "classes"}


def _reader(module: str, function: str = "load", **fixed) -> Callable[..., FaceDataset]:
    """The reader ``<module>.<function>(root, split, **fixed, **options)``, its module imported
    on first use, so that importing :mod:`openfer.data` loads no reader; its options are checked
    against the reader's signature first (:func:`check_options`)."""
    def read(root, split, *, dataset: str = module, **kw) -> FaceDataset:
        reader = getattr(import_module(f".{module}", __name__), function)
        check_options(dataset, reader, {k: v for k, v in kw.items() if k not in _COMMON},
                      set(fixed))
        return reader(root, split, **fixed, **kw)
    return read


#: Values a reader option annotated with each type accepts, and how to say it.
_OPTION_TYPES = {bool: ((bool,), "true or false"), float: ((int, float), "a number"),
                 int: ((int,), "a whole number"), str: ((str, Path), "a text"),
                 Path: ((str, Path), "a path")}


def check_options(name: str, reader: Callable, options: dict, fixed: set[str] = frozenset()
                  ) -> None:
    """Refuse a reader option the reader does not take (a typo would otherwise be ignored), and
    one whose value is not of the type the reader annotates it with (an int for a float is
    fine; ``None`` always passes)."""
    import inspect
    import types
    import typing

    parameters = {p.name: p for p in
                  list(inspect.signature(reader, eval_str=True).parameters.values())[2:]
                  if p.kind is p.KEYWORD_ONLY and p.name not in _COMMON | fixed}
    for key, value in options.items():
        if key not in parameters:
            known = ", ".join(sorted(parameters)) or "none"
            raise OpenferError(f"data set {name!r} has no option {key!r} (its options: {known}); "
                               "check data.options or --option")
        annotation = parameters[key].annotation
        kinds = [k for k in (typing.get_args(annotation)
                             if isinstance(annotation, types.UnionType) else (annotation,))
                 if k in _OPTION_TYPES]
        if value is None or not kinds:
            continue
        accepted = tuple(t for k in kinds for t in _OPTION_TYPES[k][0])
        if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in kinds):
            wanted = " or ".join(dict.fromkeys(_OPTION_TYPES[k][1] for k in kinds))
            raise OpenferError(f"data set {name!r}: option {key}={value!r} must be {wanted} "
                               f"(default {parameters[key].default!r})")


def _folder(root, split, *, image_size, channels, classes=None, dataset="folder",
            **options) -> FaceDataset:
    from .folder import read_folder

    if options:
        raise OpenferError(f"data set 'folder' takes no options, not {', '.join(options)} "
                           "(--classes names numbered class folders)")
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
    "rafdb_compound": _reader("rafdb", subset="compound"),
    "affectnet": _reader("affectnet"),
    "affectnet7": _reader("affectnet", seven=True),
    "affwild2": _reader("affwild2"),
    "ckplus": _reader("ckplus"),
    "ckplus_fmpn": _reader("fmpn_layout", label_set=CKPLUS_FMPN),
    "mmi": _reader("mmi"),
    "mmi_fmpn": _reader("fmpn_layout", label_set=MMI),
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
    ``attributes=True`` for RAF-DB); one the reader does not take, or of the wrong type, is an
    error naming the reader's options. ``classes`` (names, in index order) names a folder's
    classes; for data sets with fixed labels it re-indexes them into that order, by name.
    """
    try:
        reader = DATASETS[name.lower()]
    except KeyError:
        raise OpenferError(f"unknown data set {name!r}; known: {', '.join(sorted(DATASETS))}") \
            from None
    dataset = reader(root, split, image_size=tuple(image_size or (48, 48)),
                     channels=channels or 1, classes=classes, dataset=name.lower(), **options)
    if classes:
        # Readers of data sets with fixed labels (all but the folder's) ignore ``classes``:
        # their labels are re-indexed into its order here, by name.
        dataset = with_classes(dataset, classes, advice=f"data set {name!r} has fixed classes; "
                               "list all of them (in any order) or none")
    if isinstance(dataset, ArrayFaceDataset) and (image_size or channels):
        dataset = dataset.converted(image_size, channels)
    return dataset
