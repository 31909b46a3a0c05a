"""Fast CPU inference (openfer.models.fusion): the traced oneDNN graph, fp32 and bf16, gives the
model's own answers on real faces, falls back to eager mode with a warning, and never touches
the model it was made from."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import openfer
from openfer.data import load_dataset
from openfer.data.transforms import to_model_input
from openfer.infer import Recognizer
from openfer.models.fusion import (MAX_GRAPHS, OWN_GRAPH_AFTER, FusedModel, auto_precision,
                                   fuse_for_inference)


@pytest.fixture(scope="module")
def publictest(fer2013_csv):
    return load_dataset("fer2013", fer2013_csv, "PublicTest")


def _faces(test, n):
    return test.images[:n].permute(0, 2, 3, 1).numpy()          # (n, 48, 48, 1) uint8


def _registered():
    from openfer.models.registry import list_models
    return list_models()


@pytest.mark.parametrize("name", _registered())
def test_every_registered_architecture_runs_in_the_fused_graph(name):
    """No architecture falls back to eager mode (FMPN and the multi-task CNN did, through a
    branch on the input's channel count); the graph gives the model's own probabilities."""
    torch.manual_seed(0)
    model = openfer.create_model(name).eval()
    faces = np.random.default_rng(0).integers(
        0, 256, (2, *model.meta.input_size, model.meta.channels), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*running the model eagerly")
        rec = Recognizer(model, detector="none", precision="fp32")
        got = rec.classify(faces)
    assert rec.model.graph is not None and rec.model.eager_reason is None
    x = to_model_input(torch.from_numpy(faces).permute(0, 3, 1, 2), model.meta)
    with torch.inference_mode():
        output = model(x)
    expected = (output if isinstance(output, torch.Tensor) else output[0]).softmax(-1).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_fp32_graph_gives_the_models_probabilities_on_real_faces(publictest):
    model = openfer.load_model("default")
    x = to_model_input(publictest.images[:256], model.meta)
    with torch.no_grad():
        expected = model(x).softmax(-1)
    fused = fuse_for_inference(model, "fp32")
    with torch.inference_mode():
        got = fused(x).softmax(-1)
    assert fused.graph is not None and fused.eager_reason is None
    assert (got - expected).abs().max() < 1e-4


@pytest.mark.parametrize("name", ["fernet_m_distilled.fer2013", "fernet_s.fer2013"])  # shipped
def test_bf16_keeps_the_top_label_and_the_publictest_accuracy(publictest, name):
    """bfloat16 agrees with fp32 on >= 99 % of 1,000 PublicTest faces' top labels and its
    accuracy on them moves by at most half a point (measured: 99.6-99.8 %, 0.1 point)."""
    faces = _faces(publictest, 1000)
    reference = Recognizer(name, detector="none", precision="fp32")
    assert tuple(e.value for e in publictest.classes) == reference.meta.classes  # same order
    labels = publictest.labels[:1000]
    fp32 = reference.classify(faces).argmax(1)
    bf16 = Recognizer(name, detector="none", precision="bf16").classify(faces).argmax(1)
    assert (fp32 == bf16).mean() >= 0.99
    assert abs((fp32 == labels).mean() - (bf16 == labels).mean()) <= 0.005


def test_an_ensemble_runs_each_member_in_the_precision_its_own_records_allow(publictest):
    """An ensemble records no precision checks of its own: under ``auto`` each member runs as it
    would alone (here the default and FERNet-S: int8 and bf16 on this project's EPYC and AMX
    Xeon, fp32 where neither is checked), and the answers stay the fp32 ensemble's."""
    from openfer.evaluate import evaluate
    from openfer.models.ensemble import load_ensemble

    members, faces = ["default", "fernet_s.fer2013"], _faces(publictest, 1000)
    alone = [Recognizer(m, detector="none", precision="auto").precision for m in members]
    both = Recognizer(members, detector="none", precision="auto")
    assert both.precision == (alone[0] if alone[0] == alone[1] else "+".join(alone))
    fp32 = Recognizer(members, detector="none", precision="fp32").classify(faces)
    assert (both.classify(faces).argmax(1) == fp32.argmax(1)).mean() >= 0.99
    subset = publictest.subset(np.arange(1000))
    reports = [evaluate(load_ensemble(members), subset, precision=p)
               for p in ("fp32", "auto")]
    assert reports[1]["precision"] == both.precision
    assert abs(reports[0]["accuracy"] - reports[1]["accuracy"]) <= 0.005


def test_the_original_model_is_left_as_it_was():
    model = openfer.create_model("fernet_s").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = fuse_for_inference(model, "bf16")
    with torch.inference_mode():
        fused(torch.randn(2, 1, 48, 48))
    assert model.training and next(model.parameters()).dtype == torch.float32
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_model_the_tracer_cannot_follow_runs_eagerly_with_a_warning(data_dependent_model):
    model = data_dependent_model().eval()      # a branch on the data: a trace would freeze it
    fused = fuse_for_inference(model, "fp32")
    positive = torch.rand(2, 1, 8, 8)
    with pytest.warns(RuntimeWarning, match="running the model eagerly"):
        with torch.no_grad():
            fused(positive)                      # traced on a positive input...
    with torch.no_grad():
        negative = -positive
        assert torch.allclose(fused(negative), model(negative), atol=1e-6)   # ...not frozen
    assert fused.graph is None


def test_bf16_graph_without_onednn_support_still_runs_as_torchscript(publictest):
    """Deep-Emotion's spatial transformer is refused by oneDNN Graph in bf16: the frozen graph
    then runs as plain TorchScript, silently, giving the eager bf16 model's answers on real faces
    (bf16 itself moves 6 % of this model's top labels: its metadata keeps it fp32 under auto)."""
    model = openfer.load_model("deep_emotion.fer2013")
    x = to_model_input(publictest.images[:256], model.meta)
    fused = fuse_for_inference(model, "bf16")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with torch.inference_mode():
            got = fused(x)
    with torch.no_grad():
        expected = fused.model(x.bfloat16().contiguous(memory_format=torch.channels_last))
    assert fused.graph is not None and not fused.onednn
    assert (got.argmax(1) == expected.argmax(1)).float().mean() >= 0.99


def test_recurring_batch_sizes_get_their_own_graph_up_to_a_bound_and_the_same_answers():
    model = openfer.load_model("default")
    fused = fuse_for_inference(model, "fp32")
    x = torch.randn(MAX_GRAPHS + 4, 1, 48, 48)
    with torch.inference_mode():
        assert (fused(x[:3]) - model(x[:3])).abs().max() < 1e-4          # the first graph
        for n in range(1, MAX_GRAPHS + 5):
            for _ in range(OWN_GRAPH_AFTER - 1):                         # shared graph so far
                assert (fused(x[:n]) - model(x[:n])).abs().max() < 1e-4, n
        assert fused._own_graphs == 0
        for n in range(1, MAX_GRAPHS + 5):                                # now recurring
            assert (fused(x[:n]) - model(x[:n])).abs().max() < 1e-4, n
    assert fused._own_graphs == MAX_GRAPHS                 # the bound; the rest share the first
    assert len(fused._graphs) == MAX_GRAPHS + 1


def test_recognizer_precision_is_checked_and_reported():
    with pytest.raises(openfer.OpenferError, match="precision must be"):
        Recognizer("default", detector="none", precision="fp16")
    with pytest.raises(openfer.OpenferError, match="torch backend"):
        Recognizer("default", detector="none", backend="onnx", precision="bf16")
    auto = Recognizer("default", detector="none")        # its metadata records bf16 and int8
    assert auto.meta.bf16["top1_agreement"] >= 0.99
    assert auto.precision == auto_precision(auto.meta)
    assert isinstance(auto.model, FusedModel)
    unchecked = Recognizer("deep_emotion.fer2013", detector="none")   # bf16 agrees on 94 %
    assert unchecked.meta.bf16 is None and unchecked.precision == "fp32"
    assert Recognizer("default", detector="none", backend="onnx").precision is None


def test_float_faces_in_0_1_classify_as_their_uint8_images(publictest):
    faces = _faces(publictest, 16)
    rec = Recognizer("default", detector="none", precision="fp32")
    as_uint8 = rec.classify(faces)
    as_float = rec.classify(faces.astype(np.float32) / 255.0)
    assert np.abs(as_uint8 - as_float).max() < 1e-5


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_float_faces_of_another_size_are_resized_as_uint8_faces_are(publictest, backend):
    """One rule for float faces on both backends and in ``to_model_input``: resized to the
    model's size like ``uint8`` faces (before, the ONNX path only cropped them)."""
    if backend == "onnx":
        pytest.importorskip("onnxruntime")
    big = torch.nn.functional.interpolate(publictest.images[:16].float(), size=(64, 64),
                                          mode="bilinear", antialias=True)
    big = big.round().clamp(0, 255).byte()
    rec = Recognizer("default", detector="none", precision="fp32", backend=backend)
    as_uint8 = rec.classify(big.permute(0, 2, 3, 1).numpy())
    as_float = rec.classify(big.permute(0, 2, 3, 1).numpy().astype(np.float32) / 255.0)
    assert as_float.shape == (16, 7)
    assert np.abs(as_uint8 - as_float).max() < 0.02      # rounding after resizing, at most
    meta = rec.meta
    x_uint8 = to_model_input(big, meta)
    x_float = to_model_input(big.float() / 255.0, meta)
    assert x_float.shape == x_uint8.shape == (16, meta.channels, *meta.input_size)
    assert (x_float - x_uint8).abs().max() * min(meta.std) <= 1 / 255 + 1e-6


@pytest.mark.parametrize("side", [48, 56, 64])
def test_classify_resizes_and_crops_as_the_model_was_trained(publictest, side):
    """A model trained on centre crops (load 56 px -> input 48 px) gets every face resized to
    56 px and cropped, whatever size it arrives in: the scorer's shortcut for faces already at
    the input size applies only to models that do not crop."""
    model = openfer.load_model("fernet_s.fer2013")
    model.meta = model.meta.replace(crop_fraction=48 / 56)
    faces = torch.nn.functional.interpolate(publictest.images[:32].float(), size=(side, side),
                                            mode="bilinear", antialias=True)
    faces = faces.round().clamp(0, 255).byte()
    with torch.no_grad():
        expected = model(to_model_input(faces, model.meta)).softmax(-1).numpy()
    got = Recognizer(model, detector="none", precision="fp32").classify(
        faces.permute(0, 2, 3, 1).numpy())
    assert np.abs(got - expected).max() < 1e-4


@pytest.mark.parametrize("features, unit", [
    ({"amx_bf16": True, "avx512_bf16": True}, "AMX-BF16"),       # Intel Xeon Sapphire Rapids
    ({"amx_bf16": False, "avx512_bf16": True}, "AVX512-BF16"),   # AMD EPYC Zen 4
    ({"amx_bf16": False, "avx512_bf16": False, "avx512_f": True}, None),   # plain AVX-512
    ({"avx2": True}, None),                                      # AVX2-only EPYC
])
def test_bfloat16_is_native_with_amx_or_avx512_bf16(monkeypatch, features, unit):
    """bf16 ran 1.9x (inference) and 1.75x (training) faster than fp32 on an AVX512-BF16 EPYC,
    7x / 2.5x with AMX; emulated on AVX2 it was 13x slower, so ``auto`` needs one of the two."""
    from openfer.models import fusion

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: features, raising=False)
    for limit in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(limit, raising=False)
    assert fusion.bf16_unit() == unit
    assert fusion.native_bf16() is (unit is not None)


@pytest.mark.parametrize("limit, unit", [
    ("ALL", "AMX-BF16"), ("AVX512_CORE_AMX", "AMX-BF16"), ("AVX512_CORE_BF16", "AVX512-BF16"),
    ("AVX512_CORE", None), ("avx2", None)])
def test_a_unit_that_onednns_isa_limit_disables_does_not_count(monkeypatch, limit, unit):
    """``ONEDNN_MAX_CPU_ISA=AVX2`` makes oneDNN emulate bf16 even on a CPU with AMX (how
    older CPUs were approximated for benchmarks/results), so ``auto`` must not choose it."""
    from openfer.models import fusion

    monkeypatch.setattr(torch.cpu, "get_capabilities",
                        lambda: {"amx_bf16": True, "avx512_bf16": True}, raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", limit)
    assert fusion.bf16_unit() == unit


def test_an_unreadable_cpu_counts_as_emulating_bfloat16(monkeypatch):
    from openfer.models import fusion

    def broken():
        raise RuntimeError("cpuinfo failed")

    monkeypatch.setattr(torch.cpu, "get_capabilities", broken, raising=False)
    assert fusion.bf16_unit() is None and not fusion.native_bf16()

