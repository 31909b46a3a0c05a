"""ONNX export and the onnxruntime backend.

``export_onnx`` writes a model whose input is the normalised face batch (B, C, H, W) and whose
output is the class logits; the openfer metadata (architecture, :class:`ModelMeta`) travels in
the ONNX file's ``metadata_props`` under ``openfer``, so an exported file is as self-describing as
a safetensors one. ``quantize="int8"`` applies onnxruntime's dynamic int8 quantisation of
weights (MatMul/Gemm, and convolutions). :class:`OnnxClassifier` runs such a file with
onnxruntime and exposes the same ``meta``.

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

OPSET = 20


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise OpenferError(f"ONNX support needs the [onnx] extra ({module} is missing): "
                           "pip install 'openfer[onnx]'") from None


def export_onnx(model: torch.nn.Module, output: str | Path, *, dynamic_batch: bool = True,
                quantize: str | None = None, opset: int = OPSET) -> Path:
    """Export ``model`` (with its ``meta``) to ONNX at ``output``, atomically."""
    onnx = _require("onnx")
    if quantize not in (None, "int8"):
        raise OpenferError(f"--quantize {quantize!r}: only int8 is supported")
    meta = model.meta
    model = model.eval().cpu()
    example = torch.zeros(1 if not dynamic_batch else 2, meta.channels, *meta.input_size)
    header = {"architecture": getattr(model, "openfer_config", {}).get("architecture",
                                                                       meta.architecture),
              "meta": meta.to_dict(), "quantized": quantize}
    output = Path(output)

    def write(path: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            plain = Path(tmp) / "model.onnx"
            axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
            with warnings.catch_warnings():
                # Shapes are traced per export; the tracer's notes about them are expected.
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                torch.onnx.export(model, (example,), str(plain), input_names=["input"],
                                  output_names=["logits"], dynamic_axes=axes,
                                  opset_version=opset, dynamo=False)
            if quantize == "int8":
                from onnxruntime.quantization import QuantType, quantize_dynamic
                quantized = Path(tmp) / "int8.onnx"
                quantize_dynamic(str(plain), str(quantized), weight_type=QuantType.QInt8)
                plain = quantized
            proto = onnx.load(str(plain))
            entry = proto.metadata_props.add()
            entry.key, entry.value = "openfer", json.dumps(header)
            onnx.save(proto, path)

    atomic_write_with(output, write)
    return output


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
        props = self.session.get_modelmeta().custom_metadata_map
        if "openfer" not in props:
            raise OpenferError(f"{path} has no openfer metadata; export it with 'openfer export'")
        header = json.loads(props["openfer"])
        self.meta = ModelMeta.from_dict(header["meta"])
        self.quantized = header.get("quantized")
        self.path = path

    def __call__(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        return self.session.run(None, {"input": np.ascontiguousarray(x, np.float32)})[0]
