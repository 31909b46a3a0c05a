"""openfer: facial expression recognition — published methods, official data formats, inference.

    >>> import openfer
    >>> openfer.list_models("deep_emotion*")
    ['deep_emotion', 'deep_emotion_paper']
    >>> model = openfer.create_model("deep_emotion")      # untrained, published configuration
    >>> model.meta.classes[:2]
    ('anger', 'disgust')
"""

from .errors import DataFormatError, OpenferError, RecipeError
from .labels import Emotion
from .model_card import model_card
from .models.registry import create_model, list_models, load_model


def __getattr__(name: str):
    # Recognizer pulls in OpenCV; import it only when asked for.
    if name == "Recognizer":
        from .infer import Recognizer
        return Recognizer
    raise AttributeError(f"module 'openfer' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = ["Emotion", "Recognizer", "OpenferError", "DataFormatError", "RecipeError",
           "create_model", "list_models", "load_model", "model_card", "__version__"]
