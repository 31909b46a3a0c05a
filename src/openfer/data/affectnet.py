"""AffectNet (Mollahosseini et al., IEEE TAC 2017) in both official releases (FORMATS.md 2).

CSV release — ``training.csv`` / ``validation.csv`` (at ``root`` or in
``Manually_Annotated_file_lists/``) with the columns subDirectory_filePath, face_x, face_y,
face_width, face_height, facial_landmarks (136 numbers separated by ';'), expression, valence,
arousal; images under ``Manually_Annotated_Images/`` (any wrapper folder above it). Faces are
cropped to the face box (clipped to the image), or, with ``align=True``, rotated about the eye
midpoint so the eyes (means of 68-point landmarks 36-41 and 42-47) are level and then cropped —
Emotion-GCN's ``aligner.py``, with its bug fixed (it passed ``(rows, cols)`` as ``cv2.warpAffine``'s
``(width, height)``, cutting faces off non-square images): here rotation and crop are one affine
map onto the output.

``.npy`` release — ``train_set/`` and ``val_set/`` with ``images/<id>.jpg`` and
``annotations/<id>_exp.npy`` (expression, possibly a string scalar), ``_val.npy``, ``_aro.npy``.

Splits: ``train`` (training.csv / train_set) and ``val`` (validation.csv / val_set; the test set of
every paper). ``affectnet`` keeps 8 classes (0 Neutral ... 7 Contempt); ``affectnet7`` drops
contempt (the 7-class protocol). Codes 8 None, 9 Uncertain, 10 No-Face are always dropped and
counted in ``dataset.dropped``; zero-byte images are skipped with a message in
``dataset.problems``. Valence and arousal (-2 = not given, kept as NaN) are in ``dataset.targets``.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from ..errors import DataFormatError, OpenferError
from ..labels import AFFECTNET, AFFECTNET7, LabelSet
from .dataset import ImageFileDataset
from .text import read_text

COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
           "facial_landmarks", "expression", "valence", "arousal")
_CSV = {"train": "training.csv", "val": "validation.csv"}
_NPY = {"train": "train_set", "val": "val_set"}


def canonical_split(split: str) -> str:
    key = split.lower()
    if key in ("train", "training"):
        return "train"
    if key in ("val", "valid", "validation", "test"):
        return "val"
    raise OpenferError(f"unknown AffectNet split {split!r}; use train or val (validation, the "
                       "set papers report on)")


def _find(root: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        for candidate in (root / name, root / "Manually_Annotated_file_lists" / name):
            if candidate.is_file():
                return candidate
    return None


def _image_root(root: Path) -> Path:
    for candidate in (root / "Manually_Annotated_Images",
                      root / "Manually_Annotated" / "Manually_Annotated_Images",
                      root / "Manually_Annotated_compressed" / "Manually_Annotated_Images"):
        if candidate.is_dir():
            return candidate
    found = next(root.glob("**/Manually_Annotated_Images"), None)
    if found is None:
        raise OpenferError(f"no Manually_Annotated_Images folder under {root}")
    return found


def eye_alignment(landmarks: np.ndarray, box, size: tuple[int, int]) -> np.ndarray:
    """The affine map that levels the eyes (rotation about their midpoint) and crops the box.

    ``box`` (x, y, w, h) is taken around its centre after the rotation, with its own width and
    height, and mapped onto ``size`` = (h, w).
    """
    from ..faces.align import box_transform

    left = landmarks[36:42].mean(0)
    right = landmarks[42:48].mean(0)
    angle = math.atan2(right[1] - left[1], right[0] - left[0])
    centre = (left + right) / 2
    cos, sin = math.cos(-angle), math.sin(-angle)
    rotation = np.array([[cos, -sin, centre[0] - cos * centre[0] + sin * centre[1]],
                         [sin, cos, centre[1] - sin * centre[0] - cos * centre[1]]])
    x, y, w, h = (float(v) for v in box)
    cx, cy = rotation @ np.array([x + w / 2, y + h / 2, 1.0])
    crop = box_transform((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), size, square=False)
    return crop @ np.vstack([rotation, [0, 0, 1]])


def read_csv(path: Path) -> list[dict]:
    """Rows of an AffectNet CSV as dicts with typed fields and their line numbers."""
    rows = []
    with io.StringIO(read_text(path), newline="") as handle:
        reader = csv.reader(handle)
        header = [c.strip() for c in next(reader, [])]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise DataFormatError(path, f"header lacks the columns {missing}", line=1,
                                  hint="AffectNet CSVs have: " + ",".join(COLUMNS))
        for row in reader:
            if not row or not "".join(row).strip():
                continue
            line = reader.line_num
            if len(row) != len(header):
                raise DataFormatError(path, f"expected {len(header)} fields, found {len(row)}",
                                      line=line)
            record = dict(zip(header, row))
            try:
                parsed = {"path": record["subDirectory_filePath"].strip(),
                          "box": tuple(int(float(record[c])) for c in COLUMNS[1:5]),
                          "expression": int(record["expression"]),
                          "valence": float(record["valence"]),
                          "arousal": float(record["arousal"]), "line": line}
            except (ValueError, OverflowError) as exc:
                raise DataFormatError(path, f"a numeric field is not a finite number ({exc})",
                                      line=line) from None
            for name in ("valence", "arousal"):
                if not math.isfinite(parsed[name]):
                    raise DataFormatError(path, f"{name} {record[name].strip()!r} is not a "
                                          "finite number", line=line, field=name)
            text = record["facial_landmarks"].strip()
            try:
                values = [float(v) for v in text.split(";") if v.strip()] if text else []
                if not all(math.isfinite(v) for v in values):
                    raise ValueError("not finite")
            except ValueError:
                raise DataFormatError(path, "facial_landmarks must be numbers separated by ';'",
                                      line=line, field="facial_landmarks") from None
            if values and len(values) != 136:
                raise DataFormatError(path, f"facial_landmarks has {len(values)} numbers, "
                                      "expected 136 (68 points)", line=line,
                                      field="facial_landmarks")
            parsed["landmarks"] = np.array(values).reshape(68, 2) if values else None
            if not 0 <= parsed["expression"] <= 10:
                raise DataFormatError(path, f"expression {parsed['expression']} is not 0..10",
                                      line=line, field="expression")
            rows.append(parsed)
    return rows


def _keep(code: int, label_set: LabelSet, dataset_dropped) -> bool:
    if label_set.to_emotion(code) is None:
        dataset_dropped[f"{code} {label_set.name_of(code)}"] += 1
        return False
    return True


def load(root, split: str, *, image_size, channels, seven: bool = False, align: bool = False,
         **_unused) -> ImageFileDataset:
    root = Path(root)
    split = canonical_split(split)
    label_set = AFFECTNET7 if seven else AFFECTNET
    name = f"{label_set.name}:{split}"
    csv_path = _find(root, (_CSV[split],))
    if csv_path is not None:
        return _load_csv(root, csv_path, label_set, name, image_size, channels, align)
    if (root / _NPY[split]).is_dir():
        return _load_npy(root / _NPY[split], label_set, name, image_size, channels)
    raise OpenferError(f"no AffectNet {split} files under {root}: expected {_CSV[split]} (CSV "
                       f"release) or {_NPY[split]}/ (the .npy release)")


def _load_csv(root, csv_path, label_set, name, image_size, channels, align) -> ImageFileDataset:
    images = _image_root(root)
    rows = read_csv(csv_path)
    from collections import Counter
    dropped: Counter = Counter()
    problems = []
    paths, labels, regions, valence, arousal = [], [], [], [], []
    for row in rows:
        if not _keep(row["expression"], label_set, dropped):
            continue
        path = images / row["path"]
        if not path.is_file() or path.stat().st_size == 0:
            problems.append(f"{csv_path}, line {row['line']}: image {path} is missing or empty; "
                            "skipped")
            dropped["unreadable image"] += 1
            continue
        x, y, w, h = row["box"]
        if align and row["landmarks"] is not None:
            regions.append(eye_alignment(row["landmarks"], (x, y, w, h), tuple(image_size)))
        else:
            regions.append((x, y, w, h))
        paths.append(path)
        labels.append(row["expression"])
        valence.append(row["valence"])
        arousal.append(row["arousal"])
    dataset = ImageFileDataset(paths, np.asarray(labels, np.int64), label_set.emotions,
                               image_size=image_size, channels=channels, regions=regions,
                               name=name, label_set=label_set)
    dataset.dropped.update(dropped)
    dataset.problems.extend(problems)
    _set_va(dataset, valence, arousal)
    return dataset


def _load_npy(directory: Path, label_set, name, image_size, channels) -> ImageFileDataset:
    from collections import Counter
    dropped: Counter = Counter()
    paths, labels, valence, arousal, problems = [], [], [], [], []
    annotations = directory / "annotations"
    for image in sorted((directory / "images").glob("*")):
        if image.name.startswith("."):
            continue
        stem = image.stem
        try:
            code = int(str(np.load(annotations / f"{stem}_exp.npy")))
            v = float(np.load(annotations / f"{stem}_val.npy"))
            a = float(np.load(annotations / f"{stem}_aro.npy"))
        except FileNotFoundError as exc:
            raise DataFormatError(annotations, f"annotation {Path(exc.filename).name} of image "
                                  f"{image.name} is missing") from None
        except ValueError as exc:
            raise DataFormatError(annotations / f"{stem}_exp.npy",
                                  f"not a number ({exc})") from None
        if not _keep(code, label_set, dropped):
            continue
        if image.stat().st_size == 0:
            problems.append(f"{image}: empty image file; skipped")
            dropped["unreadable image"] += 1
            continue
        paths.append(image)
        labels.append(code)
        valence.append(v)
        arousal.append(a)
    if not paths:
        raise OpenferError(f"no usable AffectNet images in {directory / 'images'}")
    dataset = ImageFileDataset(paths, np.asarray(labels, np.int64), label_set.emotions,
                               image_size=image_size, channels=channels, name=name,
                               label_set=label_set)
    dataset.dropped.update(dropped)
    dataset.problems.extend(problems)
    _set_va(dataset, valence, arousal)
    return dataset


def _set_va(dataset: ImageFileDataset, valence: list[float], arousal: list[float]) -> None:
    for key, values in (("valence", valence), ("arousal", arousal)):
        array = np.asarray(values, np.float64)
        array[(array < -1) | (array > 1)] = np.nan          # -2: not given
        dataset.targets[key] = array
