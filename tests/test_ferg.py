"""FERG-DB reader, on a small tree written in the owners' layout (FORMATS.md 7.3's minimal
fixture, grown to two characters x three emotions so that the splits can be checked; one PNG
has an alpha channel). FERG-DB itself is not on this machine."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from openfer.data import load_dataset
from openfer.errors import OpenferError
from openfer.labels import Emotion

CHARACTERS = ("aia", "ray")
EMOTIONS = ("anger", "joy", "neutral")


@pytest.fixture
def ferg(tmp_path):
    root = tmp_path / "FERG_DB_256"
    for character in CHARACTERS:
        for emotion in EMOTIONS:
            folder = root / character / f"{character}_{emotion}"
            folder.mkdir(parents=True)
            for n in range(1, 11):
                mode = "RGBA" if (character, emotion, n) == ("aia", "joy", 1) else "RGB"
                Image.new(mode, (256, 256), (n * 20, 80, 120, 200)[:len(mode)]).save(
                    folder / f"{character}_{emotion}_{n}.png")
    (root / "aia" / "aia_joy" / "Thumbs.db").write_bytes(b"\0")
    (root / ".DS_Store").write_bytes(b"\0")
    return tmp_path


def test_labels_come_from_the_folder_names(ferg):
    data = load_dataset("ferg", ferg, image_size=(64, 64), channels=3)
    assert len(data) == 60                                    # Thumbs.db and .DS_Store ignored
    assert data.classes == (Emotion.ANGER, Emotion.DISGUST, Emotion.FEAR, Emotion.HAPPINESS,
                            Emotion.NEUTRAL, Emotion.SADNESS, Emotion.SURPRISE)
    named = {Path(s).parent.name: data.classes[y] for s, y in zip(data.sources, data.labels)}
    assert named["aia_joy"] is Emotion.HAPPINESS and named["ray_anger"] is Emotion.ANGER
    assert named["ray_neutral"] is Emotion.NEUTRAL
    assert set(data.native_labels.tolist()) == {0, 3, 4}      # alphabetical folder order
    rgba = data.sources.index(str(ferg / "FERG_DB_256" / "aia" / "aia_joy" / "aia_joy_1.png"))
    assert data[rgba][0].shape == (3, 64, 64)                 # alpha dropped
    assert sorted(set(data.subjects)) == list(CHARACTERS)


def test_random_protocol_is_a_stratified_reproducible_hold_out(ferg):
    test = load_dataset("ferg", ferg / "FERG_DB_256", "test", test_fraction=0.2)
    train = load_dataset("ferg", ferg / "FERG_DB_256", "train", test_fraction=0.2)
    assert len(test) == 12 and len(train) == 48 and not set(test.sources) & set(train.sources)
    groups = {(s, y) for s, y in zip(test.subjects, test.labels.tolist())}
    assert len(groups) == 6                            # two of every character x emotion folder
    again = load_dataset("ferg", ferg, "test", test_fraction=0.2)
    other = load_dataset("ferg", ferg, "test", test_fraction=0.2, seed=1)
    assert again.sources == test.sources and other.sources != test.sources


def test_character_protocol_leaves_one_character_out(ferg):
    for fold, character in enumerate(CHARACTERS):
        test = load_dataset("ferg", ferg, "test", protocol="character", fold=fold)
        train = load_dataset("ferg", ferg, "train", protocol="character", fold=fold)
        assert set(test.subjects) == {character} and character not in train.subjects
        assert len(test) == len(train) == 30


@pytest.mark.parametrize("options, message", [
    ({"protocol": "subject"}, "protocol='subject'"),
    ({"test_fraction": 1.5}, "test_fraction=1.5"),
    ({"protocol": "character"}, "needs a fold"),
])
def test_bad_options_are_explained(ferg, options, message):
    with pytest.raises(OpenferError, match=message):
        load_dataset("ferg", ferg, "test", **options)


def test_a_misnamed_folder_is_an_error_that_names_it(ferg):
    (ferg / "FERG_DB_256" / "ray" / "ray_happy").mkdir()
    with pytest.raises(OpenferError, match="ray_happy.*ray_<emotion>.*joy"):
        load_dataset("ferg", ferg)


def test_a_folder_without_ferg_images(tmp_path):
    with pytest.raises(OpenferError, match="FERG_DB_256/<character>"):
        load_dataset("ferg", tmp_path)


def test_the_images_decode_to_the_requested_size(ferg):
    data = load_dataset("ferg", ferg, image_size=(48, 48), channels=1)
    batch = np.stack([data[i][0].numpy() for i in range(3)])
    assert batch.shape == (3, 1, 48, 48) and batch.dtype == np.uint8


def test_the_paper_recipe_trains_on_the_hold_out(ferg, tmp_path):
    from openfer.engine.recipe import load_recipe
    from openfer.engine.train import train

    recipe = load_recipe("deep_emotion_ferg", [f"data.root={ferg}", "trainer.max_epochs=1",
                                               "trainer.progress_bar=false",
                                               "data.options.test_fraction=0.2"])
    summary = train(recipe, output_dir=tmp_path / "run")
    assert summary["metrics"]["n"] == 12 and summary["epochs"] == 1


def test_cross_validation_folds_must_be_one_per_character(ferg):
    load_dataset("ferg", ferg, "test", protocol="character", fold=1, folds=2)    # openfer cv
    with pytest.raises(OpenferError, match="leaving one character out makes 2 folds"):
        load_dataset("ferg", ferg, "test", protocol="character", fold=1, folds=10)
