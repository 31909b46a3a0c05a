"""Aff-Wild2 / ABAW expression and valence-arousal annotations (FORMATS.md section 3).

Layout: ``cropped_aligned/<video>/<00001>.jpg`` and, under ``root`` (or ``annotations=``), the
annotation directories of any ABAW edition::

    EXPR_Set | EXPR_Classification_Challenge | EXPR_Recognition_Challenge   (expressions)
    VA_Set | VA_Estimation_Challenge                                       (valence, arousal)
      Training_Set | Train_Set ;  Validation_Set                           (splits)
        <video>.txt   line 1: header; line k+1: frame k (``%05d.jpg``)

EXPR codes are ABAW's order (:data:`openfer.labels.AFFWILD2`: 0 Neutral, 1 Anger, 2 Disgust,
3 Fear, 4 Happiness, 5 Sadness, 6 Surprise, 7 Other from ABAW 3 on); ``-1`` (not annotated) is
dropped and 7 (Other, not an expression) dropped and counted. VA lines are ``v,a``; the ``-5``
marker (not annotated) is dropped; any other value outside [-1, 1], NaN or inf is an error.
``task``: ``expr``, ``va`` or ``mtl`` (frames with both, as Emotion-GCN trains). Frames
without an image (detector gaps) are dropped and counted. Everything is linear in the number
of frames: each video folder is listed once and frames are matched by number in a dict (the
original's O(n²) matching is gone).

Where the videos are beside the frames (``videos/``, e.g. ``videos/batch1/<video>.mp4``),
``dataset.video_files`` maps each frame folder to its video, from which ``openfer eval
--smooth`` reads each video's frame rate (:func:`openfer.smoothing.frame_rates`).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import DataFormatError, OpenferError
from ..labels import AFFWILD2
from .dataset import ImageFileDataset
from .images import is_video
from .text import read_text

EXPR_DIRS = ("EXPR_Set", "EXPR_Classification_Challenge", "EXPR_Recognition_Challenge")
VA_DIRS = ("VA_Set", "VA_Estimation_Challenge")
SPLIT_DIRS = {"train": ("Training_Set", "Train_Set"), "val": ("Validation_Set",)}
EXPR_HEADERS = {"neutral,anger,disgust,fear,happiness,sadness,surprise",
                "neutral,anger,disgust,fear,happiness,sadness,surprise,other"}
VA_HEADER = "valence,arousal"


def _normal_header(line: str) -> str:
    return line.strip().rstrip(",").replace(" ", "").lower()


def _find_split_dir(root: Path, task_dirs: tuple[str, ...], split: str) -> Path | None:
    for task in task_dirs:
        for candidate in sorted(root.glob(f"**/{task}")):
            for name in SPLIT_DIRS[split]:
                if (candidate / name).is_dir():
                    return candidate / name
    return None


def read_expr(path: Path) -> dict[int, int]:
    """Frame number -> EXPR code, for the annotated frames of one video (``-1`` dropped)."""
    lines = read_text(path).splitlines()
    if not lines or _normal_header(lines[0]) not in EXPR_HEADERS:
        raise DataFormatError(path, f"header {lines[0][:80] if lines else ''!r} is not an ABAW "
                              "EXPR header ('Neutral,Anger,Disgust,Fear,Happiness,Sadness,"
                              "Surprise[,Other]')", line=1)
    labels = {}
    for frame, line in enumerate(lines[1:], 1):
        text = line.strip()
        if not text:
            continue
        try:
            code = int(text)
        except ValueError:
            raise DataFormatError(path, f"expected one integer -1..7, found {text[:20]!r}",
                                  line=frame + 1) from None
        if not -1 <= code <= 7:
            raise DataFormatError(path, f"EXPR code {code} is outside -1..7", line=frame + 1)
        if code >= 0:
            labels[frame] = code
    return labels


def read_va(path: Path) -> dict[int, tuple[float, float]]:
    """Frame number -> (valence, arousal), for the annotated frames (``-5`` markers dropped)."""
    lines = read_text(path).splitlines()
    if not lines or _normal_header(lines[0]) != VA_HEADER:
        raise DataFormatError(path, f"header {lines[0][:80] if lines else ''!r} is not "
                              "'valence,arousal'", line=1)
    values = {}
    for frame, line in enumerate(lines[1:], 1):
        if not line.strip():
            continue
        parts = line.split(",")
        try:
            v, a = float(parts[0]), float(parts[1])
        except (ValueError, IndexError):
            raise DataFormatError(path, f"expected 'valence,arousal', found {line[:40]!r}",
                                  line=frame + 1) from None
        if v == -5 or a == -5:            # ABAW's marker of an unannotated frame
            continue
        if not (-1 <= v <= 1 and -1 <= a <= 1):   # also false for NaN
            raise DataFormatError(path, f"valence and arousal must lie in -1..1 (or be -5 for "
                                  f"an unannotated frame), found {line.strip()[:40]!r}",
                                  line=frame + 1)
        values[frame] = (v, a)
    return values


def read_annotations(root: str | Path, split: str, task: str = "mtl",
                     annotations: str | Path | None = None) -> dict[str, dict[int, tuple]]:
    """Per video: frame -> (expr code or -1, valence or nan, arousal or nan), for ``task``."""
    base = Path(annotations or root)
    expr_dir = _find_split_dir(base, EXPR_DIRS, split) if task in ("expr", "mtl") else None
    va_dir = _find_split_dir(base, VA_DIRS, split) if task in ("va", "mtl") else None
    if task in ("expr", "mtl") and expr_dir is None:
        raise OpenferError(f"no EXPR annotations for split {split!r} under {base} (looked for "
                           f"{'/'.join(EXPR_DIRS)} with {'/'.join(SPLIT_DIRS[split])})")
    if task in ("va", "mtl") and va_dir is None:
        raise OpenferError(f"no VA annotations for split {split!r} under {base} (looked for "
                           f"{'/'.join(VA_DIRS)} with {'/'.join(SPLIT_DIRS[split])})")
    expr = {p.stem: read_expr(p) for p in sorted(expr_dir.glob("*.txt"))} if expr_dir else {}
    va = {p.stem: read_va(p) for p in sorted(va_dir.glob("*.txt"))} if va_dir else {}
    nan = float("nan")
    out: dict[str, dict[int, tuple]] = {}
    videos = sorted(set(expr) & set(va)) if task == "mtl" else sorted(expr or va)
    for video in videos:
        e, v = expr.get(video, {}), va.get(video, {})
        frames = (e.keys() & v.keys()) if task == "mtl" else (e.keys() or v.keys())
        out[video] = {f: (e.get(f, -1), *v.get(f, (nan, nan))) for f in sorted(frames)}
    return out


def video_files(videos: Path, names: set[str]) -> dict[str, Path]:
    """The video file of each frame folder name in ``names`` found under ``videos`` (any depth,
    e.g. ``videos/batch1/1-30-1280x720.mp4``): the file named as the folder, or without its
    ``_left`` / ``_right`` (a video with two annotated people, FORMATS.md 3.3). Empty when there
    is no ``videos`` folder (the videos are not needed for training)."""
    if not videos.is_dir():
        return {}
    by_stem = {}
    for path in sorted(videos.rglob("*")):
        if is_video(path) and path.is_file():
            by_stem.setdefault(path.stem, path)
    found = {}
    for name in names:
        stem = name.removesuffix("_left").removesuffix("_right")
        if name in by_stem or stem in by_stem:
            found[name] = by_stem.get(name, by_stem.get(stem))
    return found


def load(root, split: str, *, image_size, channels, task: str = "mtl",
         annotations: str | Path | None = None, check_images: bool = True,
         **_unused) -> ImageFileDataset:
    root = Path(root)
    split = {"training": "train", "train": "train", "val": "val", "validation": "val",
             "test": "val"}.get(split.lower())
    if split is None:
        raise OpenferError("Aff-Wild2 splits are train and val (test labels are not released)")
    if task not in ("expr", "va", "mtl"):
        raise OpenferError(f"Aff-Wild2 task must be expr, va or mtl, not {task!r}")
    frames_root = root / "cropped_aligned"
    if not frames_root.is_dir():
        raise OpenferError(f"{frames_root} not found: Aff-Wild2 frames are expected in "
                           "cropped_aligned/<video>/<00001>.jpg")
    dropped: Counter = Counter()
    paths, labels, valence, arousal = [], [], [], []
    for video, frames in read_annotations(root, split, task, annotations).items():
        folder = frames_root / video
        present = set(os.listdir(folder)) if check_images and folder.is_dir() else None
        for frame, (code, v, a) in frames.items():
            if task != "va" and code == 7:
                dropped["7 Other"] += 1
                continue
            name = f"{frame:05d}.jpg"
            if present is not None and name not in present:
                dropped["frames without an image"] += 1
                continue
            paths.append(folder / name)
            labels.append(code if task != "va" else -1)      # VA only: no class label
            valence.append(v)
            arousal.append(a)
    if not paths:
        raise OpenferError(f"no annotated Aff-Wild2 frames with images for split {split!r}")
    dataset = ImageFileDataset(paths, np.asarray(labels, np.int64), AFFWILD2.emotions,
                               image_size=image_size, channels=channels,
                               name=f"affwild2:{split}:{task}", label_set=AFFWILD2)
    dataset.dropped.update(dropped)
    dataset.video_files = video_files(root / "videos", {p.parent.name for p in paths})
    dataset.targets["valence"] = np.asarray(valence)
    dataset.targets["arousal"] = np.asarray(arousal)
    return dataset
