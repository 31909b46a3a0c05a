"""JAFFE reader, on a small folder written in the owners' layout (FORMATS.md 6.4's minimal
fixture: 256x256 greyscale TIFFs named <subject>.<code><repetition>.<number>.tiff, a README
beside them, and a ratings CSV as public readers transcribe it). JAFFE itself is not on this
machine."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from openfer.data import load_dataset
from openfer.errors import DataFormatError, OpenferError
from openfer.labels import Emotion

NAMES = ("KA.AN1.39.tiff", "KA.NE1.26.tiff", "KL.HA1.158.tiff", "KL.FE2.175.tiff",
         "KM.SU3.16.tif")


def _tiff(path, value=100):
    Image.new("L", (256, 256), value).save(path)


@pytest.fixture
def jaffe(tmp_path):
    folder = tmp_path / "jaffe"
    folder.mkdir()
    for i, name in enumerate(NAMES):
        _tiff(folder / name, 40 * i)
    (folder / "README").write_text("The Japanese Female Facial Expression (JAFFE) Database\n")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / "ratings.csv").write_text(
        "N,HAP,SAD,SUR,ANG,DIS,FEA,PIC\n"
        "1,1.23,2.90,1.77,4.81,3.06,2.00,KA-AN1\n"
        "2,4.87,1.13,2.35,1.03,1.10,1.16,KL-HA1\n")
    return tmp_path


def test_labels_come_from_the_file_name_codes(jaffe):
    data = load_dataset("jaffe", jaffe, image_size=(48, 48), channels=1)   # parent of jaffe/
    assert len(data) == 5                                # README and .DS_Store ignored, .tif read
    by_file = {Path(s).name: data.classes[y] for s, y in zip(data.sources, data.labels)}
    assert by_file == {"KA.AN1.39.tiff": Emotion.ANGER, "KA.NE1.26.tiff": Emotion.NEUTRAL,
                       "KL.HA1.158.tiff": Emotion.HAPPINESS, "KL.FE2.175.tiff": Emotion.FEAR,
                       "KM.SU3.16.tif": Emotion.SURPRISE}
    assert data.classes == (Emotion.ANGER, Emotion.DISGUST, Emotion.FEAR, Emotion.HAPPINESS,
                            Emotion.NEUTRAL, Emotion.SADNESS, Emotion.SURPRISE)
    assert data.subjects == ["KA", "KA", "KL", "KL", "KM"]
    image, _ = data[0]
    assert image.shape == (1, 48, 48)


def test_six_class_protocol_drops_neutral(jaffe):
    data = load_dataset("jaffe", jaffe / "jaffe", neutral=False)
    assert len(data) == 4 and Emotion.NEUTRAL not in data.classes
    assert data.dropped["neutral images"] == 1


def test_subject_independent_folds(jaffe):
    seen = []
    for fold in range(3):
        test = load_dataset("jaffe", jaffe, "test", fold=fold, folds=3)
        train = load_dataset("jaffe", jaffe, "train", fold=fold, folds=3)
        assert not set(test.subjects) & set(train.subjects)
        assert len(test) + len(train) == 5
        seen += test.sources
    assert sorted(seen) == sorted(load_dataset("jaffe", jaffe).sources)   # folds partition
    with pytest.raises(OpenferError, match="3 subjects cannot fill 10"):
        load_dataset("jaffe", jaffe, "test", fold=0)     # leave-one-subject-out needs 10


def test_ratings_join_by_subject_code_and_repetition(jaffe):
    data = load_dataset("jaffe", jaffe, ratings=jaffe / "ratings.csv")
    ratings = dict(zip((Path(s).name for s in data.sources), data.targets["ratings"]))
    # columns: anger, disgust, fear, happiness, sadness, surprise (FEA is fear)
    np.testing.assert_allclose(ratings["KA.AN1.39.tiff"], [4.81, 3.06, 2.00, 1.23, 2.90, 1.77])
    np.testing.assert_allclose(ratings["KL.HA1.158.tiff"], [1.03, 1.10, 1.16, 4.87, 1.13, 2.35])
    assert np.isnan(ratings["KL.FE2.175.tiff"]).all()   # not in the table


@pytest.mark.parametrize("text, message", [
    ("N,HAP,SAD,SUR,ANG,DIS,PIC\n", "no column FEA"),
    ("N,HAP,SAD,SUR,ANG,DIS,FEA,PIC\n1,1,1,1,1,1,1,KA.AN1\n", "PIC 'KA.AN1'"),
    ("N,HAP,SAD,SUR,ANG,DIS,FEA,PIC\n1,1,1,1,9,1,1,KA-AN1\n", "1-5 scale"),
    ("N,HAP,SAD,SUR,ANG,DIS,FEA,PIC\n1,1,1,1,1,1,KA-AN1\n", "expected 8 fields"),
])
def test_malformed_ratings_are_named_with_their_line(jaffe, text, message):
    (jaffe / "bad.csv").write_text(text)
    with pytest.raises(DataFormatError, match=message) as error:
        load_dataset("jaffe", jaffe, ratings=jaffe / "bad.csv")
    assert "bad.csv" in str(error.value)


def test_a_badly_named_image_is_an_error_that_names_it(jaffe):
    _tiff(jaffe / "jaffe" / "KA.XX1.40.tiff")
    with pytest.raises(DataFormatError, match="KA.XX1.40.tiff.*code 'XX'"):
        load_dataset("jaffe", jaffe)
    (jaffe / "jaffe" / "KA.XX1.40.tiff").rename(jaffe / "jaffe" / "photo.tiff")
    with pytest.raises(DataFormatError, match="photo.tiff.*KA.AN1.39.tiff"):
        load_dataset("jaffe", jaffe)


def test_a_folder_without_jaffe_images(tmp_path):
    with pytest.raises(OpenferError, match="no JAFFE images"):
        load_dataset("jaffe", tmp_path)


def test_the_paper_recipe_runs_leave_one_subject_out(tmp_path):
    """openfer cv with deep_emotion_jaffe: one fold per subject (here 4 subjects, 1 epoch each),
    every test fold one whole subject, every image tested once."""
    from openfer.engine.cross_validation import run_cross_validation

    folder = tmp_path / "jaffe"
    folder.mkdir()
    for s, subject in enumerate(("KA", "KL", "KM", "KR")):
        for c, code in enumerate(("AN", "HA", "NE", "SU")[:s + 1]):
            _tiff(folder / f"{subject}.{code}1.{10 * s + c}.tiff", 60 * c)
    result = run_cross_validation(["deep_emotion_jaffe"], [
        f"data.root={folder}", "data.options.crop=none", "trainer.max_epochs=1",
        "trainer.progress_bar=false", "data.batch_size=4"], tmp_path / "cv", folds=4)
    assert [row["n"] for row in result["per_fold"]] == [1, 2, 3, 4]   # subject s has s+1 images
    assert 0 <= result["pooled_accuracy"] <= 1
    assert (tmp_path / "cv" / "cv_summary.json").is_file()


def test_eval_reports_the_data_and_the_images_without_a_face(jaffe, tmp_path, capsys):
    """openfer eval prints what it read (faces per class) and names, on stderr, the images
    crop=detect found no face in (here: none of the flat grey fixtures has one)."""
    import openfer
    from openfer.checkpoint import save_weights
    from openfer.cli import main

    weights = save_weights(openfer.create_model("deep_emotion"), tmp_path / "m.safetensors")
    assert main(["eval", "--model", str(weights), "--dataset", "jaffe", "--root", str(jaffe),
                 "--option", "crop=detect", "--option", "detector=haar", "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("jaffe:all: 5 faces, 1x48x48; anger 1, disgust 0, fear 1")
    assert "KA.AN1.39.tiff: no face found; the whole image is used" in captured.err
    assert "and 0 more" not in captured.err and '"n": 5' in captured.out


def test_notes_name_the_first_problems_and_count_the_rest(jaffe):
    data = load_dataset("jaffe", jaffe)
    data.problems = [f"image{i}.tiff: unreadable" for i in range(7)]
    lines = data.notes()
    assert lines[0] == data.describe() and lines[1:6] == [f"  image{i}.tiff: unreadable"
                                                          for i in range(5)]
    assert lines[6].startswith("  ... and 2 more such files")


def test_ratings_with_carriage_return_line_ends_are_read(jaffe):
    """Old Mac line ends (a lone \\r), as a transcribed table may have; found by the fuzzer,
    which once got a csv.Error out of them instead of a table or a named error."""
    (jaffe / "cr.csv").write_bytes(b"N,HAP,SAD,SUR,ANG,DIS,FEA,PIC\r1,1.2,2.9,1.8,4.8,3.1,2.0,"
                                   b"KA-AN1\r")
    data = load_dataset("jaffe", jaffe, ratings=jaffe / "cr.csv")
    assert np.isfinite(data.targets["ratings"]).all(axis=1).sum() == 1
