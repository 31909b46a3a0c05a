"""Recognise expressions in photos, folders, videos and camera streams.

    >>> from openfer import Recognizer
    >>> rec = Recognizer()                         # shipped default model, detector "auto"
    >>> [face.label for face in rec.predict("group.jpg")[0].faces]
    ['happiness', 'neutral', ...]
    >>> for frame in rec.predict_video("clip.mp4", every=5):
    ...     print(frame.frame, [(f.track_id, f.label) for f in frame.faces])

Pipeline: decode (bounded memory, EXIF orientation) -> detect (:mod:`openfer.faces.detect`) ->
align to the model's template (:mod:`openfer.faces.align`) -> classify faces in batches across
images and frames -> per-face results with box, landmarks, detector score, per-class
probabilities in the model's class names and the top label. A bad input never stops a batch: its
result carries ``error`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from .data.images import is_video, pil_to_array, read_image_bounded, to_channels
from .data.transforms import normalize, to_input_size, to_model_input
from .errors import DataFormatError, OpenferError
from .evaluate import class_logits, head_layout, logits_and_heads
from .faces.align import BOX_ALIGNMENT, align_face
from .faces.detect import DetectedFace, create_detector
from .tta import averaged, tta_mode


@dataclass
class FaceResult:
    """One face: where it is, what the detector and the model say."""

    box: list[float]
    probabilities: dict[str, float]
    label: str
    confidence: float
    detector_score: float | None = None
    landmarks: list[list[float]] | None = None
    track_id: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImageResult:
    """All faces of one image or video frame; ``error`` says why an input could not be read."""

    source: str
    faces: list[FaceResult] = field(default_factory=list)
    frame: int | None = None
    time: float | None = None
    width: int | None = None
    height: int | None = None
    detector: str | None = None
    error: str | None = None

    def records(self) -> list[dict[str, Any]]:
        """Flat records, one per face (or one saying there is no face, or the error)."""
        base = {"file": self.source, "frame": self.frame, "time": self.time}
        if self.error is not None:
            return [{**base, "face": None, "error": self.error}]
        if not self.faces:
            return [{**base, "face": None, "label": None, "note": "no face detected"}]
        return [{**base, "face": i, "track_id": f.track_id, "box": f.box,
                 "detector_score": f.detector_score, "landmarks": f.landmarks,
                 "label": f.label, "confidence": f.confidence, "scores": f.probabilities,
                 **f.extras}
                for i, f in enumerate(self.faces)]


def image_to_rgb(image, color: str = "rgb") -> np.ndarray:
    """An RGB ``uint8`` (H, W, 3) array from an array (``color`` rgb/bgr/gray) or PIL image."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return pil_to_array(image, 3)
    array = np.asarray(image)
    if array.dtype == np.uint16:
        array = (array / 257.0 + 0.5).astype(np.uint8)
    elif array.dtype.kind == "f":
        peak = 1.0 if np.nanmax(array) <= 1.0 else 255.0
        array = np.clip(np.nan_to_num(array) / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 1):
        return to_channels(array.reshape(array.shape[0], array.shape[1], 1), 3)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise OpenferError(f"an image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); "
                           f"got shape {array.shape}")
    array = array[:, :, :3]
    if color.lower() == "bgr":
        array = array[:, :, ::-1]
    elif color.lower() != "rgb":
        raise OpenferError(f"color must be 'rgb' or 'bgr', got {color!r}")
    return np.ascontiguousarray(array)


class FaceScorer(torch.nn.Module):
    """``uint8`` faces (B, C, H, W) at the model's input size -> class probabilities: the
    normalisation, the model and the softmax as one module, so that the fused inference graph
    (:mod:`openfer.models.fusion`) holds all of them (at batch 1 the small tensor operations
    around a model cost as much as its last layers).

    With ``heads`` (:func:`openfer.evaluate.head_layout`), the extra heads of a multi-task model
    follow the class probabilities in the same rows: a categorical head's probabilities, a
    regression head's value."""

    def __init__(self, model: torch.nn.Module, heads: list | tuple = ()):
        super().__init__()
        self.model, self.meta = model, model.meta
        self.head_names = tuple(name for name, _ in heads)
        self.categorical = tuple(classes is not None for _, classes in heads)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        x = normalize(faces.to(torch.float32) * (1 / 255.0), self.meta)    # as to_model_input
        weight = next(self.model.parameters(), None)
        x = x if weight is None else x.to(weight.dtype)
        if not self.head_names:
            return class_logits(self.model(x)).float().softmax(-1)
        logits, heads = logits_and_heads(self.model, x)
        return score_rows(logits, [heads[name] for name in self.head_names], self.categorical)


def score_rows(logits: torch.Tensor, heads: Sequence[torch.Tensor],
               categorical: Sequence[bool]) -> torch.Tensor:
    """Rows of class probabilities followed by each head's output: a categorical head's
    probabilities, a regression head's value (what :meth:`Recognizer.face_result` reads)."""
    return torch.cat([logits.float().softmax(-1)] + [
        head.float().softmax(-1) if is_categorical else head.float()
        for head, is_categorical in zip(heads, categorical)], 1)


class MeanProbabilities(torch.nn.Module):
    """An ensemble's class probabilities from members that each output their own (fused
    :class:`FaceScorer` graphs, each in its own precision: :func:`openfer.models.fusion.
    fuse_members`): their mean, as :class:`openfer.models.ensemble.Ensemble` averages; with
    the members' shared heads (:func:`shared_heads`) the mean of their values and of their
    categorical probabilities too."""

    def __init__(self, members: list[torch.nn.Module], meta):
        super().__init__()
        self.members, self.meta = torch.nn.ModuleList(members), meta

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(faces) for member in self.members]).mean(0)


def shared_heads(members) -> list[tuple[str, tuple[str, ...] | None]]:
    """The trained heads (:func:`openfer.evaluate.head_layout`) every member of an ensemble
    has, in the same order with the same classes: what the ensemble averages and outputs; none
    where the members' heads differ."""
    layouts = [head_layout(member, trained_only=True) for member in members]
    return layouts[0] if all(layout == layouts[0] for layout in layouts) else []


class Recognizer:
    """Detect, align and classify faces with one model (or an ensemble).

    ``model``: a shipped name (``default``), a ``.safetensors`` file, an ``.onnx`` file, a model
    object with ``meta``, or a list of names and files: their ensemble (the mean of their
    probabilities, :mod:`openfer.models.ensemble`; members must read the same input; heads that
    every member has, e.g. valence and arousal, averaged too).
    ``detector``: ``auto``, ``yunet``, ``mtcnn``, ``haar`` or ``none`` (each input is one
    pre-cropped face). ``backend``: ``torch`` or ``onnx`` (onnxruntime; a torch model
    is exported on the fly). ``tta``: test-time augmentation, ``"flip"`` (or True: average with
    the mirrored face) or ``"shifts"`` (18 views; :mod:`openfer.tta`). ``threads``: CPU
    threads for inference (onnxruntime session; for torch, ``torch.set_num_threads``).
    ``precision`` (torch backend): ``fp32``, ``bf16``, ``int8`` (a model whose metadata records
    an int8 calibration, :mod:`openfer.models.quantize`) or ``auto``: int8 where oneDNN's int8
    kernels keep the answers (any x86 CPU with AVX2, for 7-bit weights), else bf16 on CPUs with
    AMX-BF16 or AVX512-BF16, each for a model whose metadata
    records that precision's check against fp32 (``scripts/check_precision.py``); fp32
    otherwise (:func:`openfer.models.fusion.auto_precision`); an ensemble's members each as they
    would run alone (:func:`openfer.models.fusion.fuse_members`). ``self.precision`` says which
    was chosen (``int8+bf16``: an ensemble's members differ).
    The torch backend runs normalisation, model and softmax as one traced graph on oneDNN Graph
    (:mod:`openfer.models.fusion`; eagerly where the model cannot be traced, and on GPUs).
    """

    def __init__(self, model: Any = "default", detector: str = "auto", device: str = "auto",
                 backend: str = "torch", batch_size: int = 64, tta: bool | str = False,
                 detector_options: dict | None = None, threads: int | None = None,
                 precision: str = "auto"):
        from .models.ensemble import Ensemble
        from .models.fusion import (check_precision, for_precision, fuse_for_inference,
                                    fuse_members)
        from .models.registry import load_model

        if threads and backend == "torch":
            torch.set_num_threads(threads)   # process-wide, as torch threads are

        if backend not in ("torch", "onnx"):
            raise OpenferError(f"backend must be 'torch' or 'onnx', got {backend!r}")
        check_precision(precision)               # before the backend is chosen
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" \
            else device
        if precision in ("bf16", "int8") and backend == "onnx":
            raise OpenferError(f"precision {precision!r} is for the torch backend; for a faster "
                               "ONNX model export an int8 one (openfer export --quantize int8)")
        self.backend, self.batch_size = backend, max(1, int(batch_size))
        self.tta = tta_mode(tta)
        self.precision: str | None = None            # ONNX: the file's own arithmetic
        self.heads: list[tuple[str, tuple[str, ...] | None]] = []   # a multi-task model's
        if isinstance(model, (list, tuple)) and len(model) == 1:
            model = model[0]                             # one model, not an ensemble of one
        if isinstance(model, (str, Path)) and str(model).endswith(".onnx"):
            from .export import OnnxClassifier
            self.model = OnnxClassifier(model, threads=threads)
            self.heads = list(self.model.heads)
            self.backend = "onnx"
        else:
            if isinstance(model, (list, tuple)):
                if any(str(m).endswith(".onnx") for m in model):
                    raise OpenferError("an ensemble is built from torch models (.safetensors "
                                       "files, run directories, shipped names), not .onnx files")
                from .models.ensemble import load_ensemble
                model = load_ensemble(list(model))
            torch_model = load_model(model) if isinstance(model, (str, Path)) else model
            if backend == "onnx":
                self.model = _onnx_from_torch(torch_model, threads)
                self.heads = list(self.model.heads)
            elif isinstance(torch_model, Ensemble):
                self.heads = shared_heads(torch_model.members)
                members, self.precision = fuse_members(
                    torch_model, precision, self.device,
                    wrap=lambda member: FaceScorer(member, self.heads))
                self.model = MeanProbabilities(members, torch_model.meta).to(self.device)
            else:
                self.heads = head_layout(torch_model, trained_only=True)
                torch_model, precision = for_precision(torch_model, precision, self.device)
                self.precision = precision
                self.model = fuse_for_inference(FaceScorer(torch_model, self.heads), precision)
                self.model.to(self.device)
        self.meta = self.model.meta
        # faces already at the input size need no resize or crop (unless the model crops)
        self._input_shape = (self.meta.channels, *self.meta.input_size) \
            if tuple(self.meta.load_size) == tuple(self.meta.input_size) else None
        self.detector = create_detector(detector, **(detector_options or {}))
        alignment = self.meta.alignment
        self.alignment = alignment if isinstance(alignment, dict) else BOX_ALIGNMENT

    # -- classification ---------------------------------------------------------------------
    def classify(self, faces: np.ndarray) -> np.ndarray:
        """Probabilities (N, classes) for aligned faces ``uint8`` (N, H, W, C); faces of another
        size are resized to the model's load size first (float faces are taken as in [0, 1])."""
        return self.score(faces)[:, :len(self.meta.classes)]

    def score(self, faces: np.ndarray) -> np.ndarray:
        """:meth:`classify`'s probabilities followed, for a multi-task model, by its extra heads'
        outputs in :attr:`heads` order (what :meth:`face_result` reads)."""
        if len(faces) == 0:
            width = len(self.meta.classes) + sum(1 if c is None else len(c)
                                                 for _, c in self.heads)
            return np.zeros((0, width), np.float32)
        if len(faces) <= self.batch_size:               # one batch: no copies, no concatenation
            return self._classify_batch(faces)
        return np.concatenate([self._classify_batch(faces[start:start + self.batch_size])
                               for start in range(0, len(faces), self.batch_size)])

    def _classify_batch(self, faces: np.ndarray) -> np.ndarray:
        chunk = torch.from_numpy(np.ascontiguousarray(faces)).permute(0, 3, 1, 2)
        if self.backend == "onnx":
            x = to_model_input(chunk, self.meta)
        elif chunk.dtype != torch.uint8:                 # floats in [0, 1]: their uint8 image
            x = to_input_size((chunk.float() * 255).round_().clamp_(0, 255).byte(), self.meta)
        elif chunk.shape[1:] == self._input_shape:       # the scorer normalises, in the graph
            x = chunk
        else:
            x = to_input_size(chunk, self.meta)
        return averaged(self._probabilities, x, self.tta)

    def _probabilities(self, x: torch.Tensor) -> np.ndarray:
        if self.backend == "onnx":
            logits, *heads = (torch.from_numpy(out) for out in self.model.outputs(x.numpy()))
            return score_rows(logits, heads[:len(self.heads)],
                              [classes is not None for _, classes in self.heads]).numpy()
        with torch.inference_mode():
            return self.model(x.to(self.device)).cpu().numpy()

    def crop(self, image: np.ndarray, face: DetectedFace) -> np.ndarray:
        """The aligned face at the model's load size (input size / crop fraction), with the
        model's channels; :meth:`classify` centre-crops it to the input size."""
        aligned = align_face(image, face.box, face.landmarks, self.alignment,
                             tuple(self.meta.load_size))
        return to_channels(aligned, self.meta.channels)

    # -- images -------------------------------------------------------------------------------
    def predict(self, images, color: str = "rgb") -> list[ImageResult]:
        """Results for one image or a list: paths, arrays (``color`` rgb/bgr) or PIL images."""
        items = list(images) if isinstance(images, (list, tuple)) else [images]
        return list(self.iter_predict(items, color=color))

    def iter_predict(self, items: Iterable, color: str = "rgb") -> Iterator[ImageResult]:
        """Lazily predict many images, batching faces across them; yields in input order."""
        batch: list[tuple[ImageResult, list[tuple[DetectedFace, np.ndarray]], float]] = []
        waiting = 0
        for item in items:
            result, detections, factor = self._detect_one(item, color)
            batch.append((result, detections, factor))
            waiting += len(detections)
            if waiting >= self.batch_size:
                yield from self._finish(batch)
                batch, waiting = [], 0
        yield from self._finish(batch)

    def _detect_one(self, item, color: str):
        source = str(item) if isinstance(item, (str, Path)) else f"<{type(item).__name__}>"
        try:
            if isinstance(item, (str, Path)):
                image, factor = read_image_bounded(item)
            else:
                image, factor = image_to_rgb(item, color), 1.0
        except (DataFormatError, OpenferError) as exc:
            return ImageResult(source, error=str(exc)), [], 1.0
        detections = self.detector.detect(image)
        height, width = image.shape[:2]
        result = ImageResult(source, width=round(width * factor), height=round(height * factor),
                             detector=self.detector.name)
        return result, [(d, self.crop(image, d)) for d in detections], factor

    def _finish(self, batch) -> Iterator[ImageResult]:
        crops = [crop for _, detections, _ in batch for _, crop in detections]
        probs = self.score(np.stack(crops)) if crops else np.zeros((0, 1))
        index = 0
        for result, detections, factor in batch:
            for detection, _ in detections:
                result.faces.append(self.face_result(detection.scaled(factor), probs[index]))
                index += 1
            yield result

    def face_result(self, detection: DetectedFace, scores: np.ndarray) -> FaceResult:
        """A face's result from its row of :meth:`score` (or of :meth:`classify`): a multi-task
        model's heads go into ``extras``: ``valence`` / ``arousal`` as values, a categorical head
        as its top class (``age``: ``"20-39"``) and its probabilities (``age_scores``)."""
        classes = self.meta.classes
        probs = scores[:len(classes)]
        top = int(np.argmax(probs))
        extras: dict[str, Any] = {}
        start = len(classes)
        for name, head_classes in self.heads if len(scores) > len(classes) else ():
            if head_classes is None:
                extras[name] = round(float(scores[start]), 4)
                start += 1
                continue
            head = scores[start:start + len(head_classes)]
            extras[name] = head_classes[int(np.argmax(head))]
            extras[f"{name}_scores"] = {c: round(float(p), 5) for c, p in zip(head_classes, head)}
            start += len(head_classes)
        return FaceResult(
            box=[round(float(v), 1) for v in detection.box],
            probabilities={c: round(float(p), 5) for c, p in zip(classes, probs)},
            label=classes[top], confidence=round(float(probs[top]), 5),
            detector_score=None if detection.score is None else round(detection.score, 4),
            landmarks=None if detection.landmarks is None
            else [[round(float(x), 1), round(float(y), 1)] for x, y in detection.landmarks],
            extras=extras)

    # -- video --------------------------------------------------------------------------------
    def predict_video(self, source: str | Path | int, every: int = 1,
                      max_frames: int | None = None, track: bool = True,
                      with_frames: bool = False, smooth: float = 0.0,
                      live: bool | None = None) -> Iterator[ImageResult]:
        """Per-frame results of a video file, a stream URL (``rtsp://``, ``http://``: what
        OpenCV's FFmpeg reads; a password in it is never shown) or a camera index, every
        ``every``-th frame.

        Faces carry ``track_id``: the same person keeps the same id across frames (IoU
        tracking; also after up to a second unseen, :data:`openfer.video.TRACK_MEMORY_S`).
        ``smooth`` > 0 averages each track's probabilities over time with that time
        constant in seconds (:class:`openfer.smoothing.TrackSmoother`; the frame's own scores
        stay in ``extras["frame_scores"]``): time is the frame's position in a file, the clock
        for a ``live`` source (by default a camera index) and for any source that gives no frame
        rate. Unreadable sources raise :class:`OpenferError`. ``with_frames=True`` yields
        ``(result, rgb_frame)`` pairs (for drawing). ``self.last_fps`` holds the source's rate.
        """
        from .video import VideoTracks, open_video, read_frames

        capture, name, fps = open_video(source)
        try:
            tracks = VideoTracks(name, fps, track=track, smooth=smooth, every=every,
                                 camera=isinstance(source, int) if live is None else live)
            self.last_fps = fps
            decoded = 0
            for index, rgb in read_frames(capture, every, max_frames):
                decoded += 1
                result = tracks.place(next(self.iter_predict([rgb])), index)
                yield (result, rgb) if with_frames else result
            if decoded == 0:
                raise OpenferError(f"{name}: no frame could be decoded (empty or corrupt video)")
        finally:
            capture.release()


def _onnx_from_torch(model: torch.nn.Module, threads: int | None = None):
    """Export a torch model to a temporary ONNX file and load it with onnxruntime."""
    import os
    import tempfile

    from .export import OnnxClassifier, export_onnx

    handle, path = tempfile.mkstemp(suffix=".onnx")
    os.close(handle)
    try:
        export_onnx(model, path)
        return OnnxClassifier(path, threads=threads)
    finally:
        os.unlink(path)


def collect_inputs(paths: Sequence[str | Path], recursive: bool = False) -> list[Path]:
    """Expand folders into their image and video files (sorted); files are kept as given."""
    from .data.images import is_image_file

    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            pattern = path.rglob("*") if recursive else path.iterdir()
            out.extend(sorted(p for p in pattern if p.is_file() and not p.name.startswith(".")
                              and (is_image_file(p) or is_video(p))))
        else:
            out.append(path)
    return out
