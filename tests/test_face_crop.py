"""Readers of whole-head images (JAFFE, CK+) crop the face a detector finds (``crop=detect``).

Each fixture is the data set's own layout with a real face (../shared/data/photos) placed on a
grey canvas of the data set's image size, where its heads sit; a frame without a face stays
whole and is named in the data set's problems."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from openfer.data import load_dataset
from openfer.errors import OpenferError

FACE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "photos" / \
    "aligned112.png"


@pytest.fixture
def face_on_canvas():
    if not FACE.is_file():
        pytest.skip(f"real face photo not found at {FACE}")

    def make(path, size, at, side=150):
        canvas = Image.new("L", size, 90)
        canvas.paste(Image.open(FACE).convert("L").resize((side, side)), at)
        canvas.save(path)
    return make


def _inside(region, at, side=150):
    """The crop is square and holds the pasted face, with a margin but not the whole canvas."""
    x, y, w, h = region
    return w == h and x <= at[0] + 0.2 * side and y <= at[1] + 0.3 * side and \
        x + w >= at[0] + 0.8 * side and y + h >= at[1] + 0.8 * side and w <= 1.4 * side


def test_jaffe_crops_the_detected_face(tmp_path, face_on_canvas):
    folder = tmp_path / "jaffe"
    folder.mkdir()
    face_on_canvas(folder / "KA.HA1.1.tiff", (256, 256), (60, 70))
    Image.new("L", (256, 256), 100).save(folder / "KA.SA1.2.tiff")
    data = load_dataset("jaffe", folder, crop="detect", detector="haar", image_size=(64, 64))
    assert _inside(data.regions[0], (60, 70))
    assert data.regions[1] is None and "KA.SA1.2.tiff: no face found" in data.problems[0]
    whole = load_dataset("jaffe", folder, image_size=(64, 64))
    assert whole.regions is None
    assert not np.array_equal(data[0][0].numpy(), whole[0][0].numpy())


def test_ckplus_crops_the_detected_face(tmp_path, face_on_canvas):
    root = tmp_path / "ck"
    frames = root / "cohn-kanade-images" / "S005" / "001"
    frames.mkdir(parents=True)
    for f in range(1, 5):
        face_on_canvas(frames / f"S005_001_{f:08d}.png", (640, 490), (250 + f, 150))
    (root / "Emotion" / "S005" / "001").mkdir(parents=True)
    (root / "Emotion" / "S005" / "001" / "S005_001_00000004_emotion.txt").write_text(
        "   5.0000000e+00\n")
    data = load_dataset("ckplus", root, crop="detect", detector="haar")
    assert len(data) == 3 and not data.problems
    for region, f in zip(data.regions, (2, 3, 4)):
        assert _inside(region, (250 + f, 150))


@pytest.mark.parametrize("name", ["jaffe", "ckplus"])
def test_an_unknown_crop_is_explained(tmp_path, name, face_on_canvas):
    if name == "jaffe":
        (tmp_path / "jaffe").mkdir()
        face_on_canvas(tmp_path / "jaffe" / "KA.HA1.1.tiff", (256, 256), (60, 70))
    else:
        frames = tmp_path / "cohn-kanade-images" / "S005" / "001"
        frames.mkdir(parents=True)
        face_on_canvas(frames / "S005_001_00000001.png", (640, 490), (250, 150))
        (tmp_path / "Emotion" / "S005" / "001").mkdir(parents=True)
        (tmp_path / "Emotion/S005/001/S005_001_00000001_emotion.txt").write_text("1\n")
    with pytest.raises(OpenferError, match="crop='box'.*none.*detect"):
        load_dataset(name, tmp_path, crop="box")
