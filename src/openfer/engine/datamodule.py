"""The Lightning DataModule: a recipe's data section -> train / validation loaders.

In-memory data sets (FER2013 and any set decoded once into memory) are served as whole batches
gathered in one indexing step; file-backed sets go through worker processes. The training order is
a pure function of ``(seed, epoch, rank)`` (:class:`EpochBatchSampler`), which is what makes a
resumed run see exactly the batches an uninterrupted run sees, on one process or many.
"""

from __future__ import annotations

import sys

import lightning as L
from lightning.fabric.utilities.rank_zero import rank_zero_only
import numpy as np
import torch

from ..data import load_dataset
from ..data.dataset import ArrayFaceDataset, FaceDataset, with_classes
from ..errors import OpenferError
from ..models.meta import ModelMeta


#: File-backed data sets up to this size (decoded, at the model's input size) are decoded once
#: into memory; larger ones are read by worker processes every epoch.
IN_MEMORY_LIMIT = 4 * 1024 ** 3


def _bytes(dataset: FaceDataset) -> int:
    return len(dataset) * dataset.channels * dataset.image_size[0] * dataset.image_size[1]


class EpochBatchSampler(torch.utils.data.Sampler):
    """Shuffled index batches for one rank; the permutation depends only on seed and epoch.

    With ``world_size`` ranks, each takes every ``world_size``-th index of the permutation (the
    tail is padded by wrapping, as ``DistributedSampler`` does, so ranks step in lockstep).
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, seed: int = 0, rank: int = 0,
                 world_size: int = 1, drop_last: bool = False, pad: bool = True):
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world_size, self.drop_last, self.pad = rank, world_size, drop_last, pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> np.ndarray:
        if self.shuffle:
            generator = np.random.default_rng([self.seed, self.epoch])
            order = generator.permutation(self.n)
        else:
            order = np.arange(self.n)
        if self.world_size > 1:
            if self.pad:
                total = -(-self.n // self.world_size) * self.world_size
                order = np.resize(order, total)
            order = order[self.rank::self.world_size]
        return order

    def __iter__(self):
        order = self._indices()
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            if self.drop_last and len(batch) < self.batch_size:
                return
            yield batch.tolist()

    def __len__(self) -> int:
        count = len(self._indices())
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)


class FaceDataModule(L.LightningDataModule):
    """Loads the recipe's train and validation splits at the model's input geometry."""

    def __init__(self, data_config: dict, meta: ModelMeta, seed: int = 0,
                 targets: dict[str, str] | None = None):
        super().__init__()
        self.config = data_config
        self.meta = meta
        self.seed = seed
        #: Per-sample targets every batch carries (head name -> "categorical" | "regression").
        self.targets = dict(targets or {})
        self.train_set: FaceDataset | None = None
        self.val_set: FaceDataset | None = None

    def _load(self, split: str, limit: int | None) -> FaceDataset:
        cfg = self.config
        if not cfg.get("root"):
            raise OpenferError(
                "data.root is not set: pass the data set's location, e.g. "
                "'openfer train --recipe ... data.root=path/to/fer2013.csv'")
        size = cfg.get("image_size") or self.meta.input_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        dataset = load_dataset(cfg["dataset"], cfg["root"], split, image_size=size,
                               channels=self.meta.channels, classes=cfg.get("classes"),
                               **(cfg.get("options") or {}))
        dataset.require_labels()
        if getattr(rank_zero_only, "rank", 0) == 0:            # once, not once per process
            print("\n".join(dataset.notes()), file=sys.stderr)
        if hasattr(dataset, "to_array_dataset") and _bytes(dataset) <= IN_MEMORY_LIMIT:
            dataset = dataset.to_array_dataset()
        if limit and limit < len(dataset):
            if not isinstance(dataset, ArrayFaceDataset):
                raise OpenferError("data.limit_train / limit_val need a data set that fits in "
                                   "memory")
            dataset = stratified_subset(dataset, limit, self.seed)
        dataset = to_model_classes(dataset, self.meta.classes)
        return WithTargets(dataset, self.targets) if self.targets else dataset

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None and stage in (None, "fit"):
            self.train_set = self._load(self.config["train_split"], self.config.get("limit_train"))
        if self.val_set is None and self.config.get("val_split"):
            self.val_set = self._load(self.config["val_split"], self.config.get("limit_val"))

    def _rank(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader(self, dataset: FaceDataset, batch_size: int, train: bool):
        rank, world = self._rank()
        sampler = EpochBatchSampler(len(dataset), batch_size, shuffle=train, seed=self.seed,
                                    rank=rank, world_size=world, drop_last=False, pad=train)
        workers = int(self.config.get("num_workers") or 0)
        if isinstance(getattr(dataset, "dataset", dataset), ArrayFaceDataset):
            return torch.utils.data.DataLoader(dataset, batch_size=None, sampler=sampler)
        return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                                           persistent_workers=workers > 0)

    def train_dataloader(self):
        return self._loader(self.train_set, self.config["batch_size"], train=True)

    def val_dataloader(self):
        if self.val_set is None:
            return []
        return self._loader(self.val_set, self.config["eval_batch_size"], train=False)


class WithTargets(torch.utils.data.Dataset):
    """A face data set whose items also carry per-sample targets: ``(image, label, {name: t})``.

    Targets the data set lacks are "missing" for every sample: ``-1`` for a categorical head,
    ``NaN`` for a regression head (so they add nothing to a masked multi-task loss). Indexing by
    a sequence gathers a whole batch, as :class:`ArrayFaceDataset` does.
    """

    def __init__(self, dataset: FaceDataset, kinds: dict[str, str]):
        self.dataset = dataset
        n = len(dataset)
        self.arrays = {}
        for name, kind in kinds.items():
            values = dataset.targets.get(name)
            if kind == "distribution":
                self.arrays[name] = _distribution(dataset, name, values)
                continue
            dtype = np.float32 if kind == "regression" else np.int64
            if values is None:
                values = np.full(n, np.nan if kind == "regression" else -1)
            values = np.asarray(values, dtype=dtype)
            if values.shape != (n,):
                raise OpenferError(f"{dataset.name}: target {name!r} has shape {values.shape}, "
                                   f"expected ({n},)")
            self.arrays[name] = torch.from_numpy(values)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):             # labels, classes, targets, ... of the data set
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, index):
        images, labels = self.dataset[index]
        key = index if isinstance(index, (int, np.integer)) else torch.as_tensor(index)
        return images, labels, {name: values[key] for name, values in self.arrays.items()}


def _distribution(dataset: FaceDataset, name: str, values) -> torch.Tensor:
    """A per-class target (N, classes) for ``loss.soft_targets``; every sample needs one."""
    if values is None:
        raise OpenferError(f"{dataset.name} has no target {name!r}, which loss.soft_targets "
                           f"names; it has {', '.join(dataset.targets) or 'no targets'} "
                           "(FER+ gives label_distribution)")
    values = np.asarray(values, dtype=np.float32)
    if values.shape != (len(dataset), len(dataset.classes)) or not np.isfinite(values).all():
        raise OpenferError(f"{dataset.name}: target {name!r} has shape {values.shape}; soft "
                           f"targets need finite values of shape ({len(dataset)}, "
                           f"{len(dataset.classes)}): one share per class")
    return torch.from_numpy(values)


def to_model_classes(dataset: FaceDataset, model_classes: tuple[str, ...]) -> FaceDataset:
    """Re-index a data set's labels (and per-class targets) into the model's class order,
    matching by emotion name (:func:`~openfer.data.dataset.with_classes`).

    A data set whose class order differs from the model's (RAF-DB vs FER2013, say) is never fed
    by position; a class the model lacks is an error.
    """
    return with_classes(dataset, model_classes,
                        advice="set model.args.classes to the data set's classes")


def stratified_subset(dataset: ArrayFaceDataset, limit: int, seed: int) -> ArrayFaceDataset:
    """Exactly ``limit`` samples with the class proportions of ``dataset`` (largest-remainder
    allocation; deterministic in ``seed``)."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(dataset.labels, return_counts=True)
    quota = counts * limit / counts.sum()
    take = np.floor(quota).astype(int)
    for index in np.argsort(-(quota - take), kind="stable")[:limit - take.sum()]:
        take[index] += 1
    chosen = [rng.permutation(np.flatnonzero(dataset.labels == cls))[:n]
              for cls, n in zip(classes, take)]
    return dataset.subset(np.sort(np.concatenate(chosen)))
