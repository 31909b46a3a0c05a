"""SFEW 2.0 reader, on a small tree written as its aligned-face archives unzip (FORMATS.md 9.2's
minimal fixture: 143x181 PNGs in ``Train/Train_Aligned_Faces/<Emotion>/`` and
``Val/Val_Aligned_Faces/<Emotion>/``, and an unlabelled ``Test/Test_Aligned_Faces/x.png``).
SFEW itself is not on this machine."""

import numpy as np
import pytest
from PIL import Image

from openfer.data import load_dataset
from openfer.errors import OpenferError
from openfer.labels import Emotion


def face(path, value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (143, 181), (value, 60, 30)).save(path)


@pytest.fixture
def sfew(tmp_path):
    train = tmp_path / "Train" / "Train_Aligned_Faces"
    face(train / "Happy" / "Movie_000000001_00000001.png")
    face(train / "Happy" / "Airheads_000519240_00000005.png")
    face(train / "Sad" / "Harry Potter, Part 2_000010000_00000002.png")   # punctuation in titles
    (train / "Sad" / "Thumbs.db").write_bytes(b"\0")
    face(tmp_path / "Val" / "Val_Aligned_Faces" / "Neutral" / "Movie_000000002_00000001.png")
    face(tmp_path / "Test" / "Test_Aligned_Faces" / "x.png")
    return tmp_path


def test_labels_are_the_folder_names_indexed_alphabetically(sfew):
    train = load_dataset("sfew", sfew, "train", image_size=(48, 48), channels=1)
    assert train.classes == (Emotion.ANGER, Emotion.DISGUST, Emotion.FEAR, Emotion.HAPPINESS,
                             Emotion.NEUTRAL, Emotion.SADNESS, Emotion.SURPRISE)
    assert sorted(train.native_labels.tolist()) == [3, 3, 5]        # Happy 3, Sad 5
    assert train.dropped == {"non-image files": 1}                  # Thumbs.db
    assert train[0][0].shape == (1, 48, 48)                         # 143x181 resized whole
    val = load_dataset("sfew", sfew, "val")
    assert val.native_labels.tolist() == [4] and val.name == "sfew:val"
    both = load_dataset("sfew", sfew, "all")
    assert len(both) == 4 and both.dropped == {"non-image files": 1}
    assert set(both.paths) == set(train.paths) | set(val.paths)


def test_the_test_archive_has_no_labels_and_cannot_be_evaluated(sfew):
    test = load_dataset("sfew", sfew, "test")
    assert len(test) == 1 and test.labels.tolist() == [-1] and not test.has_labels
    with pytest.raises(OpenferError, match=r"1 of 1 samples have no expression label.*predict "
                                           r"on it instead \(openfer predict .*Test_Aligned_Faces "
                                           r"--no-detect\)"):
        test.require_labels()


def test_the_split_folder_may_lack_its_inner_level(tmp_path):
    face(tmp_path / "Val" / "Surprise" / "m_1_1.png")
    face(tmp_path / "Train_Aligned_Faces" / "Angry" / "m_2_1.png")
    assert load_dataset("sfew", tmp_path, "validation").native_labels.tolist() == [6]
    assert load_dataset("sfew", tmp_path, "train").native_labels.tolist() == [0]


def test_missing_splits_and_foreign_folders_are_named(sfew, tmp_path):
    with pytest.raises(OpenferError, match="unknown SFEW split 'PublicTest'"):
        load_dataset("sfew", sfew, "PublicTest")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OpenferError, match=r"no SFEW train faces under .*empty: expected "
                                           r"Train/Train_Aligned_Faces/"):
        load_dataset("sfew", empty, "train")
    face(sfew / "Val" / "Val_Aligned_Faces" / "Contempt" / "m.png")
    with pytest.raises(OpenferError, match="folder class 'contempt' is not in the class list"):
        load_dataset("sfew", sfew, "val")


def test_a_model_with_other_classes_gets_sfew_reindexed_by_name(sfew):
    data = load_dataset("sfew", sfew, "train", classes=["neutral", "happiness", "sadness",
                                                        "surprise", "fear", "disgust", "anger"])
    assert sorted(np.asarray(data.labels).tolist()) == [1, 1, 2]


@pytest.mark.slow
def test_the_sfew_recipe_fine_tunes_the_default_on_real_faces(fer2013_subset, tmp_path):
    """``fernet_m_sfew`` end to end on an SFEW-layout tree of real faces (600 FER2013 Training
    faces as Train, 300 PublicTest faces as Val, enlarged to 143x181 as the aligned archives hold
    them, under SFEW's folder names): after one epoch from the shipped default, Val accuracy stays
    near the default's (71 % here; the majority class is about 25 %)."""
    from openfer.engine.recipe import load_recipe
    from openfer.engine.train import train
    from openfer.labels import SFEW

    for split, folder, limit in (("Training", "Train", 600), ("PublicTest", "Val", 300)):
        faces = load_dataset("fer2013", fer2013_subset, split)
        for i in range(min(limit, len(faces))):
            name = SFEW.native_names[SFEW.index_of(faces.classes[faces.labels[i]])]
            target = tmp_path / "sfew" / folder / f"{folder}_Aligned_Faces" / name
            target.mkdir(parents=True, exist_ok=True)
            Image.fromarray(faces.images[i, 0].numpy()).resize((143, 181)).save(
                target / f"m_{i}_1.png")
    summary = train(load_recipe("fernet_m_sfew", [f"data.root={tmp_path / 'sfew'}",
                                                  "trainer.max_epochs=1",
                                                  "trainer.progress_bar=false"]),
                    output_dir=tmp_path / "run")
    assert summary["metrics"]["accuracy"] > 0.55, summary["metrics"]

