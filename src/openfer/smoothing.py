"""Temporal smoothing of expression scores along face tracks (video and camera streams).

A frame-by-frame classifier flickers: small changes of pose, light, compression and the face
crop from one frame to the next change the top label of a few per cent of faces even when the
expression does not change (measured in the README's "Video" section). Averaging each tracked
face's class probabilities over a short window removes most of that flicker, at the price of a
lag when the expression really changes.

The average is an exponential moving average in *time*, not in frames, so the same setting
behaves the same at any frame rate and with ``every``-th frame processing:

    s_t = s_prev + a (p_t - s_prev),   a = 1 - exp(-dt / tau)

where ``p_t`` are the frame's probabilities, ``dt`` the seconds since the track's previous frame
and ``tau`` (``seconds``) the time constant: a change of expression is 63 % through after
``tau`` seconds and 95 % after ``3 tau``. A track's first frame is its own average. The smoothed
scores stay a probability distribution (a convex combination of distributions).

None of the five papers smooths over time (they classify still images or, for Aff-Wild2, single
frames); this is openfer's addition for video, off unless asked for. :func:`smooth_sequences` does
the same offline for evaluation on data sets of video frames (``openfer eval --smooth``; ABAW
entries commonly smooth their per-frame predictions this way).
"""

from __future__ import annotations

import math

import numpy as np


def check_time_constant(seconds: float, fps: float | None = None) -> float:
    """``seconds`` as a float, if it is a positive, finite time constant (and ``fps``, where
    given, a positive frame rate); ``ValueError`` saying which is wrong otherwise."""
    seconds = float(seconds)
    if not seconds > 0 or not math.isfinite(seconds):
        raise ValueError(f"the smoothing time constant must be a positive number of seconds, "
                         f"got {seconds!r}")
    if fps is not None and not float(fps) > 0:
        raise ValueError(f"smoothing over frames needs a positive frame rate, got {fps!r} "
                         "frames/s")
    return seconds


def _weight(elapsed: float, seconds: float) -> float:
    """How far the average moves towards a new value after ``elapsed`` seconds."""
    return 1.0 - math.exp(-max(elapsed, 0.0) / seconds)


class TrackSmoother:
    """Exponential moving average of each track's scores, with time constant ``seconds``.

    ``update(result, now)`` replaces the ``probabilities``, ``label`` and ``confidence`` of every
    tracked face of ``result`` (an :class:`openfer.infer.ImageResult`) by their smoothed values
    and keeps the frame's own probabilities in ``extras["frame_scores"]``. A multi-task model's
    heads are averaged the same way: a value (``valence``) and a head's probabilities
    (``age_scores``, its label ``age`` following them), the frame's own kept as
    ``frame_valence``, ``frame_age_scores``. Faces without a ``track_id`` are left as they are.
    A track not seen for ``forget`` seconds (default ``10 * seconds``) is forgotten, so a face
    that comes back starts afresh.
    """

    def __init__(self, seconds: float, forget: float | None = None):
        self.seconds = seconds = check_time_constant(seconds)
        self.forget = 10 * seconds if forget is None else float(forget)
        # id -> (the names of the averaged values, their average, last time seen)
        self.tracks: dict[int, tuple[list, np.ndarray, float]] = {}

    def update(self, result, now: float):
        """Smooth the tracked faces of ``result``, seen at time ``now`` (seconds); returns it."""
        for track_id, (_, _, seen) in list(self.tracks.items()):
            if now - seen > self.forget:
                del self.tracks[track_id]
        for face in result.faces:
            if face.track_id is None:
                continue
            names, frame = _values(face)
            previous = self.tracks.get(face.track_id)
            if previous is None or previous[0] != names:
                average = frame
            else:
                weight = _weight(now - previous[2], self.seconds)
                average = previous[1] + weight * (frame - previous[1])
            self.tracks[face.track_id] = (names, average, now)
            _replace(face, names, average)
        return result


def _values(face) -> tuple[list, np.ndarray]:
    """What is averaged: ``(group, key)`` names (group None: the expression's classes; a head's
    name with key None: its value; a head's ``*_scores`` with a class) and their values."""
    names: list = [(None, c) for c in face.probabilities]
    values = list(face.probabilities.values())
    for name, value in face.extras.items():
        if name.startswith("frame_"):
            continue
        if isinstance(value, float):
            names.append((name, None))
            values.append(value)
        elif name.endswith("_scores") and isinstance(value, dict):
            names.extend((name, c) for c in value)
            values.extend(value.values())
    return names, np.asarray(values, dtype=np.float64)


def _replace(face, names: list, average: np.ndarray) -> None:
    """Put the averages in place of the face's scores, keeping the frame's own as ``frame_*``."""
    groups: dict = {}
    for (group, key), value in zip(names, average):
        groups.setdefault(group, {})[key] = value
    face.extras["frame_scores"] = dict(face.probabilities)
    for group, values in groups.items():
        if group is None:
            face.probabilities = {c: round(float(p), 5) for c, p in values.items()}
            face.label = max(face.probabilities, key=face.probabilities.get)
            face.confidence = face.probabilities[face.label]
            continue
        face.extras[f"frame_{group}"] = face.extras[group]
        if None in values:                                   # a regression head's value
            face.extras[group] = round(float(values[None]), 4)
        else:                                                # a categorical head's scores
            scores = {c: round(float(p), 5) for c, p in values.items()}
            face.extras[group] = scores
            head = group[:-len("_scores")]
            if head in face.extras:
                face.extras[head] = max(scores, key=scores.get)


# -- offline: evaluation on data sets of video frames --------------------------------------------
def frame_sequences(dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(video, frame)`` of every sample of a data set of video frames stored one file a frame
    (``<video>/<frame number>.<ext>``, as Aff-Wild2's ``cropped_aligned/<video>/00001.jpg``):
    a video index per distinct folder, and the frame number from the file name."""
    from .errors import OpenferError

    paths = getattr(getattr(dataset, "dataset", dataset), "paths", None)
    bad = next((p for p in paths or () if not p.stem.isdigit()), None)
    if paths is None or bad is not None:
        where = f" ({bad} is not)" if bad is not None else ""
        raise OpenferError(f"{dataset.name}: smoothing over time needs faces that are frames of "
                           f"videos, one file a frame named by its number (<video>/00001.jpg, "
                           f"as Aff-Wild2's cropped_aligned){where}")
    folders: dict = {}
    videos = np.array([folders.setdefault(p.parent, len(folders)) for p in paths])
    return videos, np.array([int(p.stem) for p in paths])


def frame_rates(dataset, default: float) -> tuple[np.ndarray, int]:
    """Each sample's frame rate, and for how many videos it was read: from the video file the
    data set names for the sample's folder (``dataset.video_files``, folder name -> file, as
    the Aff-Wild2 reader finds them in ``videos/``) where OpenCV reads a positive rate from it,
    else ``default``."""
    dataset = getattr(dataset, "dataset", dataset)
    files = getattr(dataset, "video_files", None) or {}
    read: dict[str, float | None] = {}
    rates = np.full(len(dataset.paths), float(default))
    for i, path in enumerate(dataset.paths):
        name = path.parent.name
        if name in files and name not in read:
            read[name] = _file_frame_rate(files[name])
        rates[i] = read.get(name) or default
    return rates, sum(rate is not None for rate in read.values())


def _file_frame_rate(path) -> float | None:
    """The frame rate OpenCV reads from a video file's header; None where it gives none."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        rate = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
    finally:
        capture.release()
    return float(rate) if math.isfinite(rate) and 0 < rate < 1000 else None


def smooth_sequences(probs: np.ndarray, videos: np.ndarray, frames: np.ndarray, seconds: float,
                     fps: float | np.ndarray) -> np.ndarray:
    """``probs`` (N, classes) averaged along each video in frame order, as :class:`TrackSmoother`
    does on a stream (time constant ``seconds``; frame ``k`` at ``k / fps`` seconds, ``fps`` one
    rate or each sample's, :func:`frame_rates`), in the samples' order. A gap in the frame
    numbers counts as the time it spans."""
    fps = np.broadcast_to(np.asarray(fps, np.float64), (len(probs),))
    for rate in np.unique(fps):
        check_time_constant(seconds, rate)
    out = np.empty_like(probs, dtype=np.float64)
    order = np.lexsort((frames, videos))
    previous = None
    for i in order:
        if previous is None or videos[previous] != videos[i]:
            out[i] = probs[i]
        else:
            weight = _weight((frames[i] - frames[previous]) / fps[i], seconds)
            out[i] = out[previous] + weight * (probs[i] - out[previous])
        previous = i
    return out
