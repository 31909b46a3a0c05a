"""A video of real faces, each held still for a while: for measuring label flicker.

Each face (a 48x48 FER2013 face, enlarged with Lanczos to ``side`` pixels) is held for ``hold``
frames in the middle of a blurred-noise background with camera-like jitter: a random walk of the
position (1 px a frame, at most 6 px), a scale of 1 +- 2 %, brightness +- 2 %, sensor noise
(sigma 3), then MJPG compression; then the video cuts to the next face in the same place, as an
abrupt change of expression of one tracked person. Used by tests/test_smoothing.py,
tests/test_serve.py (the web page's camera) and benchmarks/video_smoothing.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np


def held_face_frames(faces: np.ndarray, hold: int, seed: int = 0,
                     size: tuple[int, int] = (320, 240), side: int = 132) -> Iterator[np.ndarray]:
    """The frames (grayscale uint8, ``size`` = (width, height)) showing each of ``faces``
    (N, 48, 48) uint8 for ``hold`` frames."""
    import cv2
    from PIL import Image

    rng = np.random.default_rng(seed)
    width, height = size
    background = cv2.GaussianBlur(rng.normal(110, 12, (height, width)).astype(np.float32),
                                  (0, 0), 3)
    for face in faces:
        big = np.asarray(Image.fromarray(face).resize((side, side), Image.LANCZOS), np.float32)
        dx = dy = 0.0
        for _ in range(hold):
            dx, dy = np.clip((dx + rng.normal(), dy + rng.normal()), -6, 6)
            s = 1 + rng.normal(0, 0.02)
            warp = np.array([[s, 0, (width - s * side) / 2 + dx],
                             [0, s, (height - s * side) / 2 + dy]])
            inside = cv2.warpAffine(np.ones_like(big), warp, size, flags=cv2.INTER_NEAREST) > 0
            image = np.where(inside, cv2.warpAffine(big, warp, size), background)
            image = image * (1 + rng.normal(0, 0.02)) + rng.normal(0, 3, image.shape)
            yield image.clip(0, 255).astype(np.uint8)


def write_held_faces_video(path: Path, faces: np.ndarray, fps: int, hold: int, seed: int = 0,
                           size: tuple[int, int] = (320, 240), side: int = 132) -> Path:
    """Write :func:`held_face_frames` as an MJPG video of ``len(faces) * hold`` frames."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    try:
        for frame in held_face_frames(faces, hold, seed, size, side):
            writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    finally:
        writer.release()
    return path


def write_held_faces_y4m(path: Path, faces: np.ndarray, fps: int, hold: int, seed: int = 0,
                         size: tuple[int, int] = (640, 480), side: int = 220) -> Path:
    """The same as an uncompressed YUV4MPEG2 (4:2:0) file: what Chromium's fake camera plays
    (``--use-file-for-fake-video-capture``)."""
    width, height = size
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        chroma = np.full((height // 2) * (width // 2) * 2, 128, np.uint8).tobytes()
        for frame in held_face_frames(faces, hold, seed, size, side):
            out.write(b"FRAME\n" + frame.tobytes() + chroma)
    return path
