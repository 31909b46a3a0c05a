"""The FER2013 reader, on the real CSV and on small files in every distributed layout."""

from pathlib import Path

import numpy as np
import torch
import pytest
from PIL import Image

from conftest import SIX_ROWS, pixels_text, write_fer2013_csv
from openfer.data import load_dataset
from openfer.data.fer2013 import read_csv
from openfer.errors import DataFormatError, OpenferError
from openfer.labels import Emotion


# -- the real file ---------------------------------------------------------------------------
@pytest.mark.parametrize("split, rows", [("Training", 28709), ("PublicTest", 3589)])
def test_real_split_sizes(fer2013_csv, split, rows):
    dataset = load_dataset("fer2013", fer2013_csv, split)
    assert len(dataset) == rows
    assert dataset.images.shape == (rows, 1, 48, 48)


def test_real_publictest_class_counts(fer2013_csv):
    counts = load_dataset("fer2013", fer2013_csv, "PublicTest").class_counts()
    assert counts == {"anger": 467, "disgust": 56, "fear": 496, "happiness": 895,
                      "sadness": 653, "surprise": 415, "neutral": 607}


def test_real_training_class_counts(fer2013_csv):
    counts = load_dataset("fer2013", fer2013_csv, "Training").class_counts()
    assert counts == {"anger": 3995, "disgust": 436, "fear": 4097, "happiness": 7215,
                      "sadness": 4830, "surprise": 3171, "neutral": 4965}


def test_private_test_is_absent_from_shared_copy(fer2013_csv):
    with pytest.raises(OpenferError, match="no rows of split 'PrivateTest'"):
        load_dataset("fer2013", fer2013_csv, "PrivateTest")


# -- layouts -----------------------------------------------------------------------------------
def test_official_csv_splits_and_labels(small_fer2013):
    images, labels, lines = read_csv(small_fer2013, "PublicTest")
    assert labels.tolist() == [6, 4] and lines == [4, 5]
    expected = np.array(pixels_text(2).split(), dtype=np.uint8).reshape(48, 48)
    assert np.array_equal(images[0], expected)


RAFDB_ORDER = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]


def test_classes_reorder_the_fixed_labels_by_name(small_fer2013):
    """FER2013's labels are fixed (0 anger ... 6 neutral); ``classes`` asks for them in another
    order (a model's): anger 0 becomes RAF-DB's 5, surprise 5 becomes 0, disgust 1 becomes 2."""
    dataset = load_dataset("fer2013", small_fer2013, "all", classes=RAFDB_ORDER)
    assert [c.value for c in dataset.classes] == RAFDB_ORDER
    assert dataset.labels.tolist() == [5, 3, 6, 4, 0, 2]
    assert dataset.native_labels.tolist() == [0, 3, 6, 4, 5, 1]
    assert dataset.class_counts()["happiness"] == 1


def test_classes_with_aliases_and_extra_classes_are_accepted(small_fer2013):
    classes = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt"]
    dataset = load_dataset("fer2013", small_fer2013, "PublicTest", classes=classes)
    assert dataset.labels.tolist() == [6, 4] and len(dataset.classes) == 8


def test_classes_lacking_one_of_the_data_sets_is_an_error_naming_it(small_fer2013):
    with pytest.raises(OpenferError, match=r"lacks: \['disgust'\]; data set 'fer2013' has "
                                           "fixed classes"):
        load_dataset("fer2013", small_fer2013, "all", classes=[c for c in RAFDB_ORDER
                                                                if c != "disgust"])


def test_gzip_is_detected_by_content_not_name(tmp_path):
    path = write_fer2013_csv(tmp_path / "fer2013.csv", SIX_ROWS, compress=True)
    assert len(load_dataset("fer2013", path, "Training")) == 2


def test_icml_face_data_variant_selects_columns_by_name(tmp_path):
    write_fer2013_csv(tmp_path / "icml_face_data.csv", SIX_ROWS, header="emotion, Usage, pixels")
    dataset = load_dataset("fer2013", tmp_path, "PrivateTest")    # found in the folder by name
    assert dataset.labels.tolist() == [5, 1]


def test_split_aliases(small_fer2013):
    assert len(load_dataset("fer2013", small_fer2013, "train")) == 2
    assert len(load_dataset("fer2013", small_fer2013, "val")) == 2
    assert len(load_dataset("fer2013", small_fer2013, "all")) == 6


def test_test_is_ambiguous_for_the_official_csv(small_fer2013):
    with pytest.raises(OpenferError, match="ambiguous"):
        load_dataset("fer2013", small_fer2013, "test")


def test_kaggle_pair_train_labelled_test_unlabelled(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("emotion,pixels\n3," + pixels_text(0) + "\n0," + pixels_text(1) + "\n")
    (tmp_path / "test.csv").write_text("pixels\n" + pixels_text(2) + "\n")
    assert load_dataset("fer2013", tmp_path, "Training").labels.tolist() == [3, 0]
    test = load_dataset("fer2013", tmp_path, "test")
    assert len(test) == 1 and test.labels.tolist() == [-1]
    with pytest.raises(OpenferError, match="no expression label.*openfer predict"):
        test.require_labels()
    with pytest.raises(OpenferError, match="'PublicTest' is not available"):
        load_dataset("fer2013", tmp_path, "PublicTest")


def _write_jpg(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((48, 48), value, np.uint8)).save(path)


def test_kaggle_image_folders_map_by_name(tmp_path):
    _write_jpg(tmp_path / "train" / "happy" / "Training_1.jpg", 10)
    _write_jpg(tmp_path / "train" / "neutral" / "Training_2.jpg", 20)
    _write_jpg(tmp_path / "test" / "neutral" / "PrivateTest_3.jpg", 30)
    _write_jpg(tmp_path / "test" / "angry" / "PublicTest_4.jpg", 40)
    train = load_dataset("fer2013", tmp_path, "Training")
    assert sorted(train.labels.tolist()) == [3, 6]          # FER2013 indices, not alphabetical
    assert [train.classes[i] for i in train.labels] == [Emotion.HAPPINESS, Emotion.NEUTRAL]
    private = load_dataset("fer2013", tmp_path, "PrivateTest")
    assert private.labels.tolist() == [6]
    assert len(load_dataset("fer2013", tmp_path, "test")) == 2


# -- malformed rows: the error names the file, the line and what was expected -------------------
def _corrupt(path: Path, line: int, new_line: str) -> Path:
    lines = path.read_text().splitlines()
    lines[line - 1] = new_line
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("row, message", [
    ("3," + " ".join(["1"] * 2303) + ",Training", r"line 3, field 'pixels': expected 2304 pixel"),
    ("3," + " ".join(["1"] * 2303) + " x,Training", r"line 3, field 'pixels': pixel value 'x'"),
    ("3," + " ".join(["1"] * 2303) + " 256,Training", r"line 3, field 'pixels'.*outside 0..255"),
    ("9," + " ".join(["1"] * 2304) + ",Training", r"line 3, field 'emotion': emotion '9'"),
    ("happy," + " ".join(["1"] * 2304) + ",Training", r"line 3, field 'emotion'"),
    ("3," + " ".join(["1"] * 2304) + ",Validation", r"line 3, field 'Usage': unknown Usage"),
    ("3," + " ".join(["1"] * 2304), r"line 3: expected 3 fields"),
])
def test_malformed_rows_are_reported_with_line_and_field(small_fer2013, row, message):
    _corrupt(small_fer2013, 3, row)
    with pytest.raises(DataFormatError, match=message) as info:
        load_dataset("fer2013", small_fer2013, "Training")
    assert str(small_fer2013) in str(info.value)


def test_empty_and_headerless_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataFormatError, match="file is empty"):
        read_csv(empty)
    headerless = tmp_path / "noheader.csv"
    headerless.write_text("0,1 2 3,Training\n")
    with pytest.raises(DataFormatError, match="line 1.*no 'pixels' column"):
        read_csv(headerless)


def test_missing_root_says_what_to_pass(tmp_path):
    with pytest.raises(OpenferError, match="FER2013 data not found"):
        load_dataset("fer2013", tmp_path / "nope.csv", "Training")


def test_conversion_to_model_geometry(small_fer2013):
    dataset = load_dataset("fer2013", small_fer2013, "Training", image_size=(64, 64), channels=3)
    image, label = dataset[0]
    assert image.shape == (3, 64, 64) and image.dtype.is_floating_point is False
    assert label == 0


def test_grayscale_48px_faces_feed_a_three_channel_48px_model_unchanged():
    """No resize, only 1 -> 3 channels (Emotion-GCN on FER2013 at 48 px): the channels are
    copies of the grey image (this path once failed on an in-place op on an expanded view)."""
    from openfer.data.dataset import convert_uint8_batch

    batch = torch.randint(0, 256, (5, 1, 48, 48), dtype=torch.uint8)
    out = convert_uint8_batch(batch, (48, 48), 3)
    assert out.shape == (5, 3, 48, 48) and out.dtype == torch.uint8
    assert torch.equal(out, batch.expand(-1, 3, -1, -1))
