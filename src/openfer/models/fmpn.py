"""FMPN: Facial Motion Prior Networks (Chen et al., VCIP 2019), METHODS.md section 4.

Three networks, as in the original (``donydchen/FMPN-FER``, ``model/model_utils.py``):

1. :class:`MaskGenerator` (the original's ``ResFaceGenNet``): the grey face → a facial-motion
   mask M in (0, 1), Johnson-style: conv 7×7 1→64, two stride-2 convs 4×4 (→128 →256), four
   residual blocks (conv 3×3 + BN + PReLU, twice), two transposed convs back, conv 7×7 64→1
   without bias, sigmoid. BatchNorm, so no conv has a bias. 6,040,968 parameters.
2. :class:`FusionNet`: ReLU(BN(conv 3×3 of the RGB face)) + ReLU(BN(conv 3×3 of M ⊙ grey)),
   one residual block, conv 3×3 3→3, sigmoid: the classifier's input. 377 parameters.
3. The classifier: Inception-v3 at 299 px by default (``transform_input=True``, fed the fusion
   output in [0, 1], as the original does; 21,799,911 parameters for 7 classes), or any
   registered classifier at its own input size (``classifier="resnet18"``, ``"fernet_s"``...),
   which gets the fusion output normalised with its own mean/std.

Inputs are RGB faces in [0, 1] without normalisation (``meta.mean`` 0, ``meta.std`` 1); the grey
face is computed inside (ITU-R 601 weights, as PIL's ``convert('L')`` that the original uses).
``forward`` returns the logits (inference needs only the face); :meth:`FMPN.forward_with_mask`
also returns M for the training losses. State-dict keys are the original's under ``generator.``
(``feature_extractor.*``, ``res_top.*``), ``fusion.`` (``process_a``, ``process_b``, ``model``)
and ``classifier.``; :func:`save_parts` / :func:`load_parts` write and read the three networks
separately (the original keeps ``net_resface``, ``net_fusion``, ``net_cls`` in three files).

Departures and options: ``generator_width`` (the original's ngf, 64) scales the generator down
for CPU budgets; a one-channel classifier gets a fusion net whose last conv has one output
channel; the transposed convolutions are given the encoder's sizes, so any input size decodes
to its own size (the original's ``output_padding = size % 2`` does that for 299 only).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import LUMA_WEIGHTS  # FMPN fuses the mask with the luma face
from ..errors import OpenferError
from .meta import ModelMeta
from .registry import create_model, register_model

_PAPER = "Chen et al., Facial Motion Prior Networks for Facial Expression Recognition, VCIP 2019"
#: CK+'s seven expressions in FMPN's label order (``emotion_labels.pkl`` code − 1).
CKPLUS_CLASSES = ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")


def init_fmpn(module: nn.Module, gain: float = 0.02) -> None:
    """The original's ``init_weights('xavier', 0.02)``: xavier-normal convs and linears (bias 0),
    BatchNorm weights ~ N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


class ResnetBlock(nn.Module):
    """x + [conv 3×3 → BN → PReLU → conv 3×3 → BN → PReLU](x) (zero padding, no biases)."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1, bias=False), nn.BatchNorm2d(dim), nn.PReLU(),
            nn.Conv2d(dim, dim, 3, padding=1, bias=False), nn.BatchNorm2d(dim), nn.PReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class MaskGenerator(nn.Module):
    """The facial-motion mask generator (FMG): grey face (B, 1, H, W) → mask (B, 1, H, W)."""

    def __init__(self, width: int = 64, n_blocks: int = 4, in_channels: int = 1):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 7, padding=3, bias=False),
                                   nn.BatchNorm2d(width), nn.ReLU(True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(width * mult, width * mult * 2, 4, stride=2, padding=1,
                                 bias=False), nn.BatchNorm2d(width * mult * 2), nn.ReLU(True)]
        layers += [ResnetBlock(width * 4) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [nn.ConvTranspose2d(width * mult, width * mult // 2, 4, stride=2,
                                          padding=1, bias=False),
                       nn.BatchNorm2d(width * mult // 2), nn.ReLU(True)]
        self.feature_extractor = nn.Sequential(*layers)
        self.res_top = nn.Sequential(nn.Conv2d(width, 1, 7, padding=3, bias=False), nn.Sigmoid())

    def forward(self, grey: torch.Tensor) -> torch.Tensor:
        sizes, x = [], grey
        for layer in self.feature_extractor:
            if isinstance(layer, nn.Conv2d) and layer.stride == (2, 2):
                sizes.append(x.shape[-2:])
            if isinstance(layer, nn.ConvTranspose2d):
                x = layer(x, output_size=sizes.pop())    # decode to the encoder's sizes
            else:
                x = layer(x)
        return self.res_top(x)


class FusionNet(nn.Module):
    """The prior fusion net: RGB face and masked grey face → the classifier's input in (0, 1)."""

    def __init__(self, rgb_channels: int = 3, focus_channels: int = 1, out_channels: int = 3):
        super().__init__()
        self.process_a = nn.Sequential(nn.Conv2d(rgb_channels, 3, 3, padding=1, bias=False),
                                       nn.BatchNorm2d(3), nn.ReLU(True))
        self.process_b = nn.Sequential(nn.Conv2d(focus_channels, 3, 3, padding=1, bias=False),
                                       nn.BatchNorm2d(3), nn.ReLU(True))
        self.model = nn.Sequential(ResnetBlock(3),
                                   nn.Conv2d(3, out_channels, 3, padding=1, bias=False),
                                   nn.Sigmoid())

    def forward(self, rgb: torch.Tensor, focus: torch.Tensor) -> torch.Tensor:
        return self.model(self.process_a(rgb) + self.process_b(focus))


class FMPN(nn.Module):
    """Mask generator + fusion + classifier; ``forward(rgb in [0, 1]) -> logits``."""

    def __init__(self, classifier: nn.Module, generator_width: int = 64, n_blocks: int = 4,
                 classifier_normalization: bool = True):
        super().__init__()
        self.generator = MaskGenerator(generator_width, n_blocks)
        cmeta = classifier.meta
        self.fusion = FusionNet(out_channels=cmeta.channels)
        self.classifier = classifier
        self.classifier_normalization = classifier_normalization
        self.register_buffer("classifier_mean", torch.tensor(cmeta.mean).view(1, -1, 1, 1),
                             persistent=False)
        self.register_buffer("classifier_std", torch.tensor(cmeta.std).view(1, -1, 1, 1),
                             persistent=False)
        self.register_buffer("luma", torch.tensor(LUMA_WEIGHTS).view(1, 3, 1, 1),
                             persistent=False)

    def forward_with_mask(self, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, mask)`` for an RGB batch in [0, 1]."""
        # openfer.data.dataset.to_grey's weights, without its branch for grey input (the input
        # is RGB), so that the model traces into the fused inference graph
        gray = (rgb * self.luma.to(rgb.dtype)).sum(1, keepdim=True)
        mask = self.generator(gray)
        fused = self.fusion(rgb, mask * gray)
        if self.classifier_normalization:
            fused = (fused - self.classifier_mean) / self.classifier_std
        return self.classifier(fused), mask

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.forward_with_mask(rgb)[0]


_META = ModelMeta("fmpn", classes=CKPLUS_CLASSES, input_size=(299, 299), channels=3,
                  mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                  alignment={"method": "box", "margin": 0.1, "square": True}, paper=_PAPER)


@register_model("fmpn", _META)
def fmpn(num_classes: int = 7, classes=None, classifier: str = "inception_v3",
         classifier_args: dict | None = None, generator_width: int = 64, n_blocks: int = 4,
         input_size: int | None = None) -> nn.Module:
    """FMPN: mask generator + Inception-v3 (27,841,256 params for 7 classes) or any classifier.

    ``classifier`` is any registered classifier (``classifier_args`` go to it; its input size is
    FMPN's unless ``input_size`` is given)."""
    classes = tuple(classes) if classes else (CKPLUS_CLASSES if num_classes == 7 else None)
    count = len(classes) if classes else num_classes
    args = dict(classifier_args or {})
    inception = classifier == "inception_v3"
    if inception:
        args.setdefault("transform_input", True)     # as the original (on a [0, 1] input)
    if classifier == "fmpn":
        raise OpenferError("FMPN's classifier cannot be another FMPN")
    net = create_model(classifier, **({"classes": list(classes)} if classes else
                                      {"num_classes": count}), **args)
    if inception and not args.get("pretrained"):
        init_fmpn(net)                               # the original's init when not pretrained
    model = FMPN(net, generator_width, n_blocks, classifier_normalization=not inception)
    init_fmpn(model.generator)
    init_fmpn(model.fusion)
    size = input_size or net.meta.input_size[0]
    model.meta = _META.replace(classes=tuple(net.meta.classes), input_size=(size, size),
                               notes=f"classifier {classifier}, generator width "
                                     f"{generator_width}")
    return model


PARTS = ("generator", "fusion", "classifier")


def save_parts(model: FMPN, folder: str | Path) -> dict[str, Path]:
    """Write the three networks to ``<folder>/{generator,fusion,classifier}.safetensors``
    (the original saves ``net_resface``, ``net_fusion``, ``net_cls`` separately)."""
    from safetensors.torch import save_file

    from ..fileio import atomic_write_with

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for part in PARTS:
        state = {k: v.detach().contiguous() for k, v in
                 getattr(model, part).state_dict().items()}
        path = folder / f"{part}.safetensors"
        atomic_write_with(path, lambda tmp, s=state: save_file(s, tmp))
        written[part] = path
    return written


def load_parts(model: FMPN, folder: str | Path, parts=PARTS) -> None:
    """Load some or all of the three networks saved by :func:`save_parts`, or the original's
    ``<epoch>_net_{resface,fusion,cls}.pth`` files (``DataParallel``'s ``module.`` prefix is
    stripped); every key is checked."""
    folder = Path(folder)
    original = {"generator": "resface", "fusion": "fusion", "classifier": "cls"}
    for part in parts:
        ours = folder / f"{part}.safetensors"
        theirs = sorted(folder.glob(f"*_net_{original[part]}.pth"))
        if ours.is_file():
            from safetensors.torch import load_file
            state = load_file(str(ours))
        elif theirs:
            state = torch.load(theirs[-1], map_location="cpu", weights_only=True)
            state = {k.removeprefix("module."): v for k, v in state.items()}
        else:
            raise OpenferError(f"{folder}: no {part}.safetensors (nor the original's "
                               f"*_net_{original[part]}.pth)")
        network = getattr(model, part)
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise OpenferError(f"{folder}: the saved {part} does not fit this FMPN "
                               f"({str(error).splitlines()[0]})") from None


def mask_loss(mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between the generated and the pseudo ground-truth mask (both in [0, 1])."""
    return F.mse_loss(mask.float(), target.float())
