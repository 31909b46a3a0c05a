"""The VGG variant of Khaireddin and Chen (2021), the best published single network on FER2013.

Y. Khaireddin and Z. Chen, "Facial Emotion Recognition: State of the Art Performance on
FER2013", arXiv 2105.03588 (2021): 73.28 % on FER2013 without extra training data. Built as the
authors' public code builds it (``models/vgg.py`` of github.com/usef-kh/fer): four stages of two
3x3 convolutions (64, 128, 256, 512 channels, with bias), each followed by batch-norm and ReLU,
a 2x2 max-pool after every stage, then two fully connected layers of 4,096 units (dropout 0.2,
then ReLU) and a linear classifier; 40x40 gray crops in, 512 x 2 x 2 features (about 25 M of
its 30 M parameters are in the fully connected layers).

Ten-crop testing is part of the network here, as in the paper's protocol: in evaluation mode the
network takes the whole 48x48 face and returns the mean of the logits of its ten 40x40 crops
(four corners and the centre, of the face and of its mirror image, torchvision's ``TenCrop``
order), as the authors' ``evaluate`` averages them. In training mode it takes the 40x40 crops
themselves, which ``augment.ten_crop`` makes from each augmented face (recipe
``vgg_fer2013``). So ``openfer predict``, ``eval``, ONNX and the fused CPU graph all run the
paper's test protocol without knowing of it, at ten times the work of one crop.

The order conv, batch-norm, ReLU is the code's (the paper's text lists ReLU before
batch-norm), as are its weights' initialisation (PyTorch's defaults). Departs from the code in
the input's normalisation: ``(pixel / 255 - 0.5) / 0.25``, as openfer's FERNets, where the code
feeds ``pixel / 255``. The first convolution is followed by batch-norm, which absorbs an affine
change of its input (only the zero padding of the border now stands for grey, not black); in
exchange the network reads the FERNets' input, so it can join their ensembles and teach them
(``distill.teachers``; ensemble members must read the same input).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.transforms import crop_batch, ten_crops
from .meta import ModelMeta
from .registry import register_model

WIDTHS = (64, 128, 256, 512)
CROP = 40        # the crops' side; the whole face is 48
HIDDEN = 4096


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.MaxPool2d(2, 2))


class VGGFER(nn.Module):
    """Khaireddin and Chen's VGG variant: 40x40 crops in training, ten-crop mean at evaluation
    (``crop``: the crops' side; ``test_crops``: 10, or 1 for the centre crop alone)."""

    def __init__(self, num_classes: int = 7, in_chans: int = 1, dropout: float = 0.2,
                 crop: int = CROP, test_crops: int = 10):
        super().__init__()
        if test_crops not in (1, 10):
            raise ValueError(f"test_crops must be 1 (centre) or 10 (TenCrop); got {test_crops}")
        stages, cin = [], in_chans
        for width in WIDTHS:
            stages.append(_stage(cin, width))
            cin = width
        self.features = nn.Sequential(*stages)
        side = crop // 2 ** len(WIDTHS)
        self.num_features = HIDDEN
        self.crop, self.test_crops = crop, test_crops
        self.lin1 = nn.Linear(cin * side * side, HIDDEN)
        self.lin2 = nn.Linear(HIDDEN, HIDDEN)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(HIDDEN, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)                          # (B, 512, 2, 2) for 40x40 crops

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = F.relu(self.drop(self.lin1(torch.flatten(x, 1))))
        x = F.relu(self.drop(self.lin2(x)))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:                                # the crops themselves
            return self.forward_head(self.forward_features(x))
        if self.test_crops == 1:
            x = crop_batch(x, (self.crop, self.crop), random_five=False)
            return self.forward_head(self.forward_features(x))
        logits = self.forward_head(self.forward_features(ten_crops(x, self.crop)))
        return logits.unflatten(0, (-1, 10)).mean(1)


def _meta() -> ModelMeta:
    return ModelMeta("vgg_fer", input_size=(48, 48), channels=1, mean=(0.5,), std=(0.25,),
                     alignment={"method": "box", "margin": 0.0, "square": True},
                     paper="Khaireddin & Chen, Facial Emotion Recognition: State of the Art "
                           "Performance on FER2013, arXiv 2105.03588 (2021)",
                     notes="VGG variant; 48x48 faces, ten 40x40 crops averaged at evaluation")


@register_model("vgg_fer", _meta())
def vgg_fer(num_classes: int = 7, classes=None, dropout: float = 0.2,
            test_crops: int = 10) -> nn.Module:
    """Khaireddin & Chen's VGG variant (30 M parameters): 48x48 gray faces, ten-crop test."""
    return VGGFER(len(classes) if classes else num_classes, dropout=dropout,
                  test_crops=test_crops)
