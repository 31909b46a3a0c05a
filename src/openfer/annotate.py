"""Draw results on images: a box per face, its top label, and a score bar per class.

Labels and score panels are placed so that they cover no face and no other label where the image
leaves room (:func:`place_labels`): each goes to the free spot of a few candidates around its own
face (the title above the box, else below or inside its top; the panel below the box, else to its
right, left or above) that overlaps the least; a panel with no free room shows the top three
classes, or is left out rather than cover a face or a label. Faces are drawn first, panels next,
titles last. On video, :class:`Placements` remembers where each tracked face's labels went, and
they stay there while that spot is still free, instead of jumping between equally free spots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .infer import ImageResult

_COLORS = {"anger": (220, 50, 50), "disgust": (120, 160, 40), "fear": (150, 80, 200),
           "happiness": (250, 200, 30), "sadness": (60, 110, 220), "surprise": (250, 130, 30),
           "neutral": (200, 200, 200), "contempt": (140, 100, 60)}

Rect = tuple[int, int, int, int]          # x1, y1, x2, y2 (exclusive)

#: How much worse covering a face is than covering another label.
FACE_WEIGHT = 4


@dataclass
class Layout:
    """Where :func:`annotate` draws each face's box, title and score panel (pixels of the image
    drawn on), and the text sizes it uses."""

    boxes: list[Rect]
    titles: list[str]
    title_rects: list[Rect]
    panel_rects: list[tuple[Rect | None, int]]    # (rectangle, rows shown), (None, 0): none
    row_h: int
    thick: int


class Placements(dict):
    """Where each track's title and panel went in earlier frames: ``track_id -> (title
    candidate, panel candidate or None)``, kept up to date by :func:`layout`."""


def layout(shape: tuple[int, ...], result: ImageResult, bars: bool = True,
           placements: Placements | None = None) -> Layout:
    """The layout of ``result``'s faces on an image of ``shape`` (H, W[, C]); with
    ``placements`` (one per video), tracked faces keep their labels' spots while they are free.
    """
    import cv2

    scale = shape[0] / result.height if result.height else 1.0
    thick = max(1, round(max(shape[:2]) / 500))
    boxes = [tuple(int(round(v * scale)) for v in face.box) for face in result.faces]
    titles, title_sizes = [], []
    for face in result.faces:
        title = f"{face.label} {face.confidence:.0%}"
        if face.track_id is not None:
            title = f"#{face.track_id} " + title
        (tw, th), _ = cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, thick)
        titles.append(title)
        title_sizes.append((tw + 4, th + 6))
    row_h = max(9, int(10 * thick))
    (text_w, _), _ = cv2.getTextSize("happiness 100%", cv2.FONT_HERSHEY_SIMPLEX, 0.3 * thick,
                                     max(1, thick // 2))
    panels = [(max(text_w + 6, b[2] - b[0]), len(f.probabilities))
              for f, b in zip(result.faces, boxes)] if bars else []
    tracks = [face.track_id for face in result.faces]
    prefer = [placements.get(t) if placements is not None and t is not None else None
              for t in tracks]
    chosen: list[tuple[int, int | None]] = []
    title_rects, panel_rects = place_labels(boxes, title_sizes, panels, row_h, shape[1],
                                            shape[0], prefer=prefer, chosen=chosen)
    if placements is not None:
        placements.update((t, c) for t, c in zip(tracks, chosen) if t is not None)
    return Layout(boxes, titles, title_rects, panel_rects, row_h, thick)


def annotate(image: np.ndarray, result: ImageResult, bars: bool = True,
             placements: Placements | None = None) -> np.ndarray:
    """A copy of an RGB image with the result's faces drawn on it (see :func:`layout`)."""
    import cv2

    canvas = np.ascontiguousarray(image.copy())
    plan = layout(canvas.shape, result, bars, placements)
    colors = [_COLORS.get(face.label, (0, 255, 0)) for face in result.faces]
    for (x1, y1, x2, y2), color in zip(plan.boxes, colors):
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, plan.thick)
    for face, (rect, rows) in zip(result.faces, plan.panel_rects):
        if rows:
            shown = sorted(face.probabilities.items(), key=lambda kv: -kv[1])[:rows] \
                if rows < len(face.probabilities) else face.probabilities.items()
            _score_bars(canvas, dict(shown), rect, plan.row_h, plan.thick)
    for title, (x1, y1, x2, y2), color in zip(plan.titles, plan.title_rects, colors):
        cv2.rectangle(canvas, (x1, y1), (x2 - 1, y2 - 1), color, -1)
        cv2.putText(canvas, title, (x1 + 2, y2 - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * plan.thick,
                    (0, 0, 0), plan.thick, cv2.LINE_AA)
    return canvas


#: Rows of a compact score panel (the top classes), used where a full one would cover a face.
COMPACT_ROWS = 3


def place_labels(boxes: Sequence[Rect], titles: Sequence[tuple[int, int]],
                 panels: Sequence[tuple[int, int]], row_h: int, width: int, height: int,
                 prefer: Sequence[tuple[int, int | None] | None] = (),
                 chosen: list | None = None
                 ) -> tuple[list[Rect], list[tuple[Rect | None, int]]]:
    """Rectangles for every face's title (sizes ``(w, h)``) and score panel (``(w, classes)``;
    ``panels`` may be empty), and the rows each panel shows.

    Each goes to the candidate spot next to its own face that covers the least of the faces
    (weighted by :data:`FACE_WEIGHT`) and of the labels placed before it, moved inside the
    image; ties go to the first candidate. Titles are placed first, in face order, then panels.
    A panel that would cover a face or a label shrinks to the top :data:`COMPACT_ROWS` classes,
    and is left out (``(None, 0)``) if even that would: the title still gives the top class.

    ``prefer[i]``, where given, is face ``i``'s choice in the previous frame (title candidate,
    panel candidate or None): its title stays at that candidate while it covers nothing, and
    its panel too (all classes if they fit there, else the top ones) before any other spot is
    tried. ``chosen``, a list, receives each face's choice in that form.
    """
    placed: list[Rect] = []
    prefer = list(prefer) + [None] * (len(boxes) - len(prefer))

    def best(candidates: list[Rect], keep: int | None) -> tuple[int, Rect, int, int]:
        fitted = [_inside(c, width, height) for c in candidates]
        faces = [sum(_overlap(c, b) for b in boxes) for c in fitted]
        labels = [sum(_overlap(c, p) for p in placed) for c in fitted]
        i = int(np.argmin([FACE_WEIGHT * f + g for f, g in zip(faces, labels)]))
        if keep is not None and keep < len(fitted) and not faces[keep] and not labels[keep]:
            i = keep
        return i, fitted[i], faces[i], labels[i]

    title_rects, title_choices = [], []
    for (x1, y1, _x2, y2), (w, h), previous in zip(boxes, titles, prefer):
        i, rect, _, _ = best([(x1, y1 - h, x1 + w, y1), (x1, y2, x1 + w, y2 + h),
                              (x1, y1, x1 + w, y1 + h)], previous and previous[0])
        placed.append(rect)
        title_rects.append(rect)
        title_choices.append(i)
    panel_rects, panel_choices = [], []
    for (x1, y1, x2, y2), (w, classes), title, previous in zip(boxes, panels, title_rects,
                                                              prefer):
        below = max(y2, title[3]) if title[1] >= y2 - 1 else y2
        above = min(y1, title[1]) if title[3] <= y1 + 1 else y1
        panel: tuple[Rect | None, int] = (None, 0)
        choice: int | None = None
        sizes = list(dict.fromkeys((classes, min(classes, COMPACT_ROWS))))
        kept = previous[1] if previous else None
        # its spot of the previous frame first (full, then compact), then the best free one
        for rows, keep in [(r, kept) for r in sizes if kept is not None] + \
                [(r, None) for r in sizes]:
            h = row_h * rows + 4
            i, rect, on_faces, on_labels = best([
                (x1, below + 2, x1 + w, below + 2 + h), (x2 + 2, y1, x2 + 2 + w, y1 + h),
                (x1 - 2 - w, y1, x1 - 2, y1 + h), (x1, above - 2 - h, x1 + w, above - 2)], keep)
            if not on_faces and not on_labels and (keep is None or i == keep):
                panel, choice = (rect, rows), i
                break
        if panel[1]:
            placed.append(panel[0])
        panel_rects.append(panel)
        panel_choices.append(choice)
    if chosen is not None:
        panel_choices += [None] * (len(title_choices) - len(panel_choices))    # no panels
        chosen[:] = list(zip(title_choices, panel_choices))
    return title_rects, panel_rects


def _overlap(a: Rect, b: Rect) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def _inside(rect: Rect, width: int, height: int) -> Rect:
    """``rect`` moved (not resized) to lie inside the image where it fits."""
    x1, y1, x2, y2 = rect
    dx = -x1 if x1 < 0 else min(0, width - x2)
    dy = -y1 if y1 < 0 else min(0, height - y2)
    return x1 + dx, y1 + dy, x2 + dx, y2 + dy


def _score_bars(canvas: np.ndarray, probabilities: dict, rect: Rect, row_h: int,
                thick: int) -> None:
    """One bar per class, on a darkened panel so the text stays readable."""
    import cv2

    x0, y0 = max(0, rect[0]), max(0, rect[1])
    x1, y1 = min(canvas.shape[1], rect[2]), min(canvas.shape[0], rect[3])
    if y1 - y0 < row_h or x1 <= x0:
        return
    panel = canvas[y0:y1, x0:x1]
    panel[:] = (panel * 0.35).astype(canvas.dtype)
    for i, (name, p) in enumerate(probabilities.items()):
        top = y0 + 2 + i * row_h
        if top + row_h > y1:
            break
        cv2.rectangle(canvas, (x0, top), (x0 + int((x1 - x0) * p), top + row_h - 2),
                      _COLORS.get(name, (0, 255, 0)), -1)
        cv2.putText(canvas, f"{name[:9]} {p:.0%}", (x0 + 2, top + row_h - 3),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.3 * thick, (255, 255, 255), max(1, thick // 2),
                    cv2.LINE_AA)
