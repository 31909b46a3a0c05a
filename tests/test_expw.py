"""ExpW reader, on small trees written in the owners' layout (FORMATS.md 9.1's minimal fixture:
``data/image/origin/a.jpg`` with two faces and ``b.jpg``, a ``label.lst`` of three faces and one
duplicated line; grown to 60 photos where the splits are checked). ExpW itself is not on this
machine."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from openfer.cli import main
from openfer.data import load_dataset
from openfer.errors import DataFormatError, OpenferError
from openfer.labels import Emotion

# image_name face_id top left right bottom confidence label
LINES = ["a.jpg 0 10 20 70 60 0.98 3",          # happy: a red square at x 20-70, y 10-60
         "a.jpg 1 20 110 170 90 0.55 0",        # angry: a blue box at x 110-170, y 20-90
         "b.jpg 0 5 5 45 45 0.9 6",             # neutral
         "a.jpg 0 10 20 70 60 0.98 3"]          # the duplicated line


def write_expw(root, lines=LINES, images=("a.jpg", "b.jpg")):
    origin = root / "data" / "image" / "origin"
    origin.mkdir(parents=True)
    (root / "data" / "label").mkdir()
    for name in images:
        picture = np.full((120, 200, 3), 128, np.uint8)
        picture[10:60, 20:70] = (255, 0, 0)
        picture[20:90, 110:170] = (0, 0, 255)
        Image.fromarray(picture).save(origin / name, quality=95)
    (root / "data" / "label" / "label.lst").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def expw(tmp_path):
    return write_expw(tmp_path)


def test_faces_are_cropped_top_left_right_bottom_and_labelled_in_fer2013_order(expw):
    data = load_dataset("expw", expw, image_size=(32, 32), channels=3)
    assert len(data) == 3 and data.dropped == {"duplicate lines": 1}
    assert [data.classes[y] for y in data.labels] == [Emotion.HAPPINESS, Emotion.ANGER,
                                                      Emotion.NEUTRAL]
    assert data.native_labels.tolist() == [3, 0, 6]
    assert data.sources == ["label.lst:1", "label.lst:2", "label.lst:3"]
    red = data[0][0].float().mean(dim=(1, 2))             # face 0 is the red square, whole
    blue = data[1][0].float().mean(dim=(1, 2))
    assert red[0] > 240 and red[2] < 15 and blue[2] > 240 and blue[0] < 15
    assert data.targets["box_confidence"].tolist() == pytest.approx([0.98, 0.55, 0.9])


def test_root_may_be_the_data_folder_and_confidence_filters(expw):
    data = load_dataset("expw", expw / "data", min_confidence=0.6)
    assert len(data) == 2 and data.dropped["box confidence below 0.6"] == 1


def test_a_repeated_face_with_another_label_keeps_the_first_and_says_so(tmp_path):
    root = write_expw(tmp_path, LINES[:3] + ["b.jpg 0 5 5 45 45 0.9 2"])
    data = load_dataset("expw", root)
    assert len(data) == 3 and data.native_labels[2] == 6
    assert data.dropped == {"repeated faces with another box or label": 1}
    assert "label.lst, line 4: face 0 of b.jpg repeats line 3" in data.problems[0]


@pytest.mark.parametrize("line, message", [
    ("a.jpg 0 10 20 70 60 0.98", r"line 4: expected 8 space-separated fields"),
    ("a.jpg 2 10 20 70 60 0.98 7", r"line 4, field 'expression_label': .* not an ExpW code"),
    ("a.jpg 2 10 20 x 60 0.98 1", r"line 4, field 'face_box_right': face_box_right 'x' is not"),
    ("a.jpg 2 10 70 20 60 0.98 1", r"line 4, field 'face_box_right': the face box is empty"),
    ("a.jpg 2 10 20 70 60 nan 1", r"line 4, field 'face_box_cofidence'"),
    ("c.jpg 0 10 20 70 60 0.9 1", r"line 4, field 'image_name': 1 listed face\(s\) have no "
                                  r"image in .*origin, e.g. c.jpg"),
])
def test_malformed_lines_name_the_file_line_and_field(tmp_path, line, message):
    root = write_expw(tmp_path, LINES[:3] + [line])
    with pytest.raises(DataFormatError, match=r"label.lst, " + message):
        load_dataset("expw", root)


def test_a_box_outside_its_image_is_a_data_error_naming_the_file(tmp_path):
    root = write_expw(tmp_path, ["a.jpg 0 500 500 600 600 0.9 3"])
    data = load_dataset("expw", root)
    with pytest.raises(DataFormatError, match=r"a.jpg: face box .* lies outside the 200x120"):
        data[0]
    assert len(data.verify()) == 1                       # openfer data --verify lists it


def test_the_seeded_split_keeps_each_photo_on_one_side(tmp_path):
    lines = []
    for i in range(60):
        lines.append(f"p{i:02d}.jpg 0 10 20 70 60 0.9 {i % 3}")
        if i % 4 == 0:                                   # a second face in every 4th photo
            lines.append(f"p{i:02d}.jpg 1 20 110 170 90 0.9 {(i + 1) % 7}")
    root = write_expw(tmp_path, lines, images=[f"p{i:02d}.jpg" for i in range(60)])
    parts = {s: load_dataset("expw", root, s) for s in ("train", "val", "test")}
    photos = {s: {p.name for p in d.paths} for s, d in parts.items()}
    assert (len(photos["train"]), len(photos["val"]), len(photos["test"])) == (48, 6, 6)
    assert not (photos["train"] & photos["val"] or photos["train"] & photos["test"]
                or photos["val"] & photos["test"])
    assert sum(len(d) for d in parts.values()) == len(lines)       # no face lost or repeated
    first_labels = sorted(int(name[1:3]) % 3 for name in photos["test"])
    assert first_labels == [0, 0, 1, 1, 2, 2]            # stratified: 2 of each class's 20
    again = load_dataset("expw", root, "test")
    other = load_dataset("expw", root, "test", seed=1)
    assert again.sources == parts["test"].sources and other.sources != parts["test"].sources
    with pytest.raises(OpenferError, match="unknown ExpW split 'PublicTest'"):
        load_dataset("expw", root, "PublicTest")
    with pytest.raises(OpenferError, match="their sum must be below 1"):
        load_dataset("expw", root, "train", val_fraction=0.5, test_fraction=0.5)


def test_openfer_data_reports_the_faces_and_the_dropped_lines(expw, capsys):
    assert main(["data", "--dataset", "expw", "--root", str(expw), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 3 and report["dropped"] == {"duplicate lines": 1}
    assert report["counts"]["happiness"] == 1 and report["targets"] == ["box_confidence"]


def test_real_faces_placed_in_photos_come_back_pixel_for_pixel(fer2013_subset, tmp_path):
    """The crop geometry end to end: 150 real FER2013 PublicTest faces, each placed in a noise
    photo at its own place (lossless PNG), come back through label.lst's boxes unchanged, so the
    default model scores them exactly as the faces alone."""
    import openfer
    from openfer.data import ArrayFaceDataset
    from openfer.evaluate import evaluate

    faces = load_dataset("fer2013", fer2013_subset, "PublicTest")
    n, rng = 150, np.random.default_rng(0)
    root = write_expw(tmp_path, ["x 0 0 0 1 1 1 0"], images=())
    lines = []
    for i in range(n):
        top, left = (int(v) for v in rng.integers(0, 100, 2))
        scene = rng.integers(0, 256, (160, 180), dtype=np.uint8)
        scene[top:top + 48, left:left + 48] = faces.images[i, 0].numpy()
        Image.fromarray(scene).save(root / "data" / "image" / "origin" / f"p{i:03d}.png")
        lines.append(f"p{i:03d}.png 0 {top} {left} {left + 48} {top + 48} 0.99 {faces.labels[i]}")
    (root / "data" / "label" / "label.lst").write_text("\n".join(lines) + "\n")
    expw = load_dataset("expw", root).to_array_dataset()
    assert torch.equal(expw.images, faces.images[:n])
    alone = ArrayFaceDataset(faces.images[:n].permute(0, 2, 3, 1).numpy(), faces.labels[:n],
                             faces.classes, name="alone")
    model = openfer.load_model("default")
    assert evaluate(model, expw)["accuracy"] == evaluate(model, alone)["accuracy"] > 0.6
