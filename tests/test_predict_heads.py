"""Multi-task models in prediction: Emotion-GCN's valence and arousal, the multi-task network's
age, gender and race come out of ``openfer predict``, the Python API and the web service next to
the expression, equal to what the model computes eagerly, for the heads its training saw labels
for."""

import csv
import io
import json

import cv2
import numpy as np
import pytest
import torch

import openfer
from openfer.checkpoint import save_weights
from openfer.cli import main
from openfer.data import ArrayFaceDataset
from openfer.evaluate import predict_heads, predict_probabilities
from openfer.infer import Recognizer
from openfer.models.multitask import ATTRIBUTE_CLASSES


@pytest.fixture(scope="module")
def faces(fer2013_csv):
    """Four real FER2013 PublicTest faces, (N, 48, 48, 1) uint8."""
    from openfer.data import load_dataset
    return load_dataset("fer2013", fer2013_csv, "PublicTest").images[:4].permute(0, 2, 3, 1) \
        .numpy()


def trained(model, heads):
    """``model`` as if training had seen labels for ``heads`` (what ``openfer train``
    records); its predictions are not judged here."""
    model.meta = model.meta.replace(heads_trained=tuple(heads))
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("heads")
    heads = ("gender", "race", "age", "valence")
    return {
        "gcn": save_weights(trained(openfer.create_model("emotion_gcn_breg_next"),
                                    ("valence", "arousal")), folder / "gcn.safetensors"),
        "multitask": save_weights(trained(openfer.create_model(
            "multitask", backbone="fernet_s", heads=heads), heads),
            folder / "multitask.safetensors"),
    }


def eager(path, faces):
    """The model's own outputs for ``faces``, without the inference pipeline."""
    model = openfer.load_model(path).eval()
    dataset = ArrayFaceDataset(faces[..., 0], np.zeros(len(faces), np.int64), model.meta.classes,
                               name="faces")
    return model, predict_probabilities(model, dataset), predict_heads(model, dataset)


def test_emotion_gcn_predicts_valence_and_arousal_with_the_expression(models, faces):
    model, probs, heads = eager(models["gcn"], faces)
    rec = Recognizer(models["gcn"], detector="none", precision="fp32")
    assert rec.heads == [("valence", None), ("arousal", None)]
    scores = rec.score(faces)                  # the fused graph's rows: classes, then heads
    k = len(model.meta.classes)
    np.testing.assert_allclose(scores[:, :k], probs, atol=1e-5)
    np.testing.assert_allclose(scores[:, k:], np.hstack([heads["valence"], heads["arousal"]]),
                               atol=1e-5)
    np.testing.assert_array_equal(rec.classify(faces), scores[:, :k])
    for result, row in zip(rec.predict(list(faces)), scores):   # through the face crop
        face = result.faces[0]
        assert set(face.extras) == {"valence", "arousal"}
        assert face.extras["valence"] == pytest.approx(row[k], rel=0.05, abs=0.05)
        assert face.extras["arousal"] == pytest.approx(row[k + 1], rel=0.05, abs=0.05)


def test_the_multitask_network_predicts_age_gender_race(models, faces):
    _, probs, heads = eager(models["multitask"], faces)
    rec = Recognizer(models["multitask"], detector="none", precision="fp32")
    assert [name for name, _ in rec.heads] == ["gender", "race", "age", "valence"]
    assert rec.meta.input_size == (48, 48)                 # no resampling: exact comparison
    record = rec.predict(faces[0])[0].records()[0]
    for name in ("gender", "race", "age"):
        expected = torch.from_numpy(heads[name][0]).softmax(-1).numpy()
        np.testing.assert_allclose(list(record[f"{name}_scores"].values()), expected, atol=1e-4)
        assert list(record[f"{name}_scores"]) == list(ATTRIBUTE_CLASSES[name])
        assert record[name] == ATTRIBUTE_CLASSES[name][int(expected.argmax())]
    assert record["valence"] == pytest.approx(float(heads["valence"][0, 0]), abs=1e-3)
    np.testing.assert_allclose(list(record["scores"].values()), probs[0], atol=1e-4)


def test_predict_cli_writes_the_heads_in_json_csv_and_text(models, faces, tmp_path, capsys):
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), faces[0])
    common = ["predict", str(path), "--model", str(models["gcn"]), "--no-detect"]
    assert main(common + ["--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert isinstance(record["valence"], float) and isinstance(record["arousal"], float)
    assert main(common + ["--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert float(rows[0]["valence"]) == record["valence"]
    assert float(rows[0]["arousal"]) == record["arousal"]
    assert main(common) == 0
    assert f"valence {record['valence']}, arousal {record['arousal']}" in \
        capsys.readouterr().out
    rec = Recognizer(models["multitask"], detector="none")
    assert main(["predict", str(path), "--model", str(models["multitask"]), "--no-detect",
                 "--csv"]) == 0
    row = next(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert row["age"] == rec.predict(faces[0])[0].faces[0].extras["age"]


def test_only_heads_that_training_saw_labels_for_are_output(models, faces, tmp_path):
    """FER2013 has no age, gender or race: a multi-task network trained on it has heads that
    learnt nothing, and weights that do not record what their heads learnt show none."""
    model = openfer.load_model(models["multitask"])
    for recorded, shown in (((), []), (None, []), (("race",), ["race"])):
        model.meta = model.meta.replace(heads_trained=recorded)
        path = save_weights(model, tmp_path / "m.safetensors")
        rec = Recognizer(path, detector="none")
        assert [name for name, _ in rec.heads] == shown
        extras = rec.predict(faces[0])[0].faces[0].extras
        assert {key for key in extras if not key.endswith("_scores")} == set(shown)
    from openfer.model_card import model_card
    assert "extra heads trained on labels, and shown by `openfer predict`: race |" in \
        model_card(path)


def test_onnx_export_carries_the_trained_heads(models, faces, tmp_path):
    pytest.importorskip("onnxruntime")
    from openfer.export import OnnxClassifier, export_onnx

    for key in ("gcn", "multitask"):
        torch_rec = Recognizer(models[key], detector="none", precision="fp32")
        path = export_onnx(openfer.load_model(models[key]), tmp_path / f"{key}.onnx")
        assert OnnxClassifier(path).heads == torch_rec.heads
        for onnx_rec in (Recognizer(path, detector="none"),
                         Recognizer(models[key], detector="none", backend="onnx")):
            assert onnx_rec.heads == torch_rec.heads
            np.testing.assert_allclose(onnx_rec.score(faces), torch_rec.score(faces),
                                       atol=1e-4, rtol=1e-4)
    # int8 keeps the heads as outputs too
    quantized = export_onnx(openfer.load_model(models["multitask"]), tmp_path / "int8.onnx",
                            quantize="int8", calibration=faces.transpose(0, 3, 1, 2))
    record = Recognizer(quantized, detector="none").predict(faces[0])[0].records()[0]
    assert set(record["age_scores"]) == set(ATTRIBUTE_CLASSES["age"])
    assert sum(record["age_scores"].values()) == pytest.approx(1, abs=1e-3)


def test_an_ensemble_averages_the_heads_its_members_share(models, faces, tmp_path):
    """Members with the same trained heads: the ensemble's rows are the mean of the members'
    (class probabilities, values, categorical probabilities); members whose heads differ give
    the expression alone, as a plain classifier does."""
    assert Recognizer("default", detector="none").heads == []
    torch.manual_seed(1)
    heads = ("gender", "race", "age", "valence")
    other = save_weights(trained(openfer.create_model("multitask", backbone="fernet_s",
                                                      heads=heads), heads),
                         tmp_path / "other.safetensors")
    for precision in ("fp32", "auto"):
        both = Recognizer([models["multitask"], other], detector="none", precision=precision)
        assert [name for name, _ in both.heads] == list(heads)
        alone = [Recognizer(m, detector="none", precision=precision).score(faces)
                 for m in (models["multitask"], other)]
        np.testing.assert_allclose(both.score(faces), (alone[0] + alone[1]) / 2, atol=1e-5)
    record = both.predict(faces[0])[0].records()[0]
    assert sum(record["age_scores"].values()) == pytest.approx(1, abs=1e-3)
    valence = len(both.meta.classes) + sum(len(c) for _, c in both.heads if c)  # its column
    assert record["valence"] == pytest.approx((alone[0][0, valence] + alone[1][0, valence]) / 2,
                                              abs=1e-3)
    mixed = Recognizer([models["multitask"], "default"], detector="none")
    assert mixed.heads == [] and mixed.predict(faces[0])[0].faces[0].extras == {}
