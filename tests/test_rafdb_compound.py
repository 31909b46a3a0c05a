"""RAF-DB's compound subset (FORMATS.md 1.5): 11 compound expressions, read in the owners' layout
(tested on trees written in that layout from real FER2013 faces: the data set is not on this
machine), and the default fine-tuned on it with a fresh 11-class classifier."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import openfer
from openfer.cli import main
from openfer.data import load_dataset
from openfer.engine.recipe import RecipeError, load_recipe
from openfer.engine.task import _start_from
from openfer.errors import DataFormatError
from openfer.labels import RAFDB_COMPOUND, Emotion, parse_emotion

COMPOUND = [e.value for e in RAFDB_COMPOUND.emotions]


@pytest.fixture(scope="module")
def compound_tree(tmp_path_factory, fer2013_csv):
    """``compound/`` with 110 train and 33 test faces (real FER2013 PublicTest faces enlarged to
    RAF's 100x100 RGB aligned JPEGs), labels 1..11 in turn."""
    faces = load_dataset("fer2013", fer2013_csv, "PublicTest").images[:143, 0].numpy()
    root = tmp_path_factory.mktemp("raf") / "compound"
    (root / "EmoLabel").mkdir(parents=True)
    (root / "Image" / "aligned").mkdir(parents=True)
    lines = []
    for i, face in enumerate(faces):
        split, number = ("train", i + 1) if i < 110 else ("test", i - 109)
        stem = f"{split}_{number:04d}"
        Image.fromarray(face).resize((100, 100), Image.LANCZOS).convert("RGB").save(
            root / "Image" / "aligned" / f"{stem}_aligned.jpg", quality=95)
        lines.append(f"{stem}.jpg {i % 11 + 1}")
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return root


def test_compound_names_are_emotions_in_any_spelling():
    assert parse_emotion("Happily Surprised") is Emotion.HAPPILY_SURPRISED
    assert parse_emotion("fearfully_angry") is parse_emotion("Fearfully-Angry") is \
        Emotion.FEARFULLY_ANGRY
    assert RAFDB_COMPOUND.to_emotion(11) is Emotion.DISGUSTEDLY_SURPRISED
    assert RAFDB_COMPOUND.name_of(1) == "Happily Surprised"


def test_the_compound_subset_reads_in_rafs_order_with_its_split(compound_tree):
    train = load_dataset("rafdb_compound", compound_tree, "train", image_size=(48, 48))
    test = load_dataset("rafdb_compound", compound_tree.parent, "test")   # the parent works too
    assert (len(train), len(test)) == (110, 33)
    assert tuple(train.classes) == tuple(COMPOUND)
    assert train.labels[:12].tolist() == list(range(11)) + [0]
    assert train.native_labels[:3].tolist() == [1, 2, 3]
    assert train.name == "rafdb_compound:train"
    assert len(load_dataset("rafdb_compound", compound_tree, "all")) == 143


def test_a_label_outside_1_to_11_names_the_file_line_and_the_codes(compound_tree, tmp_path):
    import shutil
    root = tmp_path / "compound"
    shutil.copytree(compound_tree, root)
    label_file = root / "EmoLabel" / "list_patition_label.txt"
    lines = label_file.read_text().splitlines()
    lines[4] = lines[4].rsplit(" ", 1)[0] + " 12"
    label_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as error:
        load_dataset("rafdb_compound", root, "train")
    message = str(error.value)
    assert "list_patition_label.txt" in message and "line 5" in message
    assert "RAF-DB compound code" in message and "11 Disgustedly Surprised" in message


def test_fine_tuning_from_the_default_keeps_all_but_its_classifier():
    model = openfer.create_model("fernet_m", classes=COMPOUND)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    _start_from(model, "default", {"name": "fernet_m_rafdb_compound"})
    default = openfer.load_model("default").state_dict()
    for key, value in model.state_dict().items():
        if key.startswith("fc."):
            assert torch.equal(value, fresh[key]) and value.shape[0] == 11
        else:
            assert torch.equal(value, default[key]), key
    with pytest.raises(RecipeError, match="same architecture"):
        _start_from(openfer.create_model("fernet_s", classes=COMPOUND), "default", {"name": "r"})


@pytest.mark.slow
def test_the_recipe_trains_and_the_model_predicts_compound_expressions(compound_tree, tmp_path,
                                                                       capsys):
    from openfer.engine.train import train

    recipe = load_recipe("fernet_m_rafdb_compound", [
        f"data.root={compound_tree}", "trainer.max_epochs=1", "trainer.progress_bar=false"])
    summary = train(recipe, output_dir=tmp_path / "run")
    model = openfer.load_model(summary["weights"])
    assert tuple(model.meta.classes) == tuple(COMPOUND)
    assert summary["metrics"]["n"] == 33
    image = compound_tree / "Image" / "aligned" / "test_0001_aligned.jpg"
    assert main(["predict", str(image), "--model", summary["weights"], "--no-detect",
                 "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["label"] in COMPOUND and set(record["scores"]) == set(COMPOUND)
    assert np.isclose(sum(record["scores"].values()), 1, atol=1e-3)
