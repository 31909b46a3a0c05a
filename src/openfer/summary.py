"""Per-person summaries of a video: how long each tracked face showed which expression.

    >>> from openfer import Recognizer
    >>> from openfer.summary import summarize
    >>> rows = summarize(Recognizer().predict_video("interview.mp4", smooth=0.3))
    >>> rows[0]["label"], rows[0]["share"]["happiness"]
    ('neutral', 0.21)

One row per (source, track): the frames and times it was seen, its most frequent label, the share
of its frames with each label (``share``), and its mean score per class (``mean_scores``); a
multi-task model's value heads (valence, arousal) are averaged as well. Shares count processed
frames (``every``-th), so they are shares of time when frames are evenly spaced. ``openfer
predict --summary FILE`` writes these rows as JSON or CSV.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable


@dataclass
class _Track:
    source: str
    track_id: int
    first_frame: int | None = None
    last_frame: int | None = None
    start: float | None = None
    end: float | None = None
    frames: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    values: dict[str, list[float]] = field(default_factory=dict)


class Summary:
    """Accumulates video results (:class:`openfer.infer.ImageResult` with tracked faces) into
    per-track rows; faces without a track id (photos) are not counted."""

    def __init__(self):
        self._tracks: dict[tuple[str, int], _Track] = {}

    def add(self, result) -> None:
        for face in result.faces:
            if face.track_id is None:
                continue
            key = (result.source, face.track_id)
            track = self._tracks.setdefault(key, _Track(*key))
            if not track.frames:
                track.first_frame, track.start = result.frame, result.time
            track.last_frame, track.end = result.frame, result.time
            track.frames += 1
            track.labels[face.label] = track.labels.get(face.label, 0) + 1
            for name, p in face.probabilities.items():
                track.scores[name] = track.scores.get(name, 0.0) + p
            for name, value in face.extras.items():
                if isinstance(value, float) and not name.startswith("frame_"):
                    track.values.setdefault(name, []).append(value)

    def rows(self) -> list[dict]:
        """One dict per track, in order of source and track id."""
        out = []
        for (source, track_id), t in sorted(self._tracks.items()):
            classes = list(t.scores)
            label = max(classes, key=lambda c: (t.labels.get(c, 0), t.scores[c]))
            out.append({
                "file": source, "track_id": track_id, "first_frame": t.first_frame,
                "last_frame": t.last_frame, "start": t.start, "end": t.end, "frames": t.frames,
                "label": label,
                "share": {c: round(t.labels.get(c, 0) / t.frames, 4) for c in classes},
                "mean_scores": {c: round(t.scores[c] / t.frames, 5) for c in classes},
                **{f"mean_{name}": round(sum(v) / len(v), 4) for name, v in t.values.items()},
            })
        return out


def summarize(results: Iterable) -> list[dict]:
    """Per-track rows (see the module's documentation) of video results."""
    summary = Summary()
    for result in results:
        summary.add(result)
    return summary.rows()


def write_summary(rows: list[dict], path) -> None:
    """``rows`` as JSON (a list) or, for a ``.csv`` path, CSV with one column per class share
    and mean score; written atomically."""
    import csv
    import io
    import json
    from pathlib import Path

    from .fileio import atomic_write_text

    path = Path(path)
    if path.suffix.lower() != ".csv":
        atomic_write_text(path, json.dumps(rows, indent=1) + "\n")
        return
    classes = list(rows[0]["share"]) if rows else []
    values = sorted({k for row in rows for k in row if k.startswith("mean_")} - {"mean_scores"})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["file", "track_id", "first_frame", "last_frame", "start", "end", "frames",
                     "label", *(f"share_{c}" for c in classes),
                     *(f"mean_{c}" for c in classes), *values])
    for row in rows:
        writer.writerow([row["file"], row["track_id"], row["first_frame"], row["last_frame"],
                         row["start"], row["end"], row["frames"], row["label"],
                         *(row["share"][c] for c in classes),
                         *(row["mean_scores"][c] for c in classes),
                         *(row.get(v) for v in values)])
    atomic_write_text(path, buffer.getvalue())
