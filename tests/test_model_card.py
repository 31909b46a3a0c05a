"""Model cards (Mitchell et al., 2019) rendered from what a weight file holds, so that the card a
user reads cannot drift from the model: the repository's MODEL_CARD.md is the shipped default's."""

import json
from pathlib import Path

import pytest

import openfer
from openfer.checkpoint import read_header, save_weights
from openfer.cli import main
from openfer.errors import OpenferError
from openfer.model_card import model_card

ROOT = Path(__file__).resolve().parents[1]
PER_CLASS = {"happiness": {"precision": 0.9, "recall": 0.8, "f1": 0.847, "support": 60},
             "sadness": {"precision": 0.5, "recall": 0.6, "f1": 0.5455, "support": 40}}


def _weights(tmp_path, **meta):
    model = openfer.create_model("fernet_s", classes=["happy", "sad"])
    return save_weights(model, tmp_path / "two.safetensors", **meta)


def test_the_repositorys_model_card_is_the_shipped_defaults():
    card = (ROOT / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert card == model_card("default"), (
        "MODEL_CARD.md differs from the shipped default's metadata: regenerate it with "
        "`openfer card default > MODEL_CARD.md`")


def test_the_default_card_states_what_a_user_must_know():
    card = openfer.model_card("default")
    meta = openfer.load_model("default").meta
    assert "0 anger, 1 disgust, 2 fear, 3 happiness, 4 sadness, 5 surprise, 6 neutral" in card
    assert "1×48×48 grayscale, (pixel / 255 − 0.5) / 0.25" in card
    assert f"{100 * meta.metrics['fer2013']['accuracy']:.2f} %" in card
    assert meta.command in card and meta.license in card
    assert f"{100 * meta.int8['check']['top1_agreement']:.2f} % of the fp32 top labels" in card
    for heading in ("## Intended use", "## Limitations and ethical considerations"):
        assert heading in card
    assert "FER2013's labels are noisy" in card and "Article 5(1)(f)" in card


def test_a_card_reports_per_class_metrics_the_flip_and_how_to_repeat_them(tmp_path):
    path = _weights(tmp_path, training_data="fer2013 Training (fer2013.csv)", metrics={
        "fer2013": {"accuracy": 0.72, "mean_class_accuracy": 0.7, "macro_f1": 0.6963, "n": 100,
                    "split": "PublicTest", "tta_flip": True, "per_class": PER_CLASS}})
    card = model_card(path)
    assert ("| fer2013 PublicTest (flip TTA) | 100 | 72.00 % | 70.00 % | 69.63 % | 62.5-79.9 % |"
            in card)
    assert "| happiness | 60 | 90.00 % | 80.00 % | 84.70 % |" in card
    assert f"openfer eval --model {path} --dataset fer2013 --root PATH --split PublicTest " \
           "--tta --json" in card
    assert "No reduced-precision check is recorded" in card


def test_a_card_says_what_is_not_recorded_and_keeps_fer2013s_caveat_to_its_models(tmp_path):
    card = model_card(_weights(tmp_path, training_data="rafdb train (RAF-DB/basic)"))
    assert "No measured metrics are recorded in this file." in card
    assert "| license | not recorded |" in card
    assert "FER2013's labels" not in card and "An expression is not an emotion" in card


def test_openfer_card_prints_the_card_or_its_facts_as_json(tmp_path, capsys):
    path = _weights(tmp_path)
    assert main(["card", str(path)]) == 0
    assert capsys.readouterr().out == model_card(path)
    assert main(["card", str(path), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    model = openfer.load_model(path)
    assert facts["sha256"] == read_header(path)["sha256"]
    assert facts["parameters"] == sum(p.numel() for p in model.parameters())
    assert facts["bytes"] == path.stat().st_size and facts["meta"]["classes"] == [
        "happiness", "sadness"]


def test_an_ensembles_card_says_how_to_measure_it_then_gives_each_members_card(capsys):
    members = ["default", "fernet_s.fer2013"]
    card = model_card(members)
    assert card.startswith("# Model card: ensemble of 2 models\n")
    assert ("openfer eval --model default --model fernet_s.fer2013 --dataset fer2013 --root PATH "
            "--split PublicTest --json") in card
    for name in members:                      # each member's card, one heading level down
        member = model_card(name)
        demoted = "\n".join("#" + line if line.startswith("#") else line
                             for line in member.split("\n"))
        assert demoted in card
    assert main(["card", *members]) == 0 and capsys.readouterr().out == card
    assert main(["card", *members, "--json"]) == 0
    assert [f["name"] for f in json.loads(capsys.readouterr().out)] == members
    assert model_card(["default"]) == model_card("default")


def test_models_that_cannot_form_an_ensemble_get_no_card(tmp_path, capsys):
    with pytest.raises(OpenferError, match="cannot join default in an ensemble: its classes"):
        model_card(["default", _weights(tmp_path)])
    assert main(["card", "default", str(_weights(tmp_path)), "--json"]) == 2   # nor facts
    assert "cannot join default in an ensemble" in capsys.readouterr().err


def test_a_card_of_an_unknown_model_names_what_exists():
    with pytest.raises(OpenferError, match="shipped: .*default"):
        model_card("no_such_model")


def test_recorded_metrics_feed_the_card_plain_and_flipped(small_fer2013, tmp_path):
    from openfer.data import load_dataset
    from openfer.evaluate import evaluate, recorded_metrics

    model = openfer.create_model("deep_emotion")
    test = load_dataset("fer2013", small_fer2013, "PublicTest")
    recorded = recorded_metrics(model, test, "PublicTest")
    assert recorded["accuracy"] == round(evaluate(model, test)["accuracy"], 4)
    assert recorded["with_flip_tta"]["accuracy"] == round(
        evaluate(model, test, tta=True)["accuracy"], 4)
    assert recorded["tta_flip"] is False and recorded["split"] == "PublicTest"
    assert sum(row["support"] for row in recorded["per_class"].values()) == recorded["n"] == 2
    card = model_card(save_weights(model, tmp_path / "m.safetensors",
                                   metrics={"fer2013": recorded}))
    assert "| fer2013 PublicTest, with flip TTA | 2 |" in card and "| neutral | 1 |" in card
    assert "| — | — |" not in card


def test_an_onnx_export_has_a_card_saying_whose_measurements_it_carries(tmp_path):
    pytest.importorskip("onnx")
    import hashlib

    from openfer.export import export_onnx

    onnx = export_onnx(openfer.load_model("fernet_s.fer2013"), tmp_path / "s.onnx")
    card = model_card(onnx)
    assert f"(ONNX, fp32); SHA-256 of the file `{hashlib.sha256(onnx.read_bytes()).hexdigest()}`" \
        in card
    assert "Measured on the openfer weights this file was exported from" in card
    assert "openfer eval" not in card and "Reduced precision" not in card
    with pytest.raises(OpenferError, match="is an ONNX export: .* --backend onnx"):
        openfer.load_model(onnx)            # eval, training and export take the safetensors
