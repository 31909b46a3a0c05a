"""CK+ and MMI in FMPN's released layout (``donydchen/FMPN-FER`` ``datasets/``, METHODS.md 4).

::

    <root>/emotion_labels.pkl             Python-2 pickle: "S005_001" -> label
    <root>/train_ids_<k>.csv, test_ids_<k>.csv   one image name per line, k = 0..9
    <root>/imgs/S005_001_00000011.png     pre-aligned faces (not released: the user's own)
    <root>/imgs_res/<k>/<class>.png       pseudo ground-truth motion masks per fold and class

CK+ (``ckplus_fmpn``): labels 1..7 (float) minus 1 → anger, contempt, disgust, fear, happy,
sadness, surprise; ``-1`` marks unlabelled sequences, and a listed image of one is an error.
MMI (``mmi_fmpn``): labels 0..5 → anger, disgust, fear, happiness, sadness, surprise, as is.
Splits ``train`` / ``test`` of ``fold`` (the lists as given), or ``all`` (the union of the test
lists). The label pickle is read with an unpickler that accepts only plain data (a pickle naming
any class or function is refused), so a crafted file cannot run code; its opcodes are checked
first (plain-data opcodes only, memo indices within the file's size), so a crafted file cannot
make the unpickler reserve gigabytes either.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from pathlib import Path

import numpy as np

from ..errors import DataFormatError, OpenferError
from ..labels import CKPLUS_FMPN, LabelSet
from .dataset import ImageFileDataset
from .folds import check_subject_independent, read_name_list, subject_of


#: Opcodes that build numbers, strings, lists, tuples and dicts (what Python 2 writes for a
#: dict of names to labels), and nothing that imports or calls.
PLAIN_OPCODES = frozenset({
    "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "DUP", "NONE", "NEWTRUE", "NEWFALSE",
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "FLOAT", "BINFLOAT",
    "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
    "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "EMPTY_DICT", "DICT", "SETITEM", "SETITEMS",
    "EMPTY_LIST", "LIST", "APPEND", "APPENDS", "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2",
    "TUPLE3", "PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET", "MEMOIZE"})
MEMO_OPCODES = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"})


def _check_opcodes(data: bytes) -> None:
    """Raise ValueError unless every opcode is plain data and every memo index is small (the C
    unpickler grows its memo to the largest index it is given)."""
    for opcode, argument, position in pickletools.genops(io.BytesIO(data)):
        if opcode.name not in PLAIN_OPCODES:
            raise ValueError(f"opcode {opcode.name} at byte {position} is not plain data")
        if opcode.name in MEMO_OPCODES and not 0 <= int(argument) <= len(data):
            raise ValueError(f"memo index {argument} at byte {position} is out of range")


class _PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a label pickle holds "
                                     "only a dict of names to numbers")


def read_label_pickle(path: str | Path) -> dict[str, float]:
    """FMPN's ``emotion_labels.pkl`` (pickled under Python 2) as ``{sequence: label}``."""
    path = Path(path)
    try:
        data = path.read_bytes()
        _check_opcodes(data)
        table = _PlainDataUnpickler(io.BytesIO(data), encoding="latin1").load()
    except FileNotFoundError:
        raise OpenferError(f"{path} not found (FMPN's emotion_labels.pkl)") from None
    except Exception as error:                   # noqa: BLE001 - any unpickling failure
        raise DataFormatError(path, f"not a plain label pickle ({error})") from None
    if not isinstance(table, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
            for k, v in table.items()):
        raise DataFormatError(path, "expected a dict of sequence names ('S005_001') to labels")
    return table


def read_fmpn_masks(root: str | Path, fold: int, num_classes: int) -> np.ndarray:
    """``imgs_res/<fold>/<class>.png`` → ``uint8`` (num_classes, H, W)."""
    from .motion_masks import read_masks
    return read_masks(Path(root) / "imgs_res" / str(fold), num_classes)


def _label(table: dict, name: str, label_set: LabelSet, path: Path) -> int:
    key = "_".join(Path(name).stem.split("_")[:2])
    if key not in table:
        raise DataFormatError(path, f"{name}: sequence {key} is not in emotion_labels.pkl")
    value = table[key]
    if value != value or value in (float("inf"), float("-inf")):
        raise DataFormatError(path, f"{name}: sequence {key} has label {value!r}")
    code = int(value) - 1 if label_set is CKPLUS_FMPN else int(value)
    if value != int(value) or not 0 <= code < len(label_set.emotions):
        raise DataFormatError(path, f"{name}: sequence {key} has label {value!r}, not an "
                              f"expression of {label_set.name} (unlabelled sequence?)")
    return code


def load(root, split: str, *, image_size, channels, label_set: LabelSet,
         fold: int | None = None, folds: int = 10, images: str = "imgs",
         **_unused) -> ImageFileDataset:
    root = Path(root)
    table = read_label_pickle(root / "emotion_labels.pkl")
    split = {"val": "test", "validation": "test", "training": "train"}.get(split, split)
    if split == "all":
        lists = [root / f"test_ids_{k}.csv" for k in range(folds)]
    elif split in ("train", "test"):
        if fold is None or not 0 <= int(fold) < folds:
            raise OpenferError(f"split {split!r} needs fold=0..{folds - 1} (recipe: "
                               "data.options.fold)")
        lists = [root / f"{split}_ids_{int(fold)}.csv"]
    else:
        raise OpenferError(f"split must be all, train or test, not {split!r}")
    names, codes, list_of_name = [], [], []
    for number, path in enumerate(lists):
        if not path.is_file():
            raise OpenferError(f"{path} not found (FMPN's split lists)")
        for name in read_name_list(path):
            names.append(name)
            codes.append(_label(table, name, label_set, path))
            list_of_name.append(number)
    subjects = [subject_of(n) for n in names]
    if split == "all":                       # the test lists are the folds
        check_subject_independent(subjects, np.asarray(list_of_name))
    dataset = ImageFileDataset([root / images / n for n in names], np.asarray(codes),
                               label_set.emotions, image_size=image_size, channels=channels,
                               name=f"{label_set.name}:{split}" + (
                                   f":fold{fold}" if fold is not None else ""),
                               label_set=label_set)
    dataset.subjects = subjects
    return dataset
