"""ONNX export and the onnxruntime backend.

``export_onnx`` writes a model whose input is the normalised face batch (B, C, H, W) and whose
output is the class logits; the openfer metadata (architecture, :class:`ModelMeta`) travels in
the ONNX file's ``metadata_props`` under ``openfer``, so an exported file is as self-describing as
a safetensors one. :class:`OnnxClassifier` runs such a file with onnxruntime and exposes the same
``meta``.

``quantize="int8"`` with ``calibration`` faces: static int8 (QDQ, per-channel weights, uint8
activations with percentile calibration on those faces) — on FERNet-M it keeps the top label on
99.3 % of FER2013 PublicTest faces and runs ~3x faster than fp32 on one CPU thread. The
classifier head (:func:`output_nodes`) stays in fp32, as in :mod:`openfer.models.quantize`:
quantised, the distilled FERNet-M's logits were rounded to a grid of 0.037 and 20.7 % of
PublicTest faces got tied class scores (none in fp32; 99.05 % of top labels kept either way).
Without calibration faces it falls back to dynamic quantisation (activations scaled per batch),
which keeps the top label on only ~97-98 % there. Weights are quantised to 7 bits (onnxruntime's
``reduce_range``): x86 CPUs without VNNI (AVX2-only, e.g. the AMD EPYC this was measured on)
multiply uint8 by int8 with ``vpmaddubsw``, whose 16-bit sums saturate with full 8-bit weights;
there the distilled FERNet-M kept the top label on 88.1 % of PublicTest faces with 8-bit weights
and keeps it on 99.0 % with 7-bit ones, so an exported file is safe on any x86 CPU.

A multi-task model's extra heads whose labels training saw (``meta.heads_trained``: Emotion-GCN's
valence and arousal, the multi-task network's age, gender, race) are further outputs named after
them (a categorical head's logits, a regression head's value), listed in the metadata's
``heads``; :class:`OnnxClassifier` and ``openfer predict --backend onnx`` read them.

Opset 20 is used because Deep-Emotion's spatial transformer needs ``AffineGrid`` (opset 20).
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .errors import OpenferError
from .fileio import atomic_write_with
from .process_state import catching_warnings

OPSET = 20


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise OpenferError(f"ONNX support needs the [onnx] extra ({module} is missing): "
                           "pip install 'openfer[onnx]'") from None


def export_onnx(model: torch.nn.Module, output: str | Path, *, dynamic_batch: bool = True,
                quantize: str | None = None, calibration=None, calibration_size: int = 2048,
                opset: int = OPSET) -> Path:
    """Export ``model`` (with its ``meta``) to ONNX at ``output``, atomically.

    ``calibration``: faces for static int8 calibration — a :class:`FaceDataset` or a ``uint8``
    batch (N, C, H, W); ``calibration_size`` of them are drawn (fixed seed).
    """
    onnx = _require("onnx")
    if quantize not in (None, "int8"):
        raise OpenferError(f"--quantize {quantize!r}: only int8 is supported")
    from .evaluate import head_layout

    meta = model.meta
    model = model.eval().cpu()
    example = torch.zeros(1 if not dynamic_batch else 2, meta.channels, *meta.input_size)
    heads = head_layout(model, trained_only=True)
    header = {"architecture": getattr(model, "openfer_config", {}).get("architecture",
                                                                       meta.architecture),
              "meta": meta.to_dict(), "quantized": quantize,
              "heads": [[name, None if classes is None else list(classes)]
                        for name, classes in heads]}
    output = Path(output)
    names = ["logits", *(name for name, _ in heads)]
    traced = _WithHeads(model, [name for name, _ in heads]) if heads else model

    def write(path: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            plain = Path(tmp) / "model.onnx"
            axes = {name: {0: "batch"} for name in ["input", *names]} if dynamic_batch else None
            with catching_warnings():
                # Shapes are traced per export; the tracer's notes about them are expected.
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                # A strided slice (Emotion-GCN's graph) is exported as it is, unfolded.
                warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
                torch.onnx.export(traced, (example,), str(plain), input_names=["input"],
                                  output_names=names, dynamic_axes=axes,
                                  opset_version=opset, dynamo=False)
            if quantize == "int8":
                quantized = Path(tmp) / "int8.onnx"
                _quantize_int8(plain, quantized, meta, calibration, calibration_size)
                plain = quantized
            proto = onnx.load(str(plain))
            entry = proto.metadata_props.add()
            entry.key, entry.value = "openfer", json.dumps(header)
            onnx.save(proto, path)

    atomic_write_with(output, write)
    return output


def calibration_inputs(meta, calibration, size: int) -> np.ndarray:
    """``size`` faces of ``calibration`` (a :class:`FaceDataset` or a ``uint8`` batch), drawn
    with a fixed seed, as normalised float input (N, C, H, W)."""
    from .data.transforms import to_model_input

    images = calibration.images if hasattr(calibration, "images") else \
        torch.as_tensor(np.asarray(calibration))
    if not hasattr(calibration, "images") and hasattr(calibration, "__getitem__") \
            and not isinstance(calibration, (np.ndarray, torch.Tensor)):
        images = torch.stack([calibration[i][0] for i in range(len(calibration))])
    order = np.random.default_rng(0).permutation(len(images))[:size]
    return to_model_input(images[torch.as_tensor(order)], meta).numpy()


def _quantize_int8(source: Path, target: Path, meta, calibration, size: int) -> None:
    import logging

    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_dynamic, quantize_static)

    logging.getLogger().setLevel(logging.ERROR)     # onnxruntime's pre-processing advice
    if calibration is None:
        warnings.warn("int8 without calibration faces: dynamic quantisation, which can change "
                      "the top label on a few % of faces; pass calibration faces "
                      "(openfer export --calibration-data fer2013.csv ...)", stacklevel=3)
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=True)
        return
    inputs = calibration_inputs(meta, calibration, size)
    import onnx

    graph = onnx.load(str(source)).graph
    batch_dim = graph.input[0].type.tensor_type.shape.dim[0]
    step = batch_dim.dim_value or min(64, len(inputs))   # a fixed-batch export takes only that

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"input": inputs[i:i + step]}
                                 for i in range(0, len(inputs) - step + 1, step)])

        def get_next(self):
            return next(self.batches, None)

    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):       # calibration progress prints
        quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, reduce_range=True,   # see module doc
                        calibrate_method=CalibrationMethod.Percentile,
                        nodes_to_exclude=output_nodes(graph))


#: ONNX operators of a classifier head (a linear layer: ``Gemm``, or ``MatMul`` then ``Add``).
HEAD_OPS = ("Gemm", "MatMul", "Add")


def output_nodes(graph) -> list[str]:
    """The names of the linear-layer nodes that compute the outputs of an ONNX ``graph``
    (``onnx.load(path).graph``; its classifier head), walking back through ``Add`` to its
    ``MatMul``: kept in fp32 by int8 quantisation, so that the logits are not rounded to a
    calibrated grid (see the module doc)."""
    producer = {out: node for node in graph.node for out in node.output}
    found: list[str] = []
    pending = [producer[o.name] for o in graph.output if o.name in producer]
    while pending:
        node = pending.pop()
        if node.op_type not in HEAD_OPS or node.name in found:
            continue
        found.append(node.name)
        if node.op_type == "Add":
            pending += [producer[i] for i in node.input if i in producer]
    return found


class _WithHeads(torch.nn.Module):
    """The class logits and the named heads' outputs of one forward pass, as a tuple."""

    def __init__(self, model: torch.nn.Module, heads: list[str]):
        super().__init__()
        self.model, self.heads = model, heads

    def forward(self, x: torch.Tensor):
        from .evaluate import logits_and_heads

        logits, outputs = logits_and_heads(self.model, x)
        return (logits, *(outputs[name] for name in self.heads))


def read_onnx(path: str | Path):
    """``(header, model)`` of an exported file: the ``openfer`` metadata :func:`export_onnx`
    wrote (architecture, meta, quantized) and the loaded ONNX model."""
    onnx = _require("onnx")
    path = Path(path)
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, OSError, ...
        raise OpenferError(f"{path}: not a readable ONNX file ({exc})") from None
    return _openfer_header({e.key: e.value for e in proto.metadata_props}, path), proto


def _openfer_header(props: dict[str, str], path: Path) -> dict:
    """The ``openfer`` entry of an ONNX file's metadata (what :func:`export_onnx` wrote)."""
    if "openfer" not in props:
        raise OpenferError(f"{path} has no openfer metadata; export it with 'openfer export'")
    try:
        return json.loads(props["openfer"])
    except ValueError as exc:
        raise OpenferError(f"{path}: its openfer metadata is not JSON ({exc}); export it again "
                           "with 'openfer export'") from None


class OnnxClassifier:
    """An exported openfer model run by onnxruntime; call it on a normalised float batch."""

    def __init__(self, path: str | Path, threads: int | None = None):
        ort = _require("onnxruntime")
        from .models.meta import ModelMeta

        path = Path(path)
        if not path.is_file():
            raise OpenferError(f"ONNX model {path} not found")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise OpenferError(f"{path}: onnxruntime cannot load it ({exc})") from None
        header = _openfer_header(self.session.get_modelmeta().custom_metadata_map, path)
        self.meta = ModelMeta.from_dict(header["meta"])
        self.quantized = header.get("quantized")
        #: The extra heads it outputs after the logits: ``(name, class names or None)``.
        self.heads = [(name, None if classes is None else tuple(classes))
                      for name, classes in header.get("heads") or []]
        self.path = path

    def __call__(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        """The class logits of a normalised float batch."""
        return self.outputs(x)[0]

    def outputs(self, x: np.ndarray | torch.Tensor) -> list[np.ndarray]:
        """Every output: the class logits, then each of :attr:`heads`."""
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        return self.session.run(None, {"input": np.ascontiguousarray(x, np.float32)})
