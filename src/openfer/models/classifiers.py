"""Standard backbones registered as expression classifiers (ImageNet-style preprocessing).

``create_model("resnet18", classes=[...], pretrained="resnet18-f37072fd.pth")`` builds the
backbone with an expression head and, when ``pretrained`` is given, loads the checkpoint with
every key checked except the replaced head (:func:`openfer.models.pretrained.load_pretrained`).
``input_size`` sets the metadata's input size (the networks pool globally); ``mean`` / ``std``
replace ImageNet's normalisation (DACL's baselines use DACL's).
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from .backbones import densenet121, inception_v3, mobilenet_v2, resnet18, resnet34, resnet50
from .meta import ModelMeta
from .registry import register_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _register(name: str, builder: Callable[..., nn.Module], size: int, head: str, paper: str):
    meta = ModelMeta(name, input_size=(size, size), channels=3, mean=IMAGENET_MEAN,
                     std=IMAGENET_STD, alignment={"method": "box", "margin": 0.1, "square": True},
                     paper=paper)

    def build(num_classes: int = 7, classes=None, pretrained: str | None = None,
              input_size: int = size, sha256: str | None = None, mean=None, std=None,
              **kwargs) -> nn.Module:
        from .pretrained import load_pretrained

        count = len(classes) if classes else num_classes
        model = builder(num_classes=1000 if pretrained else count, **kwargs)
        if pretrained:
            model.pretrained_report = load_pretrained(model, pretrained, drop=(head,),
                                                      sha256=sha256)
            model.reset_classifier(count)
        model.meta = meta.replace(input_size=(input_size, input_size),
                                  mean=tuple(mean or meta.mean), std=tuple(std or meta.std))
        return model

    build.__doc__ = f"{name} expression classifier ({size}x{size} RGB, ImageNet normalisation)."
    register_model(name, meta)(build)


_register("resnet18", resnet18, 224, "fc", "He et al., Deep Residual Learning, CVPR 2016")
_register("resnet34", resnet34, 224, "fc", "He et al., Deep Residual Learning, CVPR 2016")
_register("resnet50", resnet50, 224, "fc", "He et al., Deep Residual Learning, CVPR 2016")
_register("densenet121", densenet121, 224, "classifier",
          "Huang et al., Densely Connected Convolutional Networks, CVPR 2017")
_register("inception_v3", inception_v3, 299, "fc",
          "Szegedy et al., Rethinking the Inception Architecture, CVPR 2016")
_register("mobilenet_v2", mobilenet_v2, 224, "classifier",
          "Sandler et al., MobileNetV2, CVPR 2018")
