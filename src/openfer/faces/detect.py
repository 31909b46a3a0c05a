"""Face detectors behind one interface: boxes, scores and five landmarks where available.

* ``haar``: OpenCV's bundled frontal-face cascade (Viola-Jones). Needs no download; no landmarks;
  the score is the cascade's final-stage weight (not a probability).
* ``yunet``: the YuNet ONNX model (OpenCV model zoo) through ``cv2.FaceDetectorYN``; boxes,
  five landmarks and a probability-like score. The weight file (230 kB, MIT) is found at an
  explicit path, ``$OPENFER_YUNET``, or in the openfer cache (``$OPENFER_HOME/weights/yunet.onnx``)
  and checked against its pinned SHA-256; :func:`fetch_yunet` downloads it into the cache.
* ``mtcnn``: MTCNN (:mod:`openfer.faces.mtcnn`) with facenet-pytorch's weight files; boxes, five
  landmarks and a probability.
* ``auto``: YuNet when its weights are available locally, else MTCNN when its weights are, else
  Haar (:func:`create_detector` records the choice in ``detector.name``).

Landmarks follow the ArcFace/insightface order in image coordinates: the eye on the image's left,
the eye on the image's right, nose tip, left mouth corner, right mouth corner.

Large images are downscaled for detection (``max_side``) and boxes mapped back, so memory and
time stay bounded.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import OpenferError
from ..hub import download, openfer_home

YUNET_SHA256 = "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"
#: The smallest face side (pixels, in the image as detected, at most ``max_side`` long) that
#: the detectors look for by default: the classifiers read 48x48 or larger faces, and MTCNN's
#: image pyramid starts at 12 / MIN_FACE, so 40 (facenet-pytorch's default is 20) halves its work
#: (group photo panning at 640x443: 8.4 -> 15.0 frames/s end to end, 283 -> 284 faces found).
MIN_FACE = 40

YUNET_URL = ("https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
             "face_detection_yunet_2023mar.onnx")


@dataclass
class DetectedFace:
    """One detected face: ``box`` (x1, y1, x2, y2) in image pixels, ``landmarks`` (5, 2) or None."""

    box: tuple[float, float, float, float]
    score: float | None = None
    landmarks: np.ndarray | None = None

    def scaled(self, factor: float) -> "DetectedFace":
        landmarks = None if self.landmarks is None else self.landmarks * factor
        return DetectedFace(tuple(v * factor for v in self.box), self.score, landmarks)


class Detector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """Faces in an RGB ``uint8`` (H, W, 3) image, best first."""


def _cv2():
    try:
        import cv2
    except ImportError:
        raise OpenferError("face detection needs OpenCV: pip install 'opencv-python-headless<5'") \
            from None
    return cv2


def _downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``(image, factor)``: the image shrunk so its long side is ``max_side`` at most."""
    height, width = image.shape[:2]
    factor = max(height, width) / max_side
    if factor <= 1:
        return image, 1.0
    cv2 = _cv2()
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), factor


class HaarDetector:
    """OpenCV's Haar cascade (``haarcascade_frontalface_default.xml``), bundled with OpenCV 4."""

    name = "haar"

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5,
                 min_size: int = MIN_FACE, max_side: int = 1600):
        cv2 = _cv2()
        path = Path(getattr(cv2, "data", None).haarcascades if hasattr(cv2, "data") else "") \
            / "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise OpenferError(f"OpenCV's Haar cascade is missing ({path}); OpenCV 5 wheels no "
                               "longer bundle it: pip install 'opencv-python-headless<5'")
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors
        self.min_size, self.max_side = min_size, max_side

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        cv2 = _cv2()
        small, factor = _downscale(image, self.max_side)
        gray = small if small.ndim == 2 else cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        gray = cv2.equalizeHist(gray)
        boxes, _, weights = self.cascade.detectMultiScale3(
            gray, self.scale_factor, self.min_neighbors, minSize=(self.min_size, self.min_size),
            outputRejectLevels=True)
        faces = [DetectedFace((float(x), float(y), float(x + w), float(y + h)), float(s))
                 for (x, y, w, h), s in zip(np.asarray(boxes).reshape(-1, 4),
                                            np.asarray(weights).reshape(-1))]
        faces.sort(key=lambda f: -(f.score or 0))
        return [f.scaled(factor) for f in faces]


def find_yunet(path: str | Path | None = None) -> Path | None:
    """The YuNet weight file: ``path``, ``$OPENFER_YUNET`` or the cache; ``None`` if absent."""
    for candidate in (path, os.environ.get("OPENFER_YUNET"),
                      openfer_home() / "weights" / "yunet.onnx"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _check_sha256(path: Path, expected: str) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise OpenferError(f"{path}: SHA-256 {digest[:12]}... does not match YuNet's pinned "
                           f"{expected[:12]}...; the file is corrupt or another model")


def fetch_yunet(destination: Path | None = None, url: str = YUNET_URL) -> Path:
    """Download YuNet into the cache (checksum-verified, atomic). Needs network access."""
    return download(url, destination or openfer_home() / "weights" / "yunet.onnx", YUNET_SHA256,
                    timeout=60)


class YuNetDetector:
    """YuNet (Wu et al., 2023) through ``cv2.FaceDetectorYN``: boxes, 5 landmarks, scores."""

    name = "yunet"

    def __init__(self, weights: str | Path | None = None, score_threshold: float = 0.6,
                 nms_threshold: float = 0.3, max_side: int = 1600, verify: bool = True,
                 min_face: int = 0):
        found = find_yunet(weights)
        if found is None:
            raise OpenferError(
                "YuNet weights not found: download face_detection_yunet_2023mar.onnx from the "
                f"OpenCV model zoo ({YUNET_URL}) and save it as "
                f"{openfer_home() / 'weights' / 'yunet.onnx'}, or set OPENFER_YUNET to its path "
                "(or use --detector haar, which needs no download)")
        if verify:
            _check_sha256(found, YUNET_SHA256)
        self.path = found
        self.score_threshold, self.nms_threshold, self.max_side = (score_threshold,
                                                                   nms_threshold, max_side)
        self.min_face = min_face            # YuNet's cost does not depend on it: a filter
        self._detector = None

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        cv2 = _cv2()
        small, factor = _downscale(image, self.max_side)
        height, width = small.shape[:2]
        if self._detector is None:
            self._detector = cv2.FaceDetectorYN.create(str(self.path), "", (width, height),
                                                       self.score_threshold, self.nms_threshold,
                                                       5000)
        self._detector.setInputSize((width, height))
        bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR) if small.ndim == 3 else \
            cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
        _, rows = self._detector.detect(bgr)
        faces = []
        for row in (rows if rows is not None else []):
            x, y, w, h = (float(v) for v in row[:4])
            if max(w, h) < self.min_face:
                continue
            faces.append(DetectedFace((x, y, x + w, y + h), float(row[14]),
                                      row[4:14].reshape(5, 2).astype(np.float64)))
        faces.sort(key=lambda f: -(f.score or 0))
        return [f.scaled(factor) for f in faces]


class WholeImage:
    """No detection: the whole image is one face (pre-cropped faces, ``--no-detect``)."""

    name = "none"

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        height, width = image.shape[:2]
        return [DetectedFace((0.0, 0.0, float(width), float(height)), None)]


def detector_options(detector: str, yunet: str | None, mtcnn: str | None,
                     min_face: int | None = None) -> dict:
    """The weight locations a detector choice uses (``--yunet FILE``, ``--mtcnn DIR``) and the
    smallest face it reports (``--min-face PX``; default :data:`MIN_FACE`)."""
    options = {}
    if yunet and detector in ("auto", "yunet"):
        options["weights"] = yunet
    if mtcnn and detector in ("auto", "mtcnn"):
        options["mtcnn"] = mtcnn
    if min_face is not None:
        options["min_face"] = min_face
    return options


def create_detector(name: str = "auto", **options) -> Detector:
    """``haar``, ``yunet``, ``mtcnn``, ``none`` or ``auto`` (YuNet when its weights are local,
    else MTCNN when its weights are, else Haar). ``options["weights"]`` is YuNet's file,
    ``options["mtcnn"]`` MTCNN's folder, ``options["min_face"]`` the smallest face side each
    detector reports (its own option's name); other options go to the detector."""
    name = name.lower()
    mtcnn = options.pop("mtcnn", None)
    min_face = options.pop("min_face", None)
    if name == "auto":
        if find_yunet(options.get("weights")):
            name = "yunet"
        else:
            from .mtcnn import find_mtcnn
            name = "mtcnn" if find_mtcnn(mtcnn) else "haar"
            options.pop("weights", None)
    if min_face is not None and name != "none":
        options[{"haar": "min_size", "mtcnn": "min_face_size"}.get(name, "min_face")] = min_face
    if name == "haar":
        return HaarDetector(**options)
    if name == "yunet":
        return YuNetDetector(**options)
    if name == "mtcnn":
        from .mtcnn import MTCNNDetector
        options.pop("weights", None)
        return MTCNNDetector(mtcnn, **options)
    if name in ("none", "no", "off"):
        return WholeImage()
    raise OpenferError(f"unknown face detector {name!r}; use auto, yunet, mtcnn, haar or none")
