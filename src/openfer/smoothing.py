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
frames); this is openfer's addition for video, off unless asked for.
"""

from __future__ import annotations

import math

import numpy as np


class TrackSmoother:
    """Exponential moving average of each track's class probabilities, with time constant
    ``seconds``.

    ``update(result, now)`` replaces the ``probabilities``, ``label`` and ``confidence`` of every
    tracked face of ``result`` (an :class:`openfer.infer.ImageResult`) by their smoothed values
    and keeps the frame's own probabilities in ``extras["frame_scores"]``; faces without a
    ``track_id`` are left as they are. A track not seen for ``forget`` seconds (default
    ``10 * seconds``) is forgotten, so a face that comes back starts afresh.
    """

    def __init__(self, seconds: float, forget: float | None = None):
        seconds = float(seconds)
        if not seconds > 0 or not math.isfinite(seconds):
            raise ValueError(f"the smoothing time constant must be a positive number of "
                             f"seconds, got {seconds!r}")
        self.seconds = seconds
        self.forget = 10 * seconds if forget is None else float(forget)
        self.tracks: dict[int, tuple[np.ndarray, float]] = {}   # id -> (average, last time)

    def update(self, result, now: float):
        """Smooth the tracked faces of ``result``, seen at time ``now`` (seconds); returns it."""
        for track_id, (_, seen) in list(self.tracks.items()):
            if now - seen > self.forget:
                del self.tracks[track_id]
        for face in result.faces:
            if face.track_id is None:
                continue
            classes = list(face.probabilities)
            frame = np.array([face.probabilities[c] for c in classes], dtype=np.float64)
            previous = self.tracks.get(face.track_id)
            if previous is None or len(previous[0]) != len(frame):
                average = frame
            else:
                weight = 1.0 - math.exp(-max(now - previous[1], 0.0) / self.seconds)
                average = previous[0] + weight * (frame - previous[0])
            self.tracks[face.track_id] = (average, now)
            top = int(np.argmax(average))
            face.extras["frame_scores"] = dict(face.probabilities)
            face.probabilities = {c: round(float(p), 5) for c, p in zip(classes, average)}
            face.label, face.confidence = classes[top], round(float(average[top]), 5)
        return result
