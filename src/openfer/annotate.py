"""Draw results on images: a box per face, its top label, and a score bar per class."""

from __future__ import annotations

import numpy as np

from .infer import ImageResult

_COLORS = {"anger": (220, 50, 50), "disgust": (120, 160, 40), "fear": (150, 80, 200),
           "happiness": (250, 200, 30), "sadness": (60, 110, 220), "surprise": (250, 130, 30),
           "neutral": (200, 200, 200), "contempt": (140, 100, 60)}


def annotate(image: np.ndarray, result: ImageResult, bars: bool = True) -> np.ndarray:
    """A copy of an RGB image with the result's faces drawn on it."""
    import cv2

    canvas = np.ascontiguousarray(image.copy())
    scale = canvas.shape[0] / result.height if result.height else 1.0
    thick = max(1, round(max(canvas.shape[:2]) / 500))
    font = 0.4 * thick
    for face in result.faces:
        x1, y1, x2, y2 = (int(round(v * scale)) for v in face.box)
        color = _COLORS.get(face.label, (0, 255, 0))
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, thick)
        title = f"{face.label} {face.confidence:.0%}"
        if face.track_id is not None:
            title = f"#{face.track_id} " + title
        (tw, th), _ = cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, font, thick)
        left = max(0, min(x1, canvas.shape[1] - tw - 4))      # keep the label inside the image
        top = y1 - th - 6 if y1 - th - 6 >= 0 else y2
        cv2.rectangle(canvas, (left, top), (left + tw + 4, top + th + 6), color, -1)
        cv2.putText(canvas, title, (left + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, font,
                    (0, 0, 0), thick, cv2.LINE_AA)
        if bars:
            _score_bars(canvas, face.probabilities, x1, y2, max(100 * thick, x2 - x1), thick)
    return canvas


def _score_bars(canvas: np.ndarray, probabilities: dict, x: int, y: int, width: int,
                thick: int) -> None:
    """One bar per class under the box, on a darkened panel so the text stays readable."""
    import cv2

    row_h = max(9, int(10 * thick))
    height = row_h * len(probabilities) + 4
    x = max(0, min(x, canvas.shape[1] - width))
    y0, y1 = y + 2, min(canvas.shape[0], y + 2 + height)
    if y1 - y0 < row_h:
        return
    panel = canvas[y0:y1, x:x + width]
    panel[:] = (panel * 0.35).astype(canvas.dtype)
    for i, (name, p) in enumerate(probabilities.items()):
        top = y0 + 2 + i * row_h
        if top + row_h > y1:
            break
        cv2.rectangle(canvas, (x, top), (x + int(width * p), top + row_h - 2),
                      _COLORS.get(name, (0, 255, 0)), -1)
        cv2.putText(canvas, f"{name[:9]} {p:.0%}", (x + 2, top + row_h - 3),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.3 * thick, (255, 255, 255), max(1, thick // 2),
                    cv2.LINE_AA)
