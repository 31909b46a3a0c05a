"""``openfer predict``: photos, folders, videos and cameras in; one record per face per frame out.

Output: a readable line per face (default), JSON lines (``--json``) or CSV (``--csv``) on
stdout; per-file problems and a summary on stderr. A bad input never stops the others. The exit
status is 0 unless no input could be read at all, or ``--strict`` is given and one could not.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

from .data.images import is_image_file, is_video
from .errors import OpenferError
from .faces.detect import detector_options
from .infer import ImageResult, Recognizer, collect_inputs
from .video import is_stream_url, source_name, source_stem


class RecordWriter:
    """Writes result records as text lines, JSON lines or CSV rows."""

    def __init__(self, mode: str, classes: tuple[str, ...], stream=None,
                 heads: tuple[str, ...] = ()):
        self.mode, self.classes, self.heads = mode, classes, tuple(heads)
        self.stream = stream or sys.stdout
        self._csv = None
        if mode == "csv":
            self._csv = csv.writer(self.stream)
            self._csv.writerow(["file", "frame", "time", "face", "track_id", "x1", "y1", "x2",
                                "y2", "detector_score", "label", "confidence", *classes,
                                *self.heads, "note"])

    def write(self, result: ImageResult) -> None:
        for record in result.records():
            if self.mode == "json":
                self.stream.write(json.dumps(record) + "\n")
            elif self.mode == "csv":
                box = record.get("box") or [None] * 4
                scores = record.get("scores") or {}
                self._csv.writerow([record["file"], record["frame"], record["time"],
                                    record["face"], record.get("track_id"), *box,
                                    record.get("detector_score"), record.get("label"),
                                    record.get("confidence"),
                                    *(scores.get(c) for c in self.classes),
                                    *(record.get(h) for h in self.heads),
                                    record.get("error") or record.get("note") or ""])
            else:
                self.stream.write(_text(record, self.heads) + "\n")
        self.stream.flush()


def _text(record: dict, heads: tuple[str, ...] = ()) -> str:
    where = record["file"] + (f" frame {record['frame']}" if record["frame"] is not None else "")
    if record.get("error"):
        return f"error: {record['error']}"
    if record["face"] is None:
        return f"{where}: no face detected"
    box = ",".join(f"{v:.0f}" for v in record["box"])
    track = f" track {record['track_id']}" if record.get("track_id") is not None else ""
    extra = "".join(f", {h} {record[h]}" for h in heads if record.get(h) is not None)
    return f"{where} face {record['face']}{track} [{box}]: {record['label']} " \
           f"({record['confidence']:.0%}){extra}"


def _progress(total: int | None, unit: str):
    """A progress bar on stderr when it is a terminal (``total`` None: a running count)."""
    if not sys.stderr.isatty() or (total is not None and total < 2):
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit=unit, file=sys.stderr, leave=False)


def run_predict(args, device: str) -> int:
    if not args.paths and args.camera is None:
        raise OpenferError("nothing to predict: give image/video paths, folders or video URLs, "
                           "or --camera N (or --camera URL)")
    annotated = AnnotatedNames(args.save_annotated, args.paths) if args.save_annotated \
        else None
    detector = "none" if args.no_detect else args.detector
    options = detector_options(detector, args.yunet, args.mtcnn, args.min_face)
    recognizer = Recognizer(args.model or ["default"], detector=detector,
                            device=device, backend=args.backend,
                            batch_size=args.batch_size, tta=args.tta, detector_options=options,
                            precision=args.precision)
    mode = "json" if args.json else "csv" if args.csv else "text"
    writer = RecordWriter(mode, recognizer.meta.classes,
                          heads=tuple(name for name, _ in recognizer.heads))
    stats = {"inputs": 0, "read": 0, "frames": 0, "faces": 0, "errors": [], "crop_hint": False}
    if mode == "text":
        print(f"model: {recognizer.meta.architecture} ({', '.join(recognizer.meta.classes)}); "
              f"detector: {recognizer.detector.name}", file=sys.stderr)

    summary = None
    if args.summary:
        from .summary import Summary
        if not Path(args.summary).resolve().parent.is_dir():
            raise OpenferError(f"--summary {args.summary}: its folder does not exist; create it "
                               "or give another path")
        summary = Summary()

    def emit(result: ImageResult) -> None:
        writer.write(result)
        if summary is not None:
            summary.add(result)
        if result.error:
            stats["errors"].append(result.error)
            print(f"openfer: skipped {result.error}", file=sys.stderr)
        else:
            stats["faces"] += len(result.faces)
            if not result.faces and _looks_like_a_face_crop(result) and not stats["crop_hint"]:
                stats["crop_hint"] = True
                print(f"openfer: no face found in {result.source} ({result.width}x"
                      f"{result.height}): if your images are face crops (FER2013-style), "
                      "--no-detect classifies each one whole", file=sys.stderr)

    try:
        _predict_all(recognizer, args, emit, stats, annotated)
    finally:                               # a camera stopped with Ctrl-C keeps its summary
        if summary is not None:
            from .summary import write_summary
            rows = summary.rows()
            write_summary(rows, args.summary)
            print(f"openfer: summary of {len(rows)} tracked face(s) written to {args.summary}",
                  file=sys.stderr)
    errors = len(stats["errors"])
    print(f"openfer: {stats['inputs']} input(s), {stats['read']} image(s) and "
          f"{stats['frames']} video frame(s) read, {stats['faces']} face(s), {errors} "
          f"unreadable", file=sys.stderr)
    if stats["read"] + stats["frames"] == 0:
        return 1
    return 1 if args.strict and errors else 0


def _looks_like_a_face_crop(result: ImageResult) -> bool:
    """A photo of at most 2 x 48 px a side: a face crop more likely than a scene (detectors miss
    faces that fill the picture; MTCNN found 224 of 300 FER2013 48x48 faces)."""
    return result.frame is None and result.width is not None and \
        max(result.width, result.height) <= 96


class AnnotatedNames:
    """Where ``--save-annotated DIR`` writes each input's annotated copy, so that no copy
    overwrites another of the same run.

    ``DIR/<stem>.annotated.jpg`` (``.mp4`` for videos and cameras); an input found in a folder
    given keeps its place below that folder (``photos/a/x.jpg`` of ``photos`` ->
    ``DIR/a/x.annotated.jpg``), so that files of the same name in different sub-folders
    (``happy/001.jpg``, ``sad/001.jpg``) keep their copies apart. A name already written in this
    run (``x.jpg`` and ``x.png`` side by side, or two folders given) takes ``-2``, ``-3``, ...
    and stderr says which input it belongs to. Copies of an earlier run in ``DIR`` are replaced.
    """

    def __init__(self, directory: str | Path, paths=()):
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise OpenferError(f"--save-annotated {directory}: a file, not a folder; give a "
                               "folder (created if missing)")
        self._roots = [Path(p) for p in paths if not is_stream_url(p) and Path(p).is_dir()]
        self._taken: set[Path] = set()

    def path(self, source, suffix: str) -> Path:
        """The file for ``source`` (a path, stream URL or camera number) ending in ``suffix``
        (``.annotated.jpg``); each call reserves a new name."""
        folder = self.directory
        if isinstance(source, (str, Path)) and not is_stream_url(source):
            root = next((r for r in self._roots if Path(source).is_relative_to(r)), None)
            if root is not None:
                folder = folder.joinpath(*Path(source).relative_to(root).parent.parts)
        stem = source_stem(source)
        out, n = folder / f"{stem}{suffix}", 2
        while out in self._taken:
            out, n = folder / f"{stem}-{n}{suffix}", n + 1
        self._taken.add(out)
        if n > 2:
            print(f"openfer: {source_name(source)}: annotated copy written to {out} "
                  f"({stem}{suffix} holds another input's)", file=sys.stderr)
        return out


def _predict_all(recognizer: Recognizer, args, emit, stats, annotated) -> None:
    if args.camera is not None:
        stats["inputs"] += 1
        _run_video(recognizer, args.camera, args, emit, stats, annotated, live=True)
    urls = [p for p in args.paths if is_stream_url(p)]
    for url in urls:                       # a photo, video file or stream over the network
        stats["inputs"] += 1
        if is_image_file(urlsplit(url).path):
            _run_image_url(recognizer, url, emit, stats, annotated)
        else:
            _run_video(recognizer, url, args, emit, stats, annotated)
    paths = [p for p in args.paths if p not in urls]
    inputs = collect_inputs(paths, args.recursive)
    for note in _empty_folders(paths, inputs, args.recursive):
        print(f"openfer: {note}", file=sys.stderr)
    tables = [p for p in inputs if _is_face_table(p)]
    inputs = [p for p in inputs if p not in tables]
    for table in tables:
        stats["inputs"] += 1
        _run_face_table(recognizer, table, emit, stats)
    bar = _progress(len(inputs), "file")
    for group_is_video, group in _groups(inputs):
        stats["inputs"] += len(group)
        if group_is_video:
            for path in group:
                _run_video(recognizer, path, args, emit, stats, annotated)
                if bar:
                    bar.update()
            continue
        for path, result in zip(group, recognizer.iter_predict(group)):
            if result.error and _opens_as_video(path):
                _run_video(recognizer, path, args, emit, stats, annotated)
            else:
                if not result.error:
                    stats["read"] += 1
                    if annotated is not None:
                        _save_annotated_image(path, result, annotated)
                emit(result)
            if bar:
                bar.update()
    if bar:
        bar.close()


def _empty_folders(paths, inputs: list[Path], recursive: bool) -> list[str]:
    """A note for each folder given that yielded no image or video, with what to do."""
    notes = []
    for raw in paths:
        folder = Path(raw)
        if not folder.is_dir() or any(p.is_relative_to(folder) for p in inputs):
            continue
        if not recursive and any(p.is_dir() for p in folder.iterdir()):
            notes.append(f"{folder}: no images or videos in it; it has sub-folders: add "
                         "--recursive to read them")
        else:
            notes.append(f"{folder}: no images or videos in it (files are recognised by "
                         "extension: .jpg, .png, .mp4 and the like)")
    return notes


def _is_face_table(path: Path) -> bool:
    return path.name.lower().endswith((".csv", ".csv.gz"))


def _run_face_table(recognizer: Recognizer, path: Path, emit, stats) -> None:
    """FER2013-format CSVs (fer2013.csv, Kaggle's unlabelled test.csv): one pre-cropped 48x48
    face per row, classified without detection; each record's file is ``<csv>:<line>``."""
    from .data.fer2013 import read_csv
    from .faces.detect import DetectedFace

    try:
        faces, _, lines = read_csv(path, "all")
    except OpenferError as exc:
        emit(ImageResult(str(path), error=str(exc)))
        return
    probs = recognizer.score(faces[:, :, :, None])
    for face_probs, line in zip(probs, lines):
        result = ImageResult(f"{path}:{line}", width=48, height=48, detector="none")
        result.faces.append(recognizer.face_result(DetectedFace((0.0, 0.0, 48.0, 48.0)),
                                                    face_probs))
        stats["read"] += 1
        emit(result)


def _groups(paths: list[Path]) -> Iterator[tuple[bool, list[Path]]]:
    """Consecutive runs of images and of videos, in input order."""
    group: list[Path] = []
    current = None
    for path in paths:
        kind = is_video(path)
        if group and kind != current:
            yield current, group
            group = []
        current = kind
        group.append(path)
    if group:
        yield current, group


def _opens_as_video(path: Path) -> bool:
    """Content sniffing: a video container by its magic bytes, whatever the file's name.

    MP4/MOV/3GP (``ftyp`` box), AVI (RIFF....AVI), Matroska/WebM (EBML), FLV, MPEG program and
    elementary streams, and ASF/WMV.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    return (head[4:8] == b"ftyp" or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
            or head[:4] == b"\x1aE\xdf\xa3" or head[:3] == b"FLV"
            or head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")
            or head[:16] == bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"))


def _run_image_url(recognizer: Recognizer, url: str, emit, stats,
                   annotated: AnnotatedNames | None) -> None:
    """A photo over the network (its URL's path ends in an image extension), read by OpenCV's
    FFmpeg as the one frame of a video and reported as a photo: no frame, time or track."""
    frames = recognizer.predict_video(url, max_frames=1, track=False, with_frames=True)
    try:
        result, rgb = next(frames)
    except OpenferError as exc:
        emit(ImageResult(source_name(url), error=str(exc)))
        return
    finally:
        frames.close()                     # the connection
    result.frame = result.time = None
    stats["read"] += 1
    if annotated is not None:
        _save_annotated_image(url, result, annotated, rgb)
    emit(result)


def _run_video(recognizer: Recognizer, source, args, emit, stats,
               annotated: AnnotatedNames | None,
               live: bool | None = None) -> None:
    from .annotate import Placements, annotate

    out, placements = None, Placements()
    bar = _progress(_frames_to_read(source, args, live), "frame") if sys.stderr.isatty() \
        else None
    try:
        for result, rgb in recognizer.predict_video(source, every=args.every,
                                                    max_frames=args.max_frames,
                                                    with_frames=True, smooth=args.smooth,
                                                    live=live):
            stats["frames"] += 1
            if bar is not None:
                bar.update()
            emit(result)
            if annotated is not None:
                if out is None:
                    fps = (recognizer.last_fps or 25.0) / max(1, args.every)
                    out = _VideoOut(annotated.path(source, ".annotated.mp4"),
                                    (rgb.shape[1], rgb.shape[0]), fps)
                out.write(annotate(rgb, result, placements=placements))
    except OpenferError as exc:
        emit(ImageResult(source_name(source), error=str(exc)))
    finally:
        if bar is not None:
            bar.close()
        if out is not None:
            out.close()


def _frames_to_read(source, args, live: bool | None) -> int | None:
    """How many frames a video will give (for the progress bar): from the file's frame count,
    ``--every`` and ``--max-frames``; ``None`` (a running count) for cameras and streams (not
    opened twice), or where the file does not say."""
    if live or isinstance(source, int) or is_stream_url(source):
        return args.max_frames
    import cv2

    capture = cv2.VideoCapture(str(source))
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()
    if count <= 0:
        return args.max_frames
    total = -(-count // max(1, args.every))
    return min(total, args.max_frames) if args.max_frames else total


class _VideoOut:
    """Annotated video written to a temporary file and moved into place when complete."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float):
        import cv2

        from .fileio import make_parent

        make_parent(path)
        self.path, self.tmp = path, path.with_name(f".{path.name}.tmp.mp4")
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not self.writer.isOpened():
            self.writer.release()
            self.tmp.unlink(missing_ok=True)
            raise OpenferError(f"{path}: cannot write the annotated video there (a folder "
                               "without write permission, or no MPEG-4 encoder in OpenCV); "
                               "give --save-annotated another folder")

    def write(self, rgb) -> None:
        import cv2
        self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        import os
        self.writer.release()
        os.replace(self.tmp, self.path)


def _save_annotated_image(path: Path | str, result: ImageResult, names: AnnotatedNames,
                          image=None) -> None:
    """The annotated copy of ``path`` (its pixels ``image``, RGB, else read from the file)."""
    import cv2

    from .annotate import annotate
    from .data.images import read_image_bounded
    from .fileio import atomic_write_bytes

    if image is None:
        image, _ = read_image_bounded(path)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(annotate(image, result), cv2.COLOR_RGB2BGR))
    if ok:
        atomic_write_bytes(names.path(path, ".annotated.jpg"), data.tobytes())
