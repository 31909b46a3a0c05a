"""Load pretrained weights into a model, key by key, from a local file or a checksummed cache.

``load_pretrained(model, source, drop=("fc",))`` accepts torchvision checkpoints and
face-recognition checkpoints in the common layouts: a bare state dict, ``{'state_dict': ...}``,
``{'model': ...}``, ``{'model_state_dict': ...}``, keys prefixed with ``module.`` (DataParallel)
and safetensors files. Every key is checked: a missing key, an unexpected key or a shape mismatch
is an error that lists them, unless the key belongs to a head the caller names in ``drop`` (the
classifier being replaced). Pickled checkpoints load with ``weights_only=True``.

``source`` may be a URL: the file is then taken from the cache (``$OPENFER_HOME/weights``), and
downloaded there only when ``download=True``; offline with no cached file, the error says which
file to fetch from where and where to put it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import torch

from ..errors import OpenferError
from .. import hub

_WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "module")


@dataclass
class LoadReport:
    """What happened to each key: loaded, dropped (named heads), or a problem."""

    loaded: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self, limit: int = 8) -> str:
        parts = []
        if self.missing:
            parts.append(f"missing from the checkpoint: {self.missing[:limit]}")
        if self.unexpected:
            parts.append(f"not in the model: {self.unexpected[:limit]}")
        if self.mismatched:
            parts.append("shape mismatch: " + ", ".join(
                f"{k} {tuple(a)} vs {tuple(b)}" for k, a, b in self.mismatched[:limit]))
        return "; ".join(parts) or f"all {len(self.loaded)} keys loaded"


def resolve_source(source: str | Path, sha256: str | None = None, download: bool = False,
                   cache_dir: Path | None = None) -> Path:
    """A local checkpoint path for ``source`` (a path, or a URL resolved through the cache)."""
    text = str(source)
    if "://" not in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise OpenferError(f"pretrained weights {path} not found")
        if sha256:
            _verify(path, sha256)
        return path
    cache = Path(cache_dir or hub.openfer_home() / "weights")
    path = cache / text.rstrip("/").split("/")[-1].split("?")[0]
    if not path.is_file():
        if not download:
            raise OpenferError(f"pretrained weights are not in the cache: download {text} and "
                               f"save it as {path} (or set OPENFER_HOME), then run again")
        hub.download(text, path, sha256)
    if sha256:
        _verify(path, sha256)
    return path


def _verify(path: Path, sha256: str) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(sha256.lower()):
        raise OpenferError(f"{path}: SHA-256 {digest[:16]}... does not match the expected "
                           f"{sha256[:16]}...; the file is corrupt or a different checkpoint")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file, unwrapped from the common container layouts."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickles that need code to load, corrupt files
            raise OpenferError(f"{path}: cannot load it safely as weights ({exc}); openfer "
                               "loads tensors only (torch.load weights_only=True)") from None
    for _ in range(3):
        if isinstance(state, dict) and not all(isinstance(v, torch.Tensor) for v in state.values()):
            inner = next((state[k] for k in _WRAPPERS if isinstance(state.get(k), dict)), None)
            if inner is None:
                break
            state = inner
    if not isinstance(state, dict):
        raise OpenferError(f"{path} does not hold a state dict (found {type(state).__name__})")
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if tensors and all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def load_pretrained(model: torch.nn.Module, source: str | Path, *, drop: Iterable[str] = (),
                    sha256: str | None = None, download: bool = False,
                    prefix: str = "") -> LoadReport:
    """Load ``source`` into ``model`` (or into ``model.<prefix>``), checking every key.

    ``drop``: key prefixes of heads to leave at their initialisation (e.g. ``("fc",)`` when the
    1,000-class ImageNet classifier is replaced by an expression head).
    """
    path = resolve_source(source, sha256, download)
    checkpoint = read_state_dict(path)
    target = model.get_submodule(prefix) if prefix else model
    expected = target.state_dict()
    drop = tuple(d.rstrip(".") for d in drop)

    def dropped(key: str) -> bool:
        return any(key == d or key.startswith(d + ".") for d in drop)

    report = LoadReport()
    usable = {}
    for key, tensor in checkpoint.items():
        if dropped(key):
            report.dropped.append(key)
        elif key not in expected:
            report.unexpected.append(key)
        elif tuple(tensor.shape) != tuple(expected[key].shape):
            report.mismatched.append((key, tuple(tensor.shape), tuple(expected[key].shape)))
        else:
            usable[key] = tensor
    mismatched = {key for key, _, _ in report.mismatched}
    report.missing = [k for k in expected if k not in usable and not dropped(k)
                      and k not in mismatched]
    if not report.ok:
        raise OpenferError(f"{path} does not fit {type(target).__name__}: "
                           f"{report.describe()} (name heads to replace with drop=...)")
    target.load_state_dict(usable, strict=False)
    report.loaded = sorted(usable)
    return report
