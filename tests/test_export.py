"""ONNX export: same probabilities as torch, metadata inside, int8 option, onnx backend."""

import numpy as np
import onnx
import pytest
import torch

import openfer
from openfer.checkpoint import save_weights
from openfer.cli import main
from openfer.data import load_dataset
from openfer.data.transforms import to_model_input
from openfer.export import OnnxClassifier, export_onnx, output_nodes
from openfer.infer import Recognizer


@pytest.fixture(scope="module")
def real_faces(fer2013_csv):
    return load_dataset("fer2013", fer2013_csv, "PublicTest").images[:256]


@pytest.mark.parametrize("name", ["deep_emotion", "deep_emotion_paper"])
def test_onnx_matches_torch_within_1e4(tmp_path, real_faces, name):
    torch.manual_seed(0)
    model = openfer.create_model(name).eval()
    path = export_onnx(model, tmp_path / "m.onnx", dynamic_batch=True)
    onnx_model = OnnxClassifier(path)
    x = to_model_input(real_faces, model.meta)
    with torch.inference_mode():
        expected = model(x).softmax(-1).numpy()
    got = torch.from_numpy(onnx_model(x)).softmax(-1).numpy()
    assert np.abs(got - expected).max() < 1e-4
    assert onnx_model.meta.classes == model.meta.classes


def _registered():
    from openfer.models.registry import list_models
    return list_models()


@pytest.mark.parametrize("name", _registered())
def test_every_registered_architecture_exports_and_gives_torchs_logits(tmp_path, name):
    """Each architecture as created (untrained: some give logits of 1e11, some of 1e-30, so
    the comparison is relative to their scale) at batch 2, through the dynamic-batch file."""
    torch.manual_seed(0)
    model = openfer.create_model(name).eval()
    x = torch.rand(2, model.meta.channels, *model.meta.input_size)
    with torch.inference_mode():
        output = model(x)
    expected = (output if isinstance(output, torch.Tensor) else output[0]).numpy()
    got = OnnxClassifier(export_onnx(model, tmp_path / f"{name}.onnx"))(x)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


def test_metadata_travels_in_the_onnx_file(tmp_path):
    model = openfer.create_model("deep_emotion", classes=["happy", "sad", "neutral"])
    path = export_onnx(model, tmp_path / "m.onnx")
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert "openfer" in props and '"happiness"' in props["openfer"]


def test_int8_export_is_smaller_and_loads(tmp_path, real_faces):
    model = openfer.create_model("deep_emotion").eval()
    plain = export_onnx(model, tmp_path / "fp32.onnx", dynamic_batch=True)
    with pytest.warns(UserWarning, match="without calibration faces"):
        quantized = export_onnx(model, tmp_path / "int8.onnx", dynamic_batch=True,
                                quantize="int8")
    assert quantized.stat().st_size < plain.stat().st_size
    out = OnnxClassifier(quantized)(to_model_input(real_faces[:8], model.meta))
    assert out.shape == (8, 7) and OnnxClassifier(quantized).quantized == "int8"


def test_int8_calibration_works_on_a_fixed_batch_export(tmp_path, real_faces):
    """A model exported without --dynamic-batch takes one face per call: calibration feeds it so."""
    model = openfer.create_model("deep_emotion").eval()
    quantized = export_onnx(model, tmp_path / "int8.onnx", dynamic_batch=False, quantize="int8",
                            calibration=real_faces[:32].numpy(), calibration_size=32)
    out = OnnxClassifier(quantized)(to_model_input(real_faces[:1], model.meta))
    assert out.shape == (1, 7) and np.isfinite(out).all()


def test_int8_keeps_the_classifier_head_in_fp32(tmp_path, real_faces):
    """The linear layer that computes the logits (``Gemm``) is not quantised: its weight is a
    float initialiser, not a ``DequantizeLinear`` output (:func:`openfer.export.output_nodes`)."""
    model = openfer.load_model("fernet_s.fer2013")
    fp32 = export_onnx(model, tmp_path / "fp32.onnx", dynamic_batch=True)
    assert output_nodes(onnx.load(str(fp32)).graph) == ["/fc/Gemm"]
    quantized = export_onnx(model, tmp_path / "int8.onnx", dynamic_batch=True, quantize="int8",
                            calibration=real_faces[:64].numpy(), calibration_size=64)
    graph = onnx.load(str(quantized)).graph
    head = next(n for n in graph.node if n.name == "/fc/Gemm")
    floats = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    assert head.input[1] in floats
    assert any(n.op_type == "DequantizeLinear" for n in graph.node)      # the rest is int8


def test_export_cli_and_onnx_backend_agree_with_torch(tmp_path):
    weights = save_weights(openfer.create_model("deep_emotion"), tmp_path / "m.safetensors")
    assert main(["export", "--model", str(weights), "--output", str(tmp_path / "m.onnx"),
                 "--dynamic-batch"]) == 0
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48, 1), dtype=np.uint8)
    torch_probs = Recognizer(weights, detector="none", precision="fp32").classify(faces)
    onnx_probs = Recognizer(tmp_path / "m.onnx", detector="none").classify(faces)
    auto_probs = Recognizer(weights, detector="none", backend="onnx").classify(faces)
    assert np.abs(torch_probs - onnx_probs).max() < 1e-4
    assert np.abs(torch_probs - auto_probs).max() < 1e-4


def test_broken_onnx_file_is_reported(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(openfer.OpenferError, match="onnxruntime cannot load it"):
        OnnxClassifier(bad)


def test_int8_keeps_the_top_label_and_the_accuracy_on_publictest(tmp_path, fer2013_csv):
    """Static int8 (calibrated on Training faces) agrees with fp32 on >= 98.5 % of PublicTest
    top labels (99.1 % measured with FERNet-M on an Intel Xeon; 99.0 % with the distilled
    FERNet-M on an AVX2-only AMD EPYC, where full 8-bit weights saturate and gave 88.1 %) and
    loses at most half a point of accuracy."""
    model = openfer.load_model("default")
    test = load_dataset("fer2013", fer2013_csv, "PublicTest", image_size=model.meta.input_size,
                        channels=model.meta.channels)
    x = to_model_input(test.images, model.meta).numpy()
    labels = np.asarray(test.labels)
    fp32 = OnnxClassifier(export_onnx(model, tmp_path / "fp32.onnx", dynamic_batch=True))
    training = load_dataset("fer2013", fer2013_csv, "Training",
                            image_size=model.meta.load_size, channels=model.meta.channels)
    int8 = OnnxClassifier(export_onnx(model, tmp_path / "int8.onnx", dynamic_batch=True,
                                      quantize="int8", calibration=training))
    logits = np.concatenate([int8(x[i:i + 512]) for i in range(0, len(x), 512)])
    top_fp32 = np.concatenate([fp32(x[i:i + 512]).argmax(1) for i in range(0, len(x), 512)])
    top_int8 = logits.argmax(1)
    agreement = (top_fp32 == top_int8).mean()
    # the head in fp32: no two classes of a face share a score (20.7 % did with a quantised head)
    assert not (np.diff(np.sort(logits, 1), axis=1) == 0).any()
    assert agreement >= 0.985, f"int8 keeps the top label on {agreement:.2%} of PublicTest faces"
    accuracy_fp32, accuracy_int8 = (top_fp32 == labels).mean(), (top_int8 == labels).mean()
    assert accuracy_int8 >= accuracy_fp32 - 0.005, (accuracy_fp32, accuracy_int8)


def test_an_onnx_file_without_readable_openfer_metadata_is_refused_by_name(tmp_path):
    from openfer.errors import OpenferError
    from openfer.export import read_onnx

    path = export_onnx(openfer.create_model("deep_emotion"), tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    for value, message in ((None, "has no openfer metadata"), ("{not json", "is not JSON")):
        del proto.metadata_props[:]
        if value is not None:
            entry = proto.metadata_props.add()
            entry.key, entry.value = "openfer", value
        broken = tmp_path / "broken.onnx"
        onnx.save(proto, str(broken))
        for read in (read_onnx, OnnxClassifier):
            with pytest.raises(OpenferError, match=message) as error:
                read(broken)
            assert str(broken) in str(error.value) and "openfer export" in str(error.value)
