"""Model registry, model metadata and the architectures of the published methods."""

from .meta import ModelMeta
from .registry import create_model, list_models, load_model, register_model

__all__ = ["ModelMeta", "create_model", "list_models", "load_model", "register_model"]
