"""The model that ships inside the package: complete metadata, works offline out of the box."""

import json

import pytest

import openfer
from conftest import SHARED
from openfer.cli import main


def test_default_model_ships_with_complete_metadata():
    model = openfer.load_model("default")
    meta = model.meta
    assert meta.classes == ("anger", "disgust", "fear", "happiness", "sadness", "surprise",
                            "neutral")
    assert meta.input_size and meta.channels and meta.mean and meta.std and meta.alignment
    assert meta.metrics["fer2013"]["split"] == "PublicTest"
    assert 0.4 < meta.metrics["fer2013"]["accuracy"] < 1.0
    assert meta.command.startswith("openfer train --recipe")
    assert "FER2013" in meta.license and "FER2013" in meta.training_data


def test_default_model_predicts_on_its_own_publictest_numbers(fer2013_csv):
    from openfer.data import load_dataset
    from openfer.evaluate import evaluate
    model = openfer.load_model("default")
    report = evaluate(model, load_dataset("fer2013", fer2013_csv, "PublicTest",
                                          image_size=model.meta.input_size,
                                          channels=model.meta.channels),
                      tta=model.meta.metrics["fer2013"].get("tta_flip", False))
    assert report["accuracy"] == pytest.approx(model.meta.metrics["fer2013"]["accuracy"],
                                               abs=1e-4)


def test_predict_needs_no_model_argument(capsys):
    photo = SHARED / "data" / "photos" / "group6.jpg"
    if not photo.is_file():
        pytest.skip(f"{photo} not found")
    assert main(["predict", str(photo), "--detector", "haar", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) >= 4 and all(r["label"] in openfer.load_model("default").meta.classes
                                     for r in records)
