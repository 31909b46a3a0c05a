"""Video sources, and what a frame's results get along a video.

:func:`open_video` opens a file, a stream URL (``rtsp://``, ``http://``: what OpenCV's
FFmpeg reads) or a camera (OpenCV), :func:`read_frames` yields its frames
(every ``every``-th, RGB), and :class:`VideoTracks` gives each frame's scored result its place in
the video: the frame number and time, each face's track id (IoU tracking,
:mod:`openfer.faces.track`) and, on request, its scores averaged along its track
(:class:`openfer.smoothing.TrackSmoother`). :meth:`openfer.infer.Recognizer.predict_video` and
the web service's video route (:mod:`openfer.serve.app`) are both built from these.
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from .errors import OpenferError
from .faces.track import IoUTracker


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_stream_url(source) -> bool:
    """Whether ``source`` is a URL OpenCV's FFmpeg reads (``rtsp://``, ``http://``, ...)."""
    return isinstance(source, str) and bool(_URL.match(source))


def shown_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***`` (records and messages name the
    stream, never its credentials)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def source_name(source: str | Path | int) -> str:
    """How records and messages name a source: ``camera:0``, the file's path, or a stream's URL
    without its password (:func:`shown_url`)."""
    if isinstance(source, int):
        return f"camera:{source}"
    return shown_url(source) if is_stream_url(source) else str(source)


def source_stem(source: str | Path | int) -> str:
    """A file-name stem for a source's outputs: ``camera0``, ``clip``, or a stream's host and
    path (``cam.local_live``)."""
    if isinstance(source, int):
        return f"camera{source}"
    if is_stream_url(source):
        parts = urlsplit(source)
        words = (re.sub(r"[^A-Za-z0-9.-]+", "_", part).strip("_.")
                 for part in (parts.hostname or "", Path(parts.path).stem))
        return "_".join(w for w in words if w) or "stream"
    return Path(source).stem


#: OpenCV passes this variable's options to FFmpeg at each open of a capture.
FFMPEG_OPTIONS = "OPENCV_FFMPEG_CAPTURE_OPTIONS"


@contextlib.contextmanager
def _local_files_only():
    """FFmpeg may open local files only (no network protocol) for captures opened inside: its
    ``protocol_whitelist``, which a demuxer's nested opens inherit, set through
    :data:`FFMPEG_OPTIONS` under :data:`openfer.process_state.LOCK` (process-wide state)."""
    import os

    from .process_state import LOCK

    with LOCK:
        before = os.environ.get(FFMPEG_OPTIONS)
        os.environ[FFMPEG_OPTIONS] = "protocol_whitelist;file"
        try:
            yield
        finally:
            if before is None:
                del os.environ[FFMPEG_OPTIONS]
            else:
                os.environ[FFMPEG_OPTIONS] = before


def open_video(source: str | Path | int, local_only: bool = False):
    """``(capture, name, fps)`` of a video file, a stream URL or a camera index; ``fps`` 0.0
    where the source gives no rate. Raises :class:`OpenferError` when it cannot be opened.
    ``local_only``: a file that FFmpeg would follow to other files or over the network (a
    playlist, a reference movie) cannot (the web service's uploads)."""
    import cv2

    with contextlib.suppress(AttributeError):       # OpenCV's own warnings: ours say more
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    with _local_files_only() if local_only else contextlib.nullcontext():
        capture = cv2.VideoCapture(int(source) if isinstance(source, int) else str(source))
    name = source_name(source)
    if not capture.isOpened():
        raise OpenferError(f"{name}: cannot open the video (unreadable file, unsupported "
                           "codec, unreachable stream, or no such camera)")
    return capture, name, float(capture.get(cv2.CAP_PROP_FPS) or 0.0)


def read_frames(capture, every: int = 1, max_frames: int | None = None
                ) -> Iterator[tuple[int, np.ndarray]]:
    """``(frame number, RGB frame)`` of every ``every``-th frame, at most ``max_frames`` of
    them."""
    import cv2

    every = max(1, int(every))
    index = processed = 0
    while max_frames is None or processed < max_frames:
        ok, frame = capture.read()
        if not ok:
            return
        if index % every == 0:
            processed += 1
            yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        index += 1


#: A face unseen for this long (missed by the detector, or out of the picture for a moment)
#: keeps its track id when it is found again where it was; the web page does the same.
TRACK_MEMORY_S = 1.0


class VideoTracks:
    """The frame number, time, track ids and (``smooth`` > 0) smoothed scores of each frame's
    result, in frame order (``every``: the step between the frames given). Time is the frame's
    position at ``fps``; for a camera, or a file that gives no rate, smoothing follows the
    clock. A track survives :data:`TRACK_MEMORY_S` seconds without its face (at least 5
    frames)."""

    def __init__(self, name: str, fps: float, *, track: bool = True, smooth: float = 0.0,
                 camera: bool = False, every: int = 1):
        from .smoothing import TrackSmoother

        if smooth and not track:
            raise OpenferError("smoothing follows faces along their tracks: smooth needs "
                               "track=True")
        try:
            self.smoother = TrackSmoother(smooth) if smooth else None
        except ValueError as exc:
            raise OpenferError(str(exc)) from None
        self.name, self.fps, self.clock = name, fps, camera or fps <= 0
        memory = round(fps * TRACK_MEMORY_S / max(1, every)) if fps > 0 else 0
        self.tracker = IoUTracker(max_age=max(5, memory)) if track else None

    def place(self, result, index: int):
        """``result`` (an :class:`openfer.infer.ImageResult` of frame ``index``, its faces
        scored) with its source, frame, time, track ids and smoothed scores set."""
        result.source, result.frame = self.name, index
        result.time = round(index / self.fps, 3) if self.fps > 0 else None
        if self.tracker is not None:
            for face, track_id in zip(result.faces, self.tracker.update([f.box for f in
                                                                         result.faces])):
                face.track_id = track_id
        if self.smoother is not None:
            self.smoother.update(result, time.monotonic() if self.clock else index / self.fps)
        return result
