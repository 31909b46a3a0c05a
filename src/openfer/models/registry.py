"""The model registry: ``create_model``, ``list_models`` and ``load_model``.

Architectures register a builder with :func:`register_model`; the builder's keyword defaults
build the published configuration, and its :class:`ModelMeta` describes the input it expects.
Trained weights are named ``architecture.tag`` (timm style) and resolved by :func:`load_model`.
"""

from __future__ import annotations

import fnmatch
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import OpenferError
from .meta import ModelMeta


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., torch.nn.Module]
    meta: ModelMeta
    description: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, meta: ModelMeta, description: str = ""):
    """Decorator: register ``builder(**kwargs) -> nn.Module`` under ``name``."""

    def decorate(builder: Callable[..., torch.nn.Module]):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        text = description or (inspect.getdoc(builder) or "").split("\n")[0]
        _REGISTRY[name] = ModelEntry(name, builder, meta, text)
        return builder

    return decorate


def _ensure_loaded() -> None:
    from . import (breg_next, classifiers, dacl, deep_emotion, emotion_gcn,  # noqa: F401
                   fernet, fmpn, multitask, vgg_fer)


def list_models(pattern: str = "*") -> list[str]:
    """Registered architecture names matching a shell-style pattern, sorted."""
    _ensure_loaded()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = ", ".join(list_models(f"*{name.split('_')[0]}*")[:5]) or ", ".join(list_models())
        raise OpenferError(f"unknown model {name!r}; registered models include: {close} "
                           "(see 'openfer models')") from None


def create_model(name: str, **kwargs: Any) -> torch.nn.Module:
    """Build a registered architecture, untrained; ``kwargs`` override the published defaults.

    The module gets a ``meta`` attribute (:class:`ModelMeta`) and ``openfer_config`` (the name
    and arguments that rebuild it), both stored in every checkpoint.
    """
    entry = get_entry(name)
    try:
        model = entry.builder(**kwargs)
    except TypeError as exc:
        params = ", ".join(p for p in inspect.signature(entry.builder).parameters)
        raise OpenferError(f"model {name!r}: {exc}; its arguments are: {params}") from None
    except ValueError as exc:           # a builder's check of an argument's value
        raise OpenferError(f"model {name!r}: {exc}") from None
    meta = getattr(model, "meta", None) or entry.meta
    num_classes = kwargs.get("num_classes")
    classes = kwargs.get("classes")
    if classes is not None:
        meta = meta.replace(classes=tuple(classes))
    elif num_classes is not None and num_classes != meta.num_classes:
        raise OpenferError(f"model {name!r}: num_classes={num_classes} needs a matching class "
                           f"list; pass classes=[...] ({num_classes} emotion names in index order)")
    model.meta = meta
    model.openfer_config = {"architecture": name, "kwargs": dict(kwargs)}
    return model


def _available(shipped: dict) -> str:
    return ", ".join(sorted(shipped)) or "none in this installation"


def load_model(name_or_path: str | Path, map_location: str | torch.device = "cpu"
               ) -> torch.nn.Module:
    """Load trained weights: a ``.safetensors`` file written by openfer, a training run's
    directory (its ``best.safetensors``), or a shipped name.

    Shipped weights live inside the package (``openfer/weights/*.safetensors``); ``default``
    names the default expression model. Every command that takes a model (``predict``, ``eval``,
    ``export``, ``card``, ``model.init``, ``distill.teachers``) resolves it here.
    """
    from ..checkpoint import load_weights

    return load_weights(weights_path(name_or_path), map_location=map_location)


def weights_path(name_or_path: str | Path) -> Path:
    """The weight file :func:`load_model` reads for ``name_or_path`` (not checked further)."""
    from ..checkpoint import shipped_weights

    path = Path(name_or_path)
    if path.is_dir():
        if not (path / "best.safetensors").is_file():
            raise OpenferError(f"{path} is a directory without best.safetensors: a model is a "
                               ".safetensors file, a training run's directory or a shipped name "
                               f"({_available(shipped_weights())})")
        return path / "best.safetensors"
    if path.suffix == ".safetensors" or path.exists():
        return path
    shipped = shipped_weights()
    available = _available(shipped)
    key = str(name_or_path)
    if key in shipped:
        return shipped[key]
    if key in list_models():
        raise OpenferError(f"{key!r} is an architecture without shipped weights (shipped: "
                           f"{available}); use openfer.create_model({key!r}) for an untrained "
                           "network, or pass the path of a .safetensors file you trained")
    raise OpenferError(f"{key}: no such model file, run directory or shipped weights (shipped: "
                       f"{available})")
