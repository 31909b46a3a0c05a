"""Backbones in plain torch with torchvision state-dict key names (no torchvision needed)."""

from .densenet import DenseNet, densenet121
from .inception import Inception3, inception_v3
from .mobilenet import MobileNetV2, mobilenet_v2
from .resnet import ResNet, resnet18, resnet34, resnet50

__all__ = ["DenseNet", "Inception3", "MobileNetV2", "ResNet", "densenet121", "inception_v3",
           "mobilenet_v2", "resnet18", "resnet34", "resnet50"]
