"""Face data sets: what every reader returns and every trainer and evaluator consumes.

A :class:`FaceDataset` yields ``(image, label)`` pairs: ``image`` a ``uint8`` tensor (C, H, W) at
the size the consumer asked for, ``label`` an index into :attr:`FaceDataset.classes` (canonical
:class:`~openfer.labels.Emotion` values in index order) or ``-1`` for an unlabelled sample. The
native code of each sample stays available in :attr:`FaceDataset.native_labels`, so a reader's
mapping can always be checked against the owner's files.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import DataFormatError, OpenferError
from ..labels import Emotion, LabelSet, emotions_from_names, index_mapping
from . import images as imageio


class FaceDataset(torch.utils.data.Dataset):
    """Base class: labels, classes and provenance; subclasses supply the pixels."""

    def __init__(self, labels: np.ndarray, classes: Sequence[Emotion], *, name: str,
                 label_set: LabelSet | None = None, native_labels: np.ndarray | None = None,
                 sources: Sequence[str] | None = None, channels: int = 1,
                 image_size: tuple[int, int] = (48, 48)):
        self.labels = np.asarray(labels, dtype=np.int64)
        self.classes = tuple(classes)
        self.name = name
        self.label_set = label_set
        self.native_labels = (self.labels.copy() if native_labels is None
                              else np.asarray(native_labels, dtype=np.int64))
        self.sources = list(sources) if sources is not None else None
        self.channels = channels
        self.image_size = tuple(image_size)
        #: Non-expression or skipped samples a reader dropped, by reason (e.g. AffectNet 8-10).
        self.dropped: Counter[str] = Counter()
        #: Per-sample continuous or attribute targets by name (e.g. "valence", "arousal").
        self.targets: dict[str, np.ndarray] = {}
        #: Messages about files a reader skipped (e.g. a zero-byte image), naming each file.
        self.problems: list[str] = []

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def has_labels(self) -> bool:
        return bool(len(self.labels)) and bool((self.labels >= 0).all())

    def require_labels(self) -> None:
        """Raise a clear error if some samples have no label (e.g. Kaggle's test.csv)."""
        if not self.has_labels:
            missing = int((self.labels < 0).sum())
            raise OpenferError(
                f"{self.name}: {missing} of {len(self)} samples have no expression label, so it "
                f"cannot be used for training or evaluation; predict on it instead "
                f"({self.prediction_command()}), or evaluate on a labelled split")

    def prediction_command(self) -> str:
        """The ``openfer predict`` command that scores these samples (for error messages)."""
        return "openfer predict FILE.csv"

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels[self.labels >= 0], minlength=len(self.classes))
        return {c.value: int(n) for c, n in zip(self.classes, counts)}

    def source(self, index: int) -> str:
        return self.sources[index] if self.sources is not None else f"{self.name}[{index}]"

    def describe(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.class_counts().items())
        text = f"{self.name}: {len(self)} faces, {self.channels}x{self.image_size[0]}x" \
               f"{self.image_size[1]}; {counts}"
        if self.dropped:
            text += "; dropped " + ", ".join(f"{k}: {v}" for k, v in self.dropped.items())
        return text

    def notes(self, limit: int = 5) -> list[str]:
        """What a user should read before trusting a run on this data: :meth:`describe`, then
        the files the reader skipped or handled specially (``problems``), the first ``limit``
        named and the rest counted."""
        lines = [self.describe()]
        lines += [f"  {problem}" for problem in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"  ... and {len(self.problems) - limit} more such files "
                         "(dataset.problems lists them all)")
        return lines


#: Per-sample targets with one column per class, re-indexed with the labels.
PER_CLASS_TARGETS = ("label_distribution",)


def with_classes(dataset: FaceDataset, classes: Sequence[str | Emotion], *,
                 advice: str = "pass classes that include them, or none") -> FaceDataset:
    """``dataset`` with its labels (and per-class targets) re-indexed into the order of
    ``classes``, matched by emotion name (``"happy"`` is ``happiness``); changed in place.

    ``classes`` may name more classes than the data set has (they get no samples); a class of the
    data set missing from ``classes`` is an error that names it, followed by ``advice``.
    """
    try:
        wanted = emotions_from_names(classes)
    except ValueError as e:
        raise OpenferError(f"{dataset.name}: classes {list(classes)}: {e}") from None
    if tuple(dataset.classes) == wanted:
        return dataset
    mapping = index_mapping(dataset.classes, wanted)
    missing = [c.value for c, i in zip(dataset.classes, mapping) if i is None]
    if missing:
        raise OpenferError(f"{dataset.name} has classes that {[e.value for e in wanted]} lacks: "
                           f"{missing}; {advice}")
    index = np.array(mapping, dtype=np.int64)
    dataset.labels = np.where(dataset.labels >= 0, index[np.maximum(dataset.labels, 0)], -1)
    for name in PER_CLASS_TARGETS:
        if name in dataset.targets:
            old = np.asarray(dataset.targets[name])
            new = np.zeros((len(old), len(wanted)), old.dtype)
            new[:, index] = old
            dataset.targets[name] = new
    dataset.classes = wanted
    return dataset


class ArrayFaceDataset(FaceDataset):
    """Faces held in memory as one ``uint8`` array (N, H, W, C): FER2013 and other small sets."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, classes: Sequence[Emotion], **kw):
        if images.ndim == 3:
            images = images[:, :, :, None]
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError("images must be a uint8 array (N, H, W[, C])")
        super().__init__(labels, classes, channels=images.shape[3],
                         image_size=images.shape[1:3], **kw)
        self.images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)

    def __getitem__(self, index):
        """One face ``(uint8 (C, H, W), int)``, or a whole batch for a sequence of indices:
        ``(uint8 (B, C, H, W), int64 (B,))`` gathered in one step (the fast training path)."""
        if isinstance(index, (int, np.integer)):
            return self.images[index], int(self.labels[index])
        index = torch.as_tensor(index, dtype=torch.long)
        return self.images[index], torch.from_numpy(self.labels[index.numpy()])

    def converted(self, image_size: tuple[int, int] | None = None,
                  channels: int | None = None) -> "ArrayFaceDataset":
        """The same faces at another size and/or channel count (computed once, in chunks)."""
        size = tuple(image_size or self.image_size)
        channels = channels or self.channels
        if size == self.image_size and channels == self.channels:
            return self
        out = torch.empty((len(self), channels, *size), dtype=torch.uint8)
        for start in range(0, len(self), 4096):
            chunk = self.images[start:start + 4096]
            out[start:start + 4096] = convert_uint8_batch(chunk, size, channels)
        new = ArrayFaceDataset.__new__(ArrayFaceDataset)
        FaceDataset.__init__(new, self.labels, self.classes, name=self.name,
                             label_set=self.label_set, native_labels=self.native_labels,
                             sources=self.sources, channels=channels, image_size=size)
        new.dropped, new.targets, new.problems = self.dropped, self.targets, self.problems
        new.images = out
        return new

    def subset(self, indices: Sequence[int]) -> "ArrayFaceDataset":
        indices = np.asarray(indices, dtype=np.int64)
        new = ArrayFaceDataset.__new__(ArrayFaceDataset)
        FaceDataset.__init__(new, self.labels[indices], self.classes, name=self.name,
                             label_set=self.label_set, native_labels=self.native_labels[indices],
                             sources=[self.sources[i] for i in indices] if self.sources else None,
                             channels=self.channels, image_size=self.image_size)
        new.images = self.images[torch.from_numpy(indices)]
        new.targets = {k: v[indices] for k, v in self.targets.items()}
        new.dropped, new.problems = self.dropped, self.problems
        return new


#: ITU-R 601 luma weights (PIL's ``convert('L')``): RGB -> grey everywhere in openfer.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def to_grey(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) luma with :data:`LUMA_WEIGHTS`, in ``x``'s dtype and device;
    a one-channel batch passes unchanged."""
    if x.shape[1] == 1:
        return x
    weights = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


def convert_batch(x: torch.Tensor, size: tuple[int, int], channels: int) -> torch.Tensor:
    """Resize (antialiased bilinear) and change channels of a float (B, C, H, W) batch, in any
    value range (the same tensor when nothing changes)."""
    if x.shape[1] != channels:
        if channels == 3 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif channels == 1 and x.shape[1] == 3:
            x = to_grey(x)
        else:
            raise ValueError(f"cannot convert {x.shape[1]} channels to {channels}")
    if tuple(x.shape[-2:]) != tuple(size):
        x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False,
                                            antialias=True)
    return x


def convert_uint8_batch(batch: torch.Tensor, size: tuple[int, int], channels: int) -> torch.Tensor:
    """:func:`convert_batch` for a ``uint8`` batch, rounded back to ``uint8``."""
    x = convert_batch(batch.float(), size, channels)
    return x.round().clamp_(0, 255).to(torch.uint8)   # not round_(): x may be an expand()


class ImageFileDataset(FaceDataset):
    """Faces read from image files on demand, converted to ``channels`` and ``image_size``.

    An unreadable file raises :class:`DataFormatError` naming it, when it is read; call
    :meth:`verify` first to find every bad file of a data set at once.
    """

    def __init__(self, paths: Sequence[str | Path], labels: np.ndarray, classes: Sequence[Emotion],
                 *, image_size: tuple[int, int], channels: int, regions=None, **kw):
        super().__init__(labels, classes, channels=channels, image_size=image_size,
                         sources=[str(p) for p in paths], **kw)
        self.paths = [Path(p) for p in paths]
        #: Optional per-sample face region: a box (x, y, w, h) in image pixels, cropped before
        #: resizing, or a 2x3 affine matrix mapping the image onto the face crop (alignment).
        self.regions = regions

    def load(self, index: int) -> np.ndarray:
        return load_face(self.paths[index], self.channels, self.image_size, self.region(index))

    def prediction_command(self) -> str:
        folders = {p.parent for p in self.paths}
        where = str(folders.pop()) if len(folders) == 1 else "FOLDER --recursive"
        return f"openfer predict {where}" + (" --no-detect" if self.regions is None else "")

    def region(self, index: int):
        """Sample ``index``'s face region (a box or an affine matrix), or ``None``."""
        return self.regions[index] if self.regions is not None else None

    def __getitem__(self, index: int):
        array = self.load(index)
        return (torch.from_numpy(np.require(array, requirements=["C", "W"])).permute(2, 0, 1),
                int(self.labels[index]))

    def verify(self) -> list[DataFormatError]:
        """Try to decode every file; return the errors (empty when all are readable)."""
        problems = []
        for index in range(len(self)):
            try:
                self.load(index)
            except DataFormatError as exc:
                problems.append(exc)
        return problems

    def to_array_dataset(self) -> ArrayFaceDataset:
        """Decode every image once into memory (the fast path for training)."""
        stack = np.stack([self.load(i) for i in range(len(self))]) if len(self) else \
            np.zeros((0, *self.image_size, self.channels), np.uint8)
        dataset = ArrayFaceDataset(stack, self.labels, self.classes, name=self.name,
                                   label_set=self.label_set, native_labels=self.native_labels,
                                   sources=self.sources)
        dataset.dropped, dataset.targets, dataset.problems = (self.dropped, self.targets,
                                                              self.problems)
        return dataset


def load_face(path: str | Path, channels: int, image_size: tuple[int, int], region=None
              ) -> np.ndarray:
    """An image file as a (H, W, channels) ``uint8`` face of ``image_size``: the whole image, the
    box ``region`` (x, y, w, h) cropped, or warped by ``region`` as a 2x3 affine matrix."""
    image = imageio.read_image(path, channels)
    if region is not None and np.shape(region) == (2, 3):
        from ..faces.align import warp
        return warp(image, np.asarray(region, np.float64), tuple(image_size))
    if region is not None:
        try:
            image = crop_box(image, region)
        except ValueError as exc:
            raise DataFormatError(path, f"{exc}; the annotation's box does not fit this image "
                                  "(a different file, or a box in another coordinate order)"
                                  ) from None
    return imageio.resize(image, image_size)


def crop_box(image: np.ndarray, box) -> np.ndarray:
    """Crop (x, y, w, h), clipped to the image; an empty intersection is an error."""
    x, y, w, h = (int(round(float(v))) for v in box)
    height, width = image.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"face box {tuple(box)} lies outside the {width}x{height} image")
    return image[y0:y1, x0:x1]
