"""Model weight files: safetensors state dicts with the model's metadata inside.

A weight file is a plain ``.safetensors`` file (never a pickle): the tensors of the model's state
dict, and in the header's metadata the key ``openfer`` holding JSON with the architecture name,
the builder arguments, :class:`~openfer.models.meta.ModelMeta` and a SHA-256 of the tensor data.
Files are written atomically.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from .errors import OpenferError
from .fileio import atomic_write_with

FORMAT_VERSION = 1
_PACKAGE_WEIGHTS = Path(__file__).parent / "weights"
#: The shipped weights that ``load_model("default")`` and ``openfer predict`` use.
DEFAULT_MODEL = "fernet_m_distilled.fer2013"


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors' names, dtypes, shapes and bytes, in key order."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
                      if tensor.numel() else b"")
    return digest.hexdigest()


def save_weights(model: torch.nn.Module, path: str | Path, **meta_updates: Any) -> Path:
    """Write ``model``'s weights and metadata to ``path`` (atomically).

    ``meta_updates`` amend the stored :class:`ModelMeta` (e.g. ``metrics=...``).
    """
    config = getattr(model, "openfer_config", None)
    meta = getattr(model, "meta", None)
    if config is None or meta is None:
        raise ValueError("save_weights needs a model built by openfer.create_model")
    if meta_updates:
        meta = meta.replace(**meta_updates)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    header = {"format_version": FORMAT_VERSION, "architecture": config["architecture"],
              "kwargs": config["kwargs"], "meta": meta.to_dict(), "sha256": state_digest(state)}
    path = Path(path)
    atomic_write_with(path, lambda tmp: save_file(state, tmp,
                                                  metadata={"openfer": json.dumps(header)}))
    return path


def read_header(path: str | Path) -> dict[str, Any]:
    """The ``openfer`` metadata of a weight file, without loading the tensors."""
    path = Path(path)
    if not path.is_file():
        raise OpenferError(f"model file {path} not found")
    if path.suffix == ".onnx":
        raise OpenferError(f"{path} is an ONNX export: openfer predict, serve and bench run it "
                           "with --backend onnx (and openfer card reads it); evaluation, "
                           "training and export take the .safetensors weights it came from")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise OpenferError(f"{path} is not a readable safetensors file ({exc}); openfer loads "
                           "only .safetensors weights it wrote (no pickles)") from None
    if "openfer" not in metadata:
        raise OpenferError(f"{path} has no openfer metadata (architecture, classes); it was not "
                           "written by openfer. Load raw state dicts into "
                           "openfer.create_model(...) yourself")
    try:
        header = json.loads(metadata["openfer"])
    except json.JSONDecodeError as exc:
        raise OpenferError(f"{path}: openfer metadata is not valid JSON ({exc})") from None
    if header.get("format_version", 0) > FORMAT_VERSION:
        raise OpenferError(f"{path} was written by a newer openfer (format "
                           f"{header['format_version']}); upgrade openfer to load it")
    return header


def load_weights(path: str | Path, map_location: str | torch.device = "cpu",
                 verify: bool = True) -> torch.nn.Module:
    """Rebuild the model a weight file describes and load its tensors (``strict``)."""
    from .models.meta import ModelMeta
    from .models.registry import create_model

    path = Path(path)
    header = read_header(path)
    try:
        state = load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as exc:
        raise OpenferError(f"{path}: cannot read the weights ({exc})") from None
    if verify and header.get("sha256") and state_digest(state) != header["sha256"]:
        raise OpenferError(f"{path}: the weights do not match their checksum; the file is "
                           "corrupt, download or train it again")
    try:
        model = create_model(header["architecture"], **(header.get("kwargs") or {}))
    except OpenferError as exc:
        raise OpenferError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise OpenferError(f"{path}: its metadata does not describe a model openfer can build "
                           f"({type(exc).__name__}: {exc}); the file is corrupt or from another "
                           "openfer") from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:                           # a tensor of another shape
        missing, unexpected = [str(exc).splitlines()[-1].strip()], []
    if missing or unexpected:
        raise OpenferError(f"{path}: weights do not fit {header['architecture']} (missing "
                           f"{missing[:5]}, unexpected {unexpected[:5]})")
    try:
        model.meta = ModelMeta.from_dict(header["meta"])
    except (KeyError, TypeError, ValueError) as exc:
        raise OpenferError(f"{path}: its metadata is incomplete or malformed "
                           f"({type(exc).__name__}: {exc})") from None
    return model.eval()


def shipped_weights() -> dict[str, Path]:
    """Weights that ship inside the package, by name (file stem; ``default`` if present)."""
    if not _PACKAGE_WEIGHTS.is_dir():
        return {}
    found = {p.stem: p for p in sorted(_PACKAGE_WEIGHTS.glob("*.safetensors"))}
    if DEFAULT_MODEL in found:
        found["default"] = found[DEFAULT_MODEL]
    return found
