"""Aff-Wild2 / ABAW annotations, on FORMATS.md's minimal fixture (three editions' layouts)."""

import time

import numpy as np
import pytest
from PIL import Image

from openfer.data import load_dataset
from openfer.data.affwild2 import read_annotations
from openfer.errors import DataFormatError
from openfer.labels import Emotion

EXPR8 = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
EXPR7 = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise"


@pytest.fixture
def affwild2(tmp_path):
    for video, frames in (("vidA", (1, 2, 4)), ("vidB_left", (1, 2))):     # vidA: 00003 missing
        for frame in frames:
            path = tmp_path / "cropped_aligned" / video / f"{frame:05d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (112, 112), (frame * 40, 90, 90)).save(path)
    abaw3 = tmp_path / "abaw3"
    (abaw3 / "EXPR_Classification_Challenge" / "Train_Set").mkdir(parents=True)
    (abaw3 / "EXPR_Classification_Challenge" / "Train_Set" / "vidA.txt").write_text(
        EXPR8 + "\n4\n-1\n7\n6\n")
    (abaw3 / "VA_Estimation_Challenge" / "Train_Set").mkdir(parents=True)
    (abaw3 / "VA_Estimation_Challenge" / "Train_Set" / "vidA.txt").write_text(
        "valence,arousal\n0.602,0.389\n-5,-5\n0.1,-0.2\n-0.3,0.7\n")
    abaw6 = tmp_path / "6th ABAW Annotations"
    (abaw6 / "EXPR_Recognition_Challenge" / "Validation_Set").mkdir(parents=True)
    (abaw6 / "EXPR_Recognition_Challenge" / "Validation_Set" / "vidB_left.txt").write_text(
        EXPR8 + ", \n0\n1\n")
    old = tmp_path / "annotations" / "EXPR_Set" / "Training_Set"
    old.mkdir(parents=True)
    (old / "vidA.txt").write_text(EXPR7 + "\n0\n0\n-1\n5\n")
    return tmp_path


def test_multi_task_intersection_drops_markers_other_and_gaps(affwild2):
    dataset = load_dataset("affwild2", affwild2, "train", image_size=(64, 64), channels=3,
                           annotations=affwild2 / "abaw3")
    # frame 1: happiness, VA ok; 2: EXPR -1; 3: Other (and no image); 4: surprise, VA ok
    assert [p.name for p in dataset.paths] == ["00001.jpg", "00004.jpg"]
    assert [dataset.classes[i] for i in dataset.labels] == [Emotion.HAPPINESS, Emotion.SURPRISE]
    assert dataset.targets["valence"].tolist() == [0.602, -0.3]
    assert dataset.dropped["7 Other"] == 1
    assert dataset[1][0].shape == (3, 64, 64)


def test_expression_only_and_editions(affwild2):
    old = load_dataset("affwild2", affwild2, "train", image_size=(32, 32), channels=3,
                       task="expr", annotations=affwild2 / "annotations")
    assert [dataset_frame.name for dataset_frame in old.paths] == ["00001.jpg", "00002.jpg",
                                                                   "00004.jpg"]
    assert old.labels.tolist() == [0, 0, 5]
    new = load_dataset("affwild2", affwild2, "val", image_size=(32, 32), channels=3, task="expr",
                       annotations=affwild2 / "6th ABAW Annotations")   # header with ', '
    assert [new.classes[i] for i in new.labels] == [Emotion.NEUTRAL, Emotion.ANGER]


def test_gaps_are_counted(affwild2):
    dataset = load_dataset("affwild2", affwild2, "train", image_size=(32, 32), channels=3,
                           task="va", annotations=affwild2 / "abaw3")
    assert dataset.dropped["frames without an image"] == 1       # frame 3 has VA, no image
    assert (dataset.labels == -1).all() and len(dataset) == 2     # frames 1 and 4


def test_malformed_annotation_lines(affwild2):
    path = affwild2 / "abaw3" / "EXPR_Classification_Challenge" / "Train_Set" / "vidA.txt"
    path.write_text(EXPR8 + "\n4\nhappy\n")
    with pytest.raises(DataFormatError, match="vidA.txt, line 3: expected one integer"):
        read_annotations(affwild2, "train", "expr", affwild2 / "abaw3")
    path.write_text("Neutral;Anger\n1\n")
    with pytest.raises(DataFormatError, match="line 1: header .* is not an ABAW EXPR header"):
        read_annotations(affwild2, "train", "expr", affwild2 / "abaw3")


@pytest.mark.slow
def test_a_million_frames_of_annotations_read_in_seconds(tmp_path):
    root = tmp_path / "EXPR_Set" / "Training_Set"
    va = tmp_path / "VA_Set" / "Training_Set"
    root.mkdir(parents=True)
    va.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for v in range(200):                                          # 200 videos x 5,000 frames
        codes = rng.integers(-1, 7, 5000)
        (root / f"video{v}.txt").write_text(EXPR7 + "\n" + "\n".join(map(str, codes)) + "\n")
        values = rng.uniform(-1, 1, (5000, 2))
        (va / f"video{v}.txt").write_text("valence,arousal\n" + "\n".join(
            f"{a:.3f},{b:.3f}" for a, b in values) + "\n")
    started = time.perf_counter()
    frames = read_annotations(tmp_path, "train", "mtl")
    seconds = time.perf_counter() - started
    assert sum(len(f) for f in frames.values()) > 800_000
    assert seconds < 15, f"reading 1,000,000 annotated frames took {seconds:.1f} s"
