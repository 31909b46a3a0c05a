"""Face detection and alignment: from a photo or frame to model-ready face crops."""

from .align import align_face, similarity_transform
from .detect import DetectedFace, Detector, create_detector

__all__ = ["DetectedFace", "Detector", "align_face", "create_detector", "similarity_transform"]
