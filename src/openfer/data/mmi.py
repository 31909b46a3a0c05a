"""The MMI Facial Expression Database from its session videos (FORMATS.md section 5).

MMI is downloaded session by session through a web interface and has no fixed file tree, so
this reader takes an index, written once from the downloaded sessions' metadata::

    <root>/index.csv       header: session,video,label,subject[,apex]
      session   the MMI session id, e.g. 100 (letters and digits)
      video     the session's .avi, relative to the index's folder or absolute
      label     the sequence's expression: anger, disgust, fear, happiness, sadness or surprise
                (aliases such as angry or happy accepted); other labels are dropped and counted
      subject   the subject id, e.g. 1 (letters and digits)
      apex      optional: the apex frame, 0-based; empty: the middle frame (or, with
                ``apex_from="aus"``, the FACS file's apex)

MMI's posed sequences run neutral → apex → neutral (onset, apex, offset: unlike CK+, the last
frame is not the peak), so each sequence gives the ``frames`` (3) frames centred on its apex:
the index's ``apex`` when given, else by default the middle frame, the common rule (FORMATS.md
5.2; papers differ on counts and frames, unconfirmed), or with ``apex_from="aus"`` the middle of
the frames where most action units are at their apex in the FACS file beside the video
(``<video name>-oao_aucs.xml``, :mod:`openfer.data.mmi_aus`; the middle frame, reported in
``dataset.problems``, when a video has no such file or it marks no apex). ``neutral=True`` adds
each sequence's first frame, labelled neutral. Classes: MMI's six (FMPN's order: anger, disgust,
fear, happiness, sadness, surprise), neutral first when asked for.

The chosen frames are decoded once (OpenCV) and kept as PNG files in ``frames_dir`` (default
``<root>/frames``), named as in FMPN's MMI lists: ``S<subject>_<session>_<frame>.png`` with
numbers padded to three digits (``S001_100_030.png``). FMPN's released fold lists therefore
apply (``fold_lists=<folder>``) where the frames agree, and the frame folder can serve as
FMPN's ``imgs/``. A frame already in ``frames_dir`` is not decoded again, and each video's
frame count is kept in ``frames_dir/frame_counts.json`` (keyed by path, size and modification
time), so later reads decode nothing. ``dataset.reference_paths`` holds each sequence's first
frame, from which :mod:`openfer.data.motion_masks` computes FMPN's motion priors.

Splits: ``all``, or ``train`` / ``test`` of ``fold`` in a subject-independent k-fold split
(``folds``, 10), generated or from FMPN's lists, as for CK+. ``crop="detect"`` crops each frame
to the largest detected face (the videos are 720x576 head-and-shoulders shots).

Tested on index files and short videos written in this layout; MMI itself is not on the
project's machine (the FACS files in the shape the public MMI extraction scripts read).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..errors import DataFormatError, OpenferError
from ..fileio import atomic_write_bytes, atomic_write_text
from ..labels import MMI, Emotion, parse_emotion
from .dataset import ImageFileDataset
from .detected import crop_regions
from .folds import subject_split
from .mmi_aus import apex_frame, aus_path, read_apex_spans
from .text import csv_records

INDEX_NAME = "index.csv"
COUNTS_NAME = "frame_counts.json"
COLUMNS = ("session", "video", "label", "subject")
APEX_FROM = ("middle", "aus")


def find_index(root: Path) -> Path:
    """``root`` itself when it is a file, else ``root/index.csv``."""
    if root.is_file():
        return root
    if (root / INDEX_NAME).is_file():
        return root / INDEX_NAME
    raise OpenferError(f"no MMI index at {root}: expected {root / INDEX_NAME} with the header "
                       "session,video,label,subject[,apex] (one row per downloaded session; "
                       "MMI has no fixed file tree)")


def read_index(path: Path) -> list[dict]:
    """The index's sequences: ``{"session", "video", "emotion", "subject", "apex", "line"}``
    (``emotion`` is ``None`` for a label outside MMI's six, ``apex`` ``None`` when empty)."""
    sequences, seen = [], {}
    for line, value in csv_records(path, COLUMNS, hint="expected session,video,label,subject "
                                   "and optionally apex"):
        for column in ("session", "subject"):
            if not re.fullmatch(r"[A-Za-z0-9]+", value[column]):
                raise DataFormatError(path, f"{column} {value[column][:40]!r} must be letters "
                                      "and digits (it becomes part of the frame names)",
                                      line=line, field=column)
        if value["session"] in seen:
            raise DataFormatError(path, f"session {value['session']} is also on line "
                                  f"{seen[value['session']]}", line=line, field="session")
        seen[value["session"]] = line
        try:
            emotion = parse_emotion(value["label"])
        except ValueError as exc:
            raise DataFormatError(path, str(exc), line=line, field="label") from None
        apex = value.get("apex", "")
        if apex and not apex.isdigit():
            raise DataFormatError(path, f"apex {apex[:20]!r} is not a frame number (0-based)",
                                  line=line, field="apex")
        if not value["video"]:
            raise DataFormatError(path, "the video path is empty", line=line, field="video")
        video = Path(value["video"])
        sequences.append({"session": value["session"], "subject": value["subject"],
                          "video": video if video.is_absolute() else path.parent / video,
                          "emotion": emotion if emotion in MMI.emotions else None,
                          "apex": int(apex) if apex else None, "line": line})
    if not sequences:
        raise DataFormatError(path, "the index lists no sessions")
    return sequences


def apex_frames(count: int, frames: int, apex: int | None = None) -> list[int]:
    """The ``frames`` frame numbers centred on ``apex`` (default: the middle frame of
    ``count``), shifted to stay inside frames 1..count-1 (frame 0 is the neutral onset)."""
    if count < frames + 1:
        raise ValueError(f"{count} frames cannot give a neutral first frame and {frames} apex "
                         "frames")
    middle = (count - 1) // 2 if apex is None else apex
    if not 0 <= middle < count:
        raise ValueError(f"apex frame {middle} is outside the video's {count} frames")
    start = min(max(middle - (frames - 1) // 2, 1), count - frames)
    return list(range(start, start + frames))


def frame_name(subject: str, session: str, frame: int) -> str:
    """``S001_100_030.png``: FMPN's MMI frame names."""
    return f"S{subject.zfill(3)}_{session.zfill(3)}_{frame:03d}.png"


def _video_frames(video: Path, wanted: set[int]) -> tuple[int, dict[int, np.ndarray]]:
    """The video's frame count and the ``wanted`` frames (BGR), decoded in one pass."""
    import cv2

    if not video.is_file():
        raise FileNotFoundError(video)
    capture = cv2.VideoCapture(str(video))
    try:
        if not capture.isOpened():
            raise ValueError("OpenCV cannot open it as a video")
        count, decoded = 0, {}
        while capture.grab():
            if count in wanted:
                ok, image = capture.retrieve()
                if ok:
                    decoded[count] = image
            count += 1
    finally:
        capture.release()
    return count, decoded


def _frame_count(video: Path, counts: dict) -> int:
    """The video's frame count, from ``counts`` (``frame_counts.json``) while the file's size and
    modification time are unchanged, else counted (and recorded)."""
    if not video.is_file():
        raise FileNotFoundError(video)
    stat = video.stat()
    key, stamp = str(video.resolve()), [stat.st_size, stat.st_mtime_ns]
    known = counts.get(key)
    if isinstance(known, dict) and known.get("stamp") == stamp and isinstance(known.get("count"),
                                                                                int):
        return known["count"]
    count = _video_frames(video, set())[0]
    counts[key] = {"stamp": stamp, "count": count}
    return count


def _read_counts(path: Path) -> dict:
    try:
        counts = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}                                      # absent or damaged: count again
    return counts if isinstance(counts, dict) else {}


def choose_apex(sequence: dict, count: int, apex_from: str) -> tuple[int | None, str | None]:
    """The sequence's apex frame (``None``: the middle frame) and, when ``apex_from="aus"`` could
    not be followed, why: the index's ``apex`` first, then (``"aus"``) the FACS file beside the
    video (:mod:`openfer.data.mmi_aus`)."""
    if sequence["apex"] is not None or apex_from == "middle":
        return sequence["apex"], None
    file = aus_path(sequence["video"])
    if not file.is_file():
        return None, f"no FACS file {file.name} beside it: the middle frame taken as the apex"
    apex = apex_frame(read_apex_spans(file), count)
    if apex is None:
        return None, (f"{file.name} puts no action unit at its apex within the video's {count} "
                      "frames: the middle frame taken as the apex")
    return apex, None


def extract(sequence: dict, frames: int, frames_dir: Path, counts: dict,
            apex_from: str = "middle") -> tuple[Path, list[Path], str | None]:
    """The PNG files of a sequence's first frame and apex frames, decoding the video only when
    one of them is not in ``frames_dir`` yet, and why the apex is the middle frame when
    ``apex_from="aus"`` could not be followed (else ``None``)."""
    count = _frame_count(sequence["video"], counts)
    apex, note = choose_apex(sequence, count, apex_from)
    chosen = (0, *apex_frames(count, frames, apex))
    files = [frames_dir / frame_name(sequence["subject"], sequence["session"], f)
             for f in chosen]
    if not all(f.is_file() for f in files):
        import cv2

        _, decoded = _video_frames(sequence["video"], set(chosen))
        for number, file in zip(chosen, files):
            if number not in decoded:
                raise ValueError(f"frame {number} could not be decoded")
            ok, png = cv2.imencode(".png", decoded[number])
            if not ok:
                raise ValueError(f"frame {number} could not be written as PNG")
            atomic_write_bytes(file, png.tobytes())
    return files[0], files[1:], note


def load(root, split: str = "all", *, image_size, channels, frames: int = 3,
         neutral: bool = False, fold: int | None = None, folds: int = 10,
         fold_lists: str | Path | None = None, frames_dir: str | Path | None = None,
         apex_from: str = "middle", crop: str = "none", detector: str = "auto",
         **_unused) -> ImageFileDataset:
    index_path = find_index(Path(root))
    frames = int(frames)
    if frames < 1:
        raise OpenferError(f"MMI option frames={frames}: take at least one apex frame")
    if apex_from not in APEX_FROM:
        raise OpenferError(f"MMI option apex_from={apex_from!r}: use 'middle' (the middle frame) "
                           "or 'aus' (the apex phases in the FACS file beside each video); an "
                           "index's apex column wins over both")
    out = Path(frames_dir) if frames_dir else index_path.parent / "frames"
    keep = ([Emotion.NEUTRAL] if neutral else []) + list(MMI.emotions)
    paths, labels, subjects, references, problems = [], [], [], [], []
    dropped = {"sequences of other classes": 0, "unreadable or too short videos": 0}
    counts_path = out / COUNTS_NAME
    counts = _read_counts(counts_path)
    known = dict(counts)
    for sequence in read_index(index_path):
        if sequence["emotion"] is None:
            dropped["sequences of other classes"] += 1
            continue
        try:
            first, apex, note = extract(sequence, frames, out, counts, apex_from)
        except FileNotFoundError:
            raise DataFormatError(index_path, f"video {sequence['video']} not found",
                                  line=sequence["line"], field="video") from None
        except DataFormatError:
            raise                                      # a broken FACS file: name it
        except ValueError as exc:
            dropped["unreadable or too short videos"] += 1
            problems.append(f"{sequence['video']} (index line {sequence['line']}): {exc}; "
                            "skipped")
            continue
        if note:
            problems.append(f"{sequence['video']} (index line {sequence['line']}): {note}")
        samples = [(f, sequence["emotion"]) for f in apex]
        if neutral:
            samples.insert(0, (first, Emotion.NEUTRAL))
        for path, emotion in samples:
            paths.append(path)
            labels.append(keep.index(emotion))
            subjects.append(sequence["subject"])
            references.append(first)
    if counts != known:
        atomic_write_text(counts_path, json.dumps(counts, indent=0))
    if not paths:
        raise OpenferError(f"{index_path}: no MMI sequence of the six expressions could be read"
                           + (f" ({problems[0]})" if problems else ""))
    index = subject_split(subjects, split, fold, folds, names=[p.name for p in paths],
                          fold_lists=fold_lists)
    if not len(index):
        raise OpenferError(f"MMI split {split!r} (fold {fold}) has no samples")
    chosen = [paths[i] for i in index]
    regions, missed = crop_regions(chosen, crop, detector, "MMI")
    dataset = ImageFileDataset(chosen, np.asarray(labels)[index], keep, image_size=image_size,
                               channels=channels, regions=regions,
                               name=f"mmi:{split}" + (f":fold{fold}" if fold is not None else ""),
                               label_set=None if neutral else MMI)
    dataset.subjects = [subjects[i] for i in index]
    dataset.reference_paths = [references[i] for i in index]
    dataset.problems += problems + missed
    dataset.dropped.update({k: v for k, v in dropped.items() if v})
    return dataset
