"""Image folders whose sub-folders are emotion names or numbers with a class list."""

import numpy as np
import pytest
from PIL import Image

from openfer.data import load_dataset
from openfer.errors import DataFormatError, OpenferError
from openfer.labels import Emotion


def _image(path, size=(60, 40), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
    data = np.random.default_rng(0).integers(0, 255, (size[1], size[0], channels), np.uint8)
    Image.fromarray(data.squeeze() if channels == 1 else data, mode).save(path)


def test_emotion_named_folders_with_aliases(tmp_path):
    _image(tmp_path / "Happy" / "a.jpg")
    _image(tmp_path / "angry" / "b.png", mode="L")
    _image(tmp_path / "angry" / "c.png", mode="RGBA")
    (tmp_path / "angry" / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "angry" / "notes.txt").write_text("not an image")
    dataset = load_dataset("folder", tmp_path, "all", image_size=(48, 48), channels=1)
    assert dataset.classes == (Emotion.HAPPINESS, Emotion.ANGER)   # canonical order
    assert sorted(dataset.labels.tolist()) == [0, 1, 1]
    assert dataset.dropped["non-image files"] == 1
    image, _ = dataset[0]
    assert image.shape == (1, 48, 48)


def test_numbered_folders_need_a_class_list(tmp_path):
    _image(tmp_path / "train" / "00" / "a.jpg")
    _image(tmp_path / "train" / "03" / "b.jpg")
    with pytest.raises(OpenferError, match="numbered class folders need an explicit class list"):
        load_dataset("folder", tmp_path, "train", image_size=(48, 48), channels=3)
    classes = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger"]
    dataset = load_dataset("folder", tmp_path, "train", image_size=(48, 48), channels=3,
                           classes=classes)
    assert len(dataset.classes) == 7
    assert {dataset.classes[i] for i in dataset.labels} == {Emotion.NEUTRAL, Emotion.SURPRISE}


def test_unknown_folder_name_is_reported(tmp_path):
    _image(tmp_path / "bored" / "a.jpg")
    with pytest.raises(OpenferError, match="bored: sub-folder name is not an emotion"):
        load_dataset("folder", tmp_path, "all", image_size=(48, 48), channels=1)


def test_corrupt_image_is_reported_by_name(tmp_path):
    _image(tmp_path / "sad" / "good.jpg")
    (tmp_path / "sad" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    dataset = load_dataset("folder", tmp_path, "all", image_size=(48, 48), channels=1)
    problems = dataset.verify()
    assert len(problems) == 1 and "broken.jpg" in str(problems[0])
    index = [p.name for p in dataset.paths].index("broken.jpg")
    with pytest.raises(DataFormatError, match="broken.jpg: cannot decode image"):
        dataset[index]
