"""RAF-DB and AffectNet readers, on small trees written in the owners' exact formats.

Neither data set is on this machine; each fixture follows ../shared/docs/FORMATS.md's "minimal
fixture" for it, including the malformed and awkward cases it lists.
"""

import numpy as np
import pytest
from PIL import Image

from openfer.data import load_dataset
from openfer.errors import DataFormatError, OpenferError
from openfer.labels import Emotion


def _jpg(path, size=(100, 100), value=120, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, value // 2, 30)).save(path)


# -- RAF-DB --------------------------------------------------------------------------------------
@pytest.fixture
def rafdb(tmp_path):
    basic = tmp_path / "basic"
    (basic / "EmoLabel").mkdir(parents=True)
    (basic / "EmoLabel" / "list_patition_label.txt").write_text(
        "train_00001.jpg 5\ntrain_00002.jpg 4\r\ntest_0001.jpg 7\ntest_0002.jpg 1\n")
    for stem in ("train_00001", "train_00002", "test_0001", "test_0002", "train_00003"):
        _jpg(basic / "Image" / "aligned" / f"{stem}_aligned.jpg")
        _jpg(basic / "Image" / "original" / f"{stem}.jpg", size=(300, 200))
    (basic / "Annotation" / "boundingbox").mkdir(parents=True)
    (basic / "Annotation" / "boundingbox" / "train_00001_boundingbox.txt").write_text(
        "50.0 20.0 250.0 220.0 \n")
    manual = basic / "Annotation" / "manual"
    manual.mkdir(parents=True)
    (manual / "train_00001_manu_attri.txt").write_text(
        "85.3\t100.2\n140.1\t98.7\n113.0\t130.5\n90.2\t160.0\n135.9\t158.4\n1\n2\n3\n")
    return basic


def test_rafdb_splits_order_and_label_mapping(rafdb):
    train = load_dataset("rafdb", rafdb, "train", image_size=(64, 64), channels=3)
    assert train.native_labels.tolist() == [5, 4]                 # 1-based RAF codes
    assert [train.classes[i] for i in train.labels] == [Emotion.SADNESS, Emotion.HAPPINESS]
    test = load_dataset("rafdb", rafdb.parent, "test", image_size=(64, 64), channels=3)
    assert [test.classes[i] for i in test.labels] == [Emotion.NEUTRAL, Emotion.SURPRISE]
    assert test[0][0].shape == (3, 64, 64)
    assert len(load_dataset("rafdb", rafdb, "all", image_size=(64, 64), channels=3)) == 4


def test_rafdb_other_spelling_and_original_images_with_boxes(rafdb):
    label = rafdb / "EmoLabel" / "list_patition_label.txt"
    label.rename(rafdb / "EmoLabel" / "list_partition_label.txt")
    dataset = load_dataset("rafdb", rafdb, "train", image_size=(32, 32), channels=1,
                           images="original")
    assert dataset.regions[0] == (50.0, 20.0, 200.0, 200.0) and dataset.regions[1] is None
    assert dataset[0][0].shape == (1, 32, 32)


def test_rafdb_manual_attributes(rafdb):
    dataset = load_dataset("rafdb", rafdb, "train", image_size=(32, 32), channels=1,
                           attributes=True)
    assert dataset.targets["gender"].tolist() == [1, -1]
    assert dataset.targets["race"].tolist() == [2, -1]
    assert dataset.targets["age"].tolist() == [3, -1]
    assert dataset.dropped["missing attribute files"] == 1


@pytest.mark.parametrize("content, message", [
    ("train_00001.jpg 8\n", r"line 1, field 'label': label '8' is not a RAF-DB basic code"),
    ("train_00001.jpg\n", r"line 1: expected '<image_name> <label>'"),
    ("val_0001.jpg 3\n", r"line 1: image name 'val_0001.jpg' starts with neither"),
    ("train_00001.jpg 5\ntrain_09999.jpg 2\n", r"line 2: image .*train_09999_aligned.jpg"),
])
def test_rafdb_malformed_label_files(rafdb, content, message):
    (rafdb / "EmoLabel" / "list_patition_label.txt").write_text(content)
    with pytest.raises(DataFormatError, match=message):
        load_dataset("rafdb", rafdb, "all", image_size=(32, 32), channels=1)


# -- AffectNet ------------------------------------------------------------------------------------
HEADER = ("subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,"
          "expression,valence,arousal")


def _landmarks(left_eye=(60, 80), right_eye=(140, 100)) -> str:
    points = np.tile(np.array([[100.0, 120.0]]), (68, 1))
    points[36:42] = left_eye
    points[42:48] = right_eye
    return ";".join(f"{v:.1f}" for v in points.reshape(-1))


@pytest.fixture
def affectnet(tmp_path):
    images = tmp_path / "Manually_Annotated" / "Manually_Annotated_Images"
    _jpg(images / "689" / "a1.jpg", size=(200, 240))
    (images / "12").mkdir(parents=True)
    Image.new("RGB", (200, 200), (10, 200, 10)).save(images / "12" / "b2.png")
    _jpg(images / "12" / "c3.jpg", size=(200, 200))
    (images / "12" / "empty.jpg").write_bytes(b"")
    lists = tmp_path / "Manually_Annotated_file_lists"
    lists.mkdir()
    rows = [
        f'689/a1.jpg,20,30,150,170,"{_landmarks()}",1,0.8,0.2',
        f'12/b2.png,150,150,100,100,"{_landmarks()}",7,-0.3,0.4',      # contempt; box past edge
        f'12/c3.jpg,0,0,200,200,"{_landmarks()}",9,-2,-2',            # uncertain
        f'12/c3.jpg,0,0,200,200,"{_landmarks()}",10,-2,-2',           # no face
        f'12/empty.jpg,0,0,50,50,"{_landmarks()}",0,0.0,0.0',         # broken image
    ]
    (lists / "training.csv").write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    (lists / "validation.csv").write_text(HEADER + "\n" + rows[0] + "\n")
    return tmp_path


def test_affectnet_csv_drops_and_counts_non_expressions(affectnet):
    dataset = load_dataset("affectnet", affectnet, "train", image_size=(48, 48), channels=3)
    assert [dataset.classes[i] for i in dataset.labels] == [Emotion.HAPPINESS, Emotion.CONTEMPT]
    assert dataset.dropped["9 Uncertain"] == 1 and dataset.dropped["10 No-Face"] == 1
    assert dataset.dropped["unreadable image"] == 1
    assert "empty.jpg is missing or empty" in dataset.problems[0]
    assert dataset.targets["valence"].tolist() == pytest.approx([0.8, -0.3])
    assert dataset[1][0].shape == (3, 48, 48)       # box past the edge is clipped


def test_affectnet7_drops_contempt_and_val_split(affectnet):
    seven = load_dataset("affectnet7", affectnet, "train", image_size=(48, 48), channels=3)
    assert len(seven) == 1 and seven.dropped["7 Contempt"] == 1
    assert len(load_dataset("affectnet7", affectnet, "validation", image_size=(48, 48),
                            channels=3)) == 1


def test_affectnet_eye_alignment_levels_the_eyes(affectnet):
    from openfer.data.affectnet import eye_alignment
    landmarks = np.array(_landmarks().split(";"), float).reshape(68, 2)
    matrix = eye_alignment(landmarks, (20, 30, 150, 170), (64, 64))
    left = matrix @ np.array([60, 80, 1.0])
    right = matrix @ np.array([140, 100, 1.0])
    assert abs(left[1] - right[1]) < 1e-9 and right[0] > left[0]
    aligned = load_dataset("affectnet", affectnet, "train", image_size=(64, 64), channels=3,
                           align=True)
    assert np.shape(aligned.regions[0]) == (2, 3) and aligned[0][0].shape == (3, 64, 64)


def test_affectnet_malformed_rows(affectnet):
    path = affectnet / "Manually_Annotated_file_lists" / "training.csv"
    path.write_text(HEADER + "\n689/a1.jpg,20,30,150,170,1;2;3,1,0.8,0.2\n")
    with pytest.raises(DataFormatError, match="line 2, field 'facial_landmarks': "
                                              "facial_landmarks has 3 numbers"):
        load_dataset("affectnet", affectnet, "train", image_size=(48, 48), channels=3)
    path.write_text("name,label\nx,1\n")
    with pytest.raises(DataFormatError, match="line 1: header lacks the columns"):
        load_dataset("affectnet", affectnet, "train", image_size=(48, 48), channels=3)


def test_affectnet_npy_release(tmp_path):
    for split, ids in (("train_set", ("0", "1")), ("val_set", ("2",))):
        for i in ids:
            _jpg(tmp_path / split / "images" / f"{i}.jpg", size=(224, 224))
            notes = tmp_path / split / "annotations"
            notes.mkdir(parents=True, exist_ok=True)
            np.save(notes / f"{i}_exp.npy", np.array("3") if i == "0" else np.array(6))
            np.save(notes / f"{i}_val.npy", np.array(0.25))
            np.save(notes / f"{i}_aro.npy", np.array(-0.5))
            np.save(notes / f"{i}_lnd.npy", np.zeros(136))
    train = load_dataset("affectnet", tmp_path, "train", image_size=(48, 48), channels=3)
    assert [train.classes[i] for i in train.labels] == [Emotion.SURPRISE, Emotion.ANGER]
    assert train.targets["arousal"].tolist() == [-0.5, -0.5]
    assert len(load_dataset("affectnet", tmp_path, "val", image_size=(48, 48), channels=3)) == 1


def test_affectnet_missing_files_are_explained(tmp_path):
    with pytest.raises(OpenferError, match="expected training.csv .* or train_set/"):
        load_dataset("affectnet", tmp_path, "train", image_size=(48, 48), channels=3)
    with pytest.raises(OpenferError, match="unknown AffectNet split 'dev'"):
        load_dataset("affectnet", tmp_path, "dev", image_size=(48, 48), channels=3)


def test_a_reader_option_it_does_not_take_or_of_the_wrong_type_is_refused(tmp_path):
    """A misspelt option (``test_fractoin``) used to be ignored silently, and a value of the
    wrong type reached the reader as a traceback."""
    with pytest.raises(OpenferError, match=r"data set 'ferg' has no option 'test_fractoin' "
                                           r"\(its options: fold, folds, protocol, seed, "
                                           r"test_fraction\)"):
        load_dataset("ferg", tmp_path, "train", test_fractoin=0.2)
    with pytest.raises(OpenferError, match=r"'ferg': option seed=1.5 must be a whole number"):
        load_dataset("ferg", tmp_path, "train", seed=1.5)
    with pytest.raises(OpenferError, match=r"'affectnet7': option align='yes' must be true or "
                                           r"false"):
        load_dataset("affectnet7", tmp_path, "train", align="yes")
    with pytest.raises(OpenferError, match=r"'affectnet7' has no option 'seven'"):
        load_dataset("affectnet7", tmp_path, "train", seven=False)      # fixed by the name
    with pytest.raises(OpenferError, match="data set 'folder' takes no options, not fold"):
        load_dataset("folder", tmp_path, fold=1)
