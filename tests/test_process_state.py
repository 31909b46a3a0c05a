"""openfer changes process-wide state (warning filters, PIL's pixel limit) only for a moment and
under one lock, so concurrent requests leave the process as it was (openfer.process_state)."""

from __future__ import annotations

import io
import sys
import threading
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from openfer.data.images import read_image, read_image_bounded
from openfer.models.fusion import fuse_for_inference
from openfer.serve.uploads import decode_upload


def _png(side: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((side, side, 3), 128, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def frequent_thread_switches():
    """Threads switch every microsecond, so that a race, where there is one, shows at once
    (without the lock, 8 threads x 300 uploads left a stray filter in every run)."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


def _in_threads(*jobs, copies: int = 4) -> None:
    errors: list[BaseException] = []

    def run(job):
        try:
            job()
        except BaseException as exc:            # reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_concurrent_decoding_leaves_the_warning_filters_and_pils_limit_as_they_were(
        tmp_path, frequent_thread_switches):
    data, photo = _png(), tmp_path / "face.png"
    photo.write_bytes(data)
    filters, limit = list(warnings.filters), Image.MAX_IMAGE_PIXELS

    def uploads():
        for _ in range(300):
            image, factor = decode_upload(data, "face.png", max_bytes=10**6, max_pixels=10**6)
            assert image.shape == (64, 64, 3) and factor == 1.0

    def photos():
        for _ in range(150):
            assert read_image_bounded(photo)[0].shape == (64, 64, 3)
            assert read_image(photo, 1).shape == (64, 64, 1)

    _in_threads(uploads, photos)
    assert warnings.filters == filters
    assert Image.MAX_IMAGE_PIXELS == limit


@pytest.mark.filterwarnings("ignore:DataDependent. fast CPU inference unavailable")
def test_a_trace_beside_concurrent_uploads_still_sees_its_own_tracer_warnings(
        frequent_thread_switches, data_dependent_model):
    """The fused path reads the tracer's warnings to refuse a model whose trace would freeze a
    data-dependent branch; uploads decoded meanwhile must neither hide those warnings nor keep
    the trace's ``always`` filter."""
    data, filters = _png(), list(warnings.filters)
    outcomes: list[str | None] = []

    def uploads():
        for _ in range(200):
            decode_upload(data, "face.png", max_bytes=10**6, max_pixels=10**6)

    def traces():
        for _ in range(5):
            fused = fuse_for_inference(data_dependent_model().eval(), "fp32")
            with torch.no_grad():
                fused(torch.rand(2, 1, 8, 8))
            outcomes.append(fused.eager_reason)

    _in_threads(uploads, traces, copies=3)
    assert len(outcomes) == 15
    assert all(reason and "data-dependent" in reason for reason in outcomes), outcomes
    assert warnings.filters == filters


def test_fused_models_called_from_many_threads_leave_torchs_onednn_switch_as_it_was(
        frequent_thread_switches):
    """Every fused call turns PyTorch's process-wide oneDNN Graph switch on for itself; calls
    overlapping in threads must not restore each other's value and leave it on."""
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 3)).eval()
    fused, faces = fuse_for_inference(model, "fp32"), torch.rand(4, 1, 12, 12)
    with torch.no_grad():
        expected = model(faces)
        fused(faces)                             # traced and warmed here
    assert torch.jit.onednn_fusion_enabled() is False

    def calls():
        for _ in range(300):
            with torch.no_grad():
                assert torch.allclose(fused(faces), expected, atol=1e-5)

    _in_threads(calls, copies=8)
    assert torch.jit.onednn_fusion_enabled() is False
