"""Evaluate a model on a labelled face data set with the field's metrics.

The model predicts over all of its own classes. Its classes are matched to the data set's by
canonical emotion name (never by position), so a FER2013-trained model can be evaluated on an
image folder with fewer classes: a prediction of a class the data set lacks counts as wrong.
"""

from __future__ import annotations

import numpy as np
import torch

from .data.dataset import FaceDataset
from .data.transforms import to_model_input
from .errors import OpenferError
from .metrics import (HEADLINE_METRICS, classification_report, headline, paired_comparison,
                      regression_report)
from .tta import averaged, tta_mode


@torch.inference_mode()
def predict_probabilities(model: torch.nn.Module, dataset: FaceDataset, *, batch_size: int = 256,
                          device: str | torch.device = "cpu", tta: bool | str | None = None
                          ) -> np.ndarray:
    """Class probabilities (N, model classes), averaged over the test-time augmentation's views
    (``tta``: None, ``"flip"`` or ``True``, ``"shifts"``; :mod:`openfer.tta`)."""
    model = model.to(device).eval()
    meta, mode = model.meta, tta_mode(tta)
    out = []
    for images in _batches(dataset, batch_size):
        x = to_model_input(images.to(device), meta)
        probs = averaged(lambda view: class_logits(model(view)).softmax(-1), x, mode)
        out.append(probs.float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, meta.num_classes), np.float32)


def _batches(dataset: FaceDataset, batch_size: int):
    """The data set's images in order, a batch at a time (``uint8`` (B, C, H, W))."""
    dataset = getattr(dataset, "dataset", dataset)        # a training wrapper's data set
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None,
        sampler=torch.utils.data.BatchSampler(range(len(dataset)), batch_size, False)) \
        if hasattr(dataset, "images") else \
        torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for images, _ in loader:
        yield images


@torch.inference_mode()
def predict_heads(model: torch.nn.Module, dataset: FaceDataset, *, batch_size: int = 256,
                  device: str | torch.device = "cpu") -> dict[str, np.ndarray]:
    """Every head's raw output of a multi-task model (``forward_heads``), by head name."""
    model = model.to(device).eval()
    out: dict[str, list] = {}
    for images in _batches(dataset, batch_size):
        with torch.inference_mode():
            _, heads = logits_and_heads(model, to_model_input(images.to(device), model.meta))
        for name, value in heads.items():
            out.setdefault(name, []).append(value.float().cpu())
    return {name: torch.cat(values).numpy() for name, values in out.items()}


def logits_and_heads(model: torch.nn.Module, x: torch.Tensor
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The class logits and the named extra outputs of one forward pass: ``forward_heads`` of a
    multi-task model, or the columns of the second output of a model with
    ``meta.extra_outputs`` (Emotion-GCN's valence, arousal); no extra outputs for others."""
    if hasattr(model, "forward_heads"):
        heads = dict(model.forward_heads(x))
        return heads.pop("emotion"), heads
    extra = tuple(model.meta.extra_outputs or ())
    output = model(x)
    if not extra or isinstance(output, torch.Tensor):
        return class_logits(output), {}
    return class_logits(output), {name: output[1][:, i:i + 1] for i, name in enumerate(extra)}


def _head_names(model: torch.nn.Module) -> list[str]:
    return list(getattr(model, "head_sizes", {})) or list(model.meta.extra_outputs or ())


def head_layout(model: torch.nn.Module, trained_only: bool = False
                ) -> list[tuple[str, tuple[str, ...] | None]]:
    """A model's extra heads in output order: ``(name, class names)`` for a categorical head
    (RAF-DB's attribute names for gender, race, age; "0", "1", ... for others), ``(name,
    None)`` for a regression head (one value: valence, arousal). ``trained_only``: only those
    whose labels training saw (``meta.heads_trained``; none where it is not recorded)."""
    from .models.multitask import ATTRIBUTE_CLASSES, head_kind

    sizes = getattr(model, "head_sizes", None) or \
        {name: 1 for name in model.meta.extra_outputs or ()}
    if trained_only:
        trained = set(model.meta.heads_trained or ())
        sizes = {name: size for name, size in sizes.items() if name in trained}
    return [(name, None) if head_kind(name) == "regression" or not hasattr(model, "head_sizes")
            else (name, ATTRIBUTE_CLASSES.get(name) or tuple(str(i) for i in range(size)))
            for name, size in sizes.items()]


def head_reports(model: torch.nn.Module, dataset: FaceDataset, *, batch_size: int = 256,
                 device: str | torch.device = "cpu") -> dict[str, dict]:
    """Metrics of each extra head of a multi-task model on the samples that have its label:
    accuracy and macro-F1 (with the full classification report) for a categorical head,
    CCC / RMSE / PCC / SAGR for valence and arousal. Heads without targets are left out."""
    from .models.multitask import ATTRIBUTE_CLASSES, head_kind

    dataset = getattr(dataset, "dataset", dataset)
    wanted = [n for n in _head_names(model) if n in dataset.targets]
    if not wanted:
        return {}
    outputs = predict_heads(model, dataset, batch_size=batch_size, device=device)
    reports = {}
    for name in wanted:
        target = np.asarray(dataset.targets[name])
        if head_kind(name) == "regression":
            reports[name] = regression_report(target, outputs[name][:, 0])
            continue
        valid = target >= 0
        if not valid.any():
            continue
        classes = ATTRIBUTE_CLASSES.get(name) or \
            tuple(str(i) for i in range(outputs[name].shape[1]))
        reports[name] = classification_report(target[valid], outputs[name][valid].argmax(1),
                                              classes)
        reports[name]["missing"] = int((~valid).sum())
    return reports


def class_logits(output) -> torch.Tensor:
    """Class logits of a model's output (a tensor, or a tuple/dict whose first item they are)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        return output["logits"]
    return output[0]


def evaluate(model: torch.nn.Module, dataset: FaceDataset, *, batch_size: int = 256,
             device: str | torch.device = "cpu", tta: bool | str | None = None,
             precision: str = "fp32", compare_with: torch.nn.Module | None = None,
             compare_dataset: FaceDataset | None = None, smooth: float = 0.0,
             fps: float = 30.0) -> dict:
    """Metrics of ``model`` on ``dataset`` (see :func:`openfer.metrics.classification_report`).

    A multi-task model's extra heads are reported under ``heads`` (:func:`head_reports`). The
    report's ``classes`` are the model's classes followed by any data-set class the model
    lacks; ``dataset`` and ``model`` name the two. ``precision``: ``fp32`` (the model as it is,
    eagerly: the reference) or, for the class probabilities, the arithmetic inference runs in
    (``bf16``, ``int8``, or ``auto`` as :class:`openfer.infer.Recognizer` chooses it; the fused
    graph of :mod:`openfer.models.fusion`); the report says which ran. ``tta``: test-time
    augmentation (:mod:`openfer.tta`), reported as ``tta`` (the mode or None) and ``tta_flip``.

    ``compare_with``: a second model scored on the same faces, the same way; the report's
    ``comparison`` pairs the two face by face (:func:`openfer.metrics.paired_comparison`: the
    accuracy gap, its 95 % interval, McNemar's p). ``compare_dataset``: those faces prepared
    for the second model's input, where its size or channels differ.

    ``smooth`` > 0, for a data set of video frames (Aff-Wild2): each video's probabilities are
    averaged over time, frame by frame, with that time constant in seconds
    (:func:`openfer.smoothing.smooth_sequences`) before they are scored, at each video's own
    frame rate where the data set has its video file (Aff-Wild2's ``videos/``), else at ``fps``;
    reported as ``smooth_s``, ``fps`` and ``fps_read_from_videos`` (how many videos' rates were
    read).
    """
    dataset = getattr(dataset, "dataset", dataset)        # a training wrapper's data set
    mode = tta_mode(tta)
    smoothed, rates_read = _smoother(dataset, smooth, fps)
    classes, y_true, probs, precision = _scored(model, dataset, batch_size, device, mode,
                                                precision)
    probs = smoothed(probs)
    y_pred = probs.argmax(1)
    report = classification_report(y_true, y_pred, classes)
    report["dataset"] = dataset.name
    report["model"] = model.meta.architecture
    report["tta"], report["tta_flip"] = mode, mode is not None
    report["precision"] = precision
    if smooth:
        report["smooth_s"], report["fps"] = float(smooth), float(fps)
        report["fps_read_from_videos"] = rates_read
    heads = head_reports(model, dataset, batch_size=batch_size, device=device)
    if heads:
        report["heads"] = heads
    if compare_with is not None:
        faces = dataset if compare_dataset is None else getattr(compare_dataset, "dataset",
                                                                compare_dataset)
        if len(faces) != len(dataset):
            raise OpenferError(f"compare: {len(dataset)} faces for the first model but "
                               f"{len(faces)} for the second; both must score the same faces")
        _, other_true, other_probs, _ = _scored(compare_with, faces, batch_size, device, mode,
                                                precision)
        other_probs = smoothed(other_probs)
        report["comparison"] = paired_comparison(y_pred == y_true,
                                                 other_probs.argmax(1) == other_true)
    return report


def _smoother(dataset: FaceDataset, smooth: float, fps: float):
    """The function that smooths a data set's probabilities over time (or leaves them), and for
    how many videos it read the frame rate from the video file (the others: ``fps``)."""
    if not smooth:
        return (lambda probs: probs), 0
    from .smoothing import check_time_constant, frame_rates, frame_sequences, smooth_sequences

    try:
        check_time_constant(smooth, fps)
    except ValueError as exc:
        raise OpenferError(str(exc)) from None
    videos, frames = frame_sequences(dataset)
    rates, read = frame_rates(dataset, fps)
    return (lambda probs: smooth_sequences(probs, videos, frames, smooth, rates)), read


def _scored(model, dataset, batch_size, device, mode, precision):
    """``(classes, y_true, probabilities, precision run)``: the model's classes followed by any
    data-set class it lacks, the labels as indices into them, the model's class probabilities."""
    dataset.require_labels()
    model_classes = list(model.meta.classes)
    data_classes = [e.value for e in dataset.classes]
    classes = model_classes + [c for c in data_classes if c not in model_classes]
    position = {c: i for i, c in enumerate(classes)}
    y_true = np.array([position[data_classes[i]] for i in dataset.labels], dtype=np.int64)
    if len(dataset) == 0:
        raise OpenferError(f"{dataset.name} has no samples to evaluate")
    scorer = model
    if precision != "fp32":
        from .models.ensemble import Ensemble
        from .models.fusion import for_precision, fuse_for_inference, fuse_members

        if isinstance(model, Ensemble):                 # each member in its own precision
            members, precision = fuse_members(model, precision, torch.device(device).type)
            scorer = Ensemble(members)
        else:
            reduced, precision = for_precision(model, precision, torch.device(device).type)
            scorer = fuse_for_inference(reduced, precision) if precision != "fp32" else model
    probs = predict_probabilities(scorer, dataset, batch_size=batch_size, device=device,
                                  tta=mode)
    return classes, y_true, probs, precision


def recorded_metrics(model: torch.nn.Module, dataset: FaceDataset, split: str) -> dict:
    """What shipped weights record of their test split (``scripts/ship_weights.py``,
    ``scripts/record_metrics.py``): the plain evaluation's headline metrics and per-class table
    (:func:`openfer.metrics.headline`), and the headline with flip TTA."""
    plain, flipped = (evaluate(model, dataset, tta=tta) for tta in (False, True))
    recorded = headline(plain)
    with_flip = headline(flipped)
    recorded.update(split=split, tta_flip=False,
                    with_flip_tta={k: with_flip[k] for k in HEADLINE_METRICS})
    return recorded
