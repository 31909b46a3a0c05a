"""A video of real faces, each held still for a while: for measuring label flicker.

Each face (a 48x48 FER2013 face, enlarged with Lanczos to ``side`` pixels) is held for ``hold``
frames in the middle of a blurred-noise background with camera-like jitter: a random walk of the
position (1 px a frame, at most 6 px), a scale of 1 +- 2 %, brightness +- 2 %, sensor noise
(sigma 3), then MJPG compression; then the video cuts to the next face in the same place, as an
abrupt change of expression of one tracked person. Used by tests/test_smoothing.py and
benchmarks/video_smoothing.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_held_faces_video(path: Path, faces: np.ndarray, fps: int, hold: int, seed: int = 0,
                           size: tuple[int, int] = (320, 240), side: int = 132) -> Path:
    """Write ``faces`` (N, 48, 48) uint8 as an MJPG video of ``len(faces) * hold`` frames."""
    import cv2
    from PIL import Image

    rng = np.random.default_rng(seed)
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    background = cv2.GaussianBlur(rng.normal(110, 12, (height, width)).astype(np.float32),
                                  (0, 0), 3)
    try:
        for face in faces:
            big = np.asarray(Image.fromarray(face).resize((side, side), Image.LANCZOS),
                             np.float32)
            dx = dy = 0.0
            for _ in range(hold):
                dx, dy = np.clip((dx + rng.normal(), dy + rng.normal()), -6, 6)
                s = 1 + rng.normal(0, 0.02)
                warp = np.array([[s, 0, (width - s * side) / 2 + dx],
                                 [0, s, (height - s * side) / 2 + dy]])
                inside = cv2.warpAffine(np.ones_like(big), warp, size,
                                        flags=cv2.INTER_NEAREST) > 0
                image = np.where(inside, cv2.warpAffine(big, warp, size), background)
                image = image * (1 + rng.normal(0, 0.02)) + rng.normal(0, 3, image.shape)
                writer.write(cv2.cvtColor(image.clip(0, 255).astype(np.uint8),
                                          cv2.COLOR_GRAY2BGR))
    finally:
        writer.release()
    return path
