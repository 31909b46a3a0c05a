"""FER+ reader (FORMATS.md 8.3 and its minimal fixture 8.5): fer2013new.csv beside FER2013's
pixels, and the folders FERPlus's generate_training_data.py writes, label.csv in both row
variants. The vote file is not on this machine: the fixtures are written in its exact format;
the pairing is also checked against the real FER2013 file's PublicTest rows."""

import gzip

import numpy as np
import pytest
from PIL import Image

from conftest import write_fer2013_csv
from openfer.data import load_dataset
from openfer.data.ferplus import majority_label
from openfer.errors import DataFormatError, OpenferError
from openfer.labels import Emotion

HEADER = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt," \
         "unknown,NF"
ROWS = [  # usage, name, votes
    ("Training", "fer0000000.png", "4,0,0,1,3,2,0,0,0,0"),     # neutral 4 of 9 after noise: none
    ("Training", "fer0000001.png", "6,0,1,1,2,0,0,0,0,0"),     # neutral 6 of 8: neutral
    ("PublicTest", "fer0000002.png", "0,10,0,0,0,0,0,0,0,0"),  # happiness
    ("PublicTest", "", "0,0,0,0,0,0,0,0,0,10"),                # not a face, no image name
    ("PrivateTest", "fer0000004.png", "0,0,0,0,0,0,0,7,3,0"),  # contempt
    ("PrivateTest", "fer0000005.png", "1,1,1,1,1,0,0,0,5,0"),  # unknown wins
]


@pytest.fixture
def fer_plus(tmp_path):
    usages = [(0, u) for u, _, _ in ROWS]
    write_fer2013_csv(tmp_path / "fer2013.csv", usages)
    (tmp_path / "fer2013new.csv").write_text(
        HEADER + "\n" + "".join(f"{u},{n},{v}\n" for u, n, v in ROWS))
    return tmp_path


def test_majority_mode_as_ferplus_makes_it():
    assert majority_label(np.array([4, 0, 0, 1, 3, 2, 0, 0, 0, 0])) is None   # 4 of 9
    assert majority_label(np.array([6, 0, 1, 1, 2, 0, 0, 0, 0, 0])) == 0     # 6 of 8 (1s zeroed)
    assert majority_label(np.array([0, 0, 0, 0, 0, 0, 0, 7, 3, 0])) == 7     # contempt
    assert majority_label(np.array([1, 1, 1, 1, 1, 0, 0, 0, 5, 0])) is None  # unknown
    assert majority_label(np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1])) is None  # all noise


def test_votes_label_fer2013s_pixels_row_by_row_within_each_usage(fer_plus):
    train = load_dataset("ferplus", fer_plus / "fer2013.csv", "Training")
    assert len(train) == 1 and train.classes[train.labels[0]] is Emotion.NEUTRAL
    assert train.sources == ["fer2013.csv:3"] and train.dropped["no majority, unknown or not "
                                                                "a face"] == 1
    public = load_dataset("ferplus", fer_plus, "PublicTest")           # the folder works too
    assert public.classes[public.labels[0]] is Emotion.HAPPINESS
    assert public.dropped == {"not a face (no image name)": 1}
    private = load_dataset("ferplus", fer_plus / "fer2013.csv", "PrivateTest")
    assert private.classes[private.labels[0]] is Emotion.CONTEMPT
    assert private.targets["votes"].tolist() == [[0, 0, 0, 0, 0, 0, 0, 7, 3, 0]]
    assert len(train.classes) == 8 and train.classes[0] is Emotion.NEUTRAL
    pixels = load_dataset("fer2013", fer_plus / "fer2013.csv", "PublicTest")
    assert np.array_equal(public.images[0], pixels.images[0])      # the same face


def test_paired_with_the_real_fer2013_file(fer2013_csv, tmp_path):
    """Real FER2013 (no PrivateTest in ../shared): a vote file of the same PublicTest row count
    pairs row by row; one row short is refused, naming both files."""
    with gzip.open(fer2013_csv, "rt") as handle:
        public = sum(1 for line in handle if line.rstrip().endswith(",PublicTest"))
    votes = tmp_path / "fer2013new.csv"
    rows = [f"PublicTest,fer{i:07d}.png,0,{8 + i % 3},0,0,0,0,0,0,0,0" for i in range(public)]
    votes.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    data = load_dataset("ferplus", fer2013_csv, "PublicTest", labels=votes)
    assert len(data) == public == 3589 and set(data.labels.tolist()) == {1}
    pixels = load_dataset("fer2013", fer2013_csv, "PublicTest")
    assert np.array_equal(data.images[100], pixels.images[100])
    votes.write_text(HEADER + "\n" + "\n".join(rows[:-1]) + "\n")
    with pytest.raises(OpenferError, match="3588 PublicTest rows and .*fer2013.csv.gz has 3589"):
        load_dataset("ferplus", fer2013_csv, "PublicTest", labels=votes)


@pytest.mark.parametrize("variant", ["plain", "with face box"])
def test_generated_folders_in_both_label_csv_variants(tmp_path, variant):
    folder = tmp_path / "FER2013Valid"
    folder.mkdir()
    lines = []
    for i, (_, name, votes) in enumerate(ROWS):
        if name:
            Image.new("L", (48, 48), 30 * i).save(folder / name)
            box = '"(0, 0, 48, 48)",' if variant == "with face box" else ""
            lines.append(f"{name},{box}{votes}")
    (folder / "label.csv").write_text("\n".join(lines) + "\n")
    data = load_dataset("ferplus", tmp_path, "PublicTest", image_size=(40, 40))
    assert [data.classes[y].value for y in data.labels] == ["neutral", "happiness", "contempt"]
    assert data[0][0].shape == (1, 40, 40) and data.targets["votes"].shape == (3, 10)


@pytest.mark.parametrize("text, message", [
    ("Usage,Image name,neutral\nTraining,a.png,1\n", "no column 'happiness'"),
    ("Usage,pixels\nTraining,1\n", "no 'Image name' column"),
    (HEADER + "\nTraining,fer0.png,1,2,x,0,0,0,0,0,0,0\n", "line 2: expected 10 integer"),
    (HEADER + "\nValidation,fer0.png,1,2,0,0,0,0,0,0,0,0\n", "unknown Usage 'Validation'"),
    (HEADER + "\nTraining,fer0.png,1,-2,0,0,0,0,0,0,0,0\n", "between 0 and the number"),
])
def test_malformed_vote_files_name_file_and_line(fer_plus, text, message):
    (fer_plus / "fer2013new.csv").write_text(text)
    with pytest.raises(DataFormatError, match=message) as error:
        load_dataset("ferplus", fer_plus, "Training")
    assert "fer2013new.csv" in str(error.value)


def test_missing_pieces_are_explained(tmp_path, fer_plus):
    (fer_plus / "fer2013new.csv").unlink()
    with pytest.raises(OpenferError, match="download fer2013new.csv from microsoft/FERPlus"):
        load_dataset("ferplus", fer_plus, "Training")
    with pytest.raises(OpenferError, match="use Training, PublicTest or PrivateTest"):
        load_dataset("ferplus", fer_plus, "all")
    (tmp_path / "FER2013Train").mkdir()
    (tmp_path / "FER2013Train" / "label.csv").write_text("fer0000001.png,6,0,1,1,2,0,0,0,0,0\n")
    with pytest.raises(DataFormatError, match="1 listed images are missing, e.g. fer0000001"):
        load_dataset("ferplus", tmp_path, "Training")


def test_the_ferplus_recipe_trains_an_8_class_model_on_soft_labels(fer2013_subset, tmp_path):
    """fernet_m_ferplus for one epoch on real faces (1,200 Training and 300 PublicTest rows of
    FER2013) with votes written in FER+'s format, in FERPlus's crossentropy mode (the label
    distribution as the target): the model gets FER+'s 8 classes."""
    from openfer.checkpoint import load_weights
    from openfer.engine.recipe import load_recipe
    from openfer.engine.train import train

    rng = np.random.default_rng(0)

    def votes():
        first = rng.integers(0, 8)
        counts = np.zeros(10, int)
        counts[first], counts[(first + 1) % 8], counts[8] = 6, 3, 1
        return ",".join(map(str, counts))
    rows = [f"{usage},fer{i:07d}.png,{votes()}"
            for usage, n in (("Training", 1200), ("PublicTest", 300)) for i in range(n)]
    (tmp_path / "fer2013new.csv").write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    recipe = load_recipe("fernet_m_ferplus", [
        f"data.root={fer2013_subset}", f"data.options.labels={tmp_path / 'fer2013new.csv'}",
        "data.options.mode=crossentropy", "loss.soft_targets=label_distribution",
        "trainer.max_epochs=1", "trainer.progress_bar=false", "trainer.precision=32"])
    summary = train(recipe, output_dir=tmp_path / "run")
    assert summary["metrics"]["n"] == 300
    model = load_weights(tmp_path / "run" / "best.safetensors")
    assert model.meta.classes[-1] == "contempt" and len(model.meta.classes) == 8


def test_crossentropy_mode_as_ferplus_makes_it():
    from openfer.data.ferplus import vote_distribution

    # the top classes until they hold 75 % of the (non-single) votes: 4 + 3 of 9
    np.testing.assert_allclose(vote_distribution(np.array([4, 0, 0, 1, 3, 2, 0, 0, 0, 0])),
                               [4 / 7, 0, 0, 0, 3 / 7, 0, 0, 0])
    # single votes zeroed: 6 of the remaining 8 is already 75 %
    np.testing.assert_allclose(vote_distribution(np.array([6, 0, 1, 1, 2, 0, 0, 0, 0, 0])),
                               [1, 0, 0, 0, 0, 0, 0, 0])
    # unknown after a class is left out
    np.testing.assert_allclose(vote_distribution(np.array([0, 6, 0, 0, 0, 0, 0, 0, 4, 0])),
                               [0, 1, 0, 0, 0, 0, 0, 0])
    assert vote_distribution(np.array([0, 5, 0, 0, 0, 0, 0, 0, 5, 0])) is None   # half only
    assert vote_distribution(np.array([2, 2, 2, 2, 2, 0, 0, 0, 0, 0])) is None   # 5 tied > 3
    assert vote_distribution(np.array([0, 0, 0, 0, 0, 0, 0, 0, 10, 0])) is None  # unknown
    assert vote_distribution(np.array([1] * 10)) is None                         # all noise


def test_crossentropy_mode_keeps_faces_with_their_distribution(fer_plus):
    data = load_dataset("ferplus", fer_plus, "Training", mode="crossentropy")
    assert len(data) == 2                    # the 4/3/2 face is kept too, labelled neutral
    np.testing.assert_allclose(data.targets["label_distribution"][0],
                               [4 / 7, 0, 0, 0, 3 / 7, 0, 0, 0], rtol=1e-6)
    majority = load_dataset("ferplus", fer_plus, "Training")
    assert majority.targets["label_distribution"].tolist() == [[1, 0, 0, 0, 0, 0, 0, 0]]
    with pytest.raises(OpenferError, match="mode='soft': use majority or crossentropy"):
        load_dataset("ferplus", fer_plus, "Training", mode="soft")


def test_per_class_targets_follow_the_labels_into_the_models_class_order(fer_plus):
    from openfer.engine.datamodule import to_model_classes

    data = load_dataset("ferplus", fer_plus, "Training", mode="crossentropy")
    order = ("anger", "contempt", "disgust", "fear", "happiness", "neutral", "sadness",
             "surprise")
    data = to_model_classes(data, order)
    shares = dict(zip(order, data.targets["label_distribution"][0].tolist()))
    assert shares["neutral"] == pytest.approx(4 / 7) and shares["anger"] == pytest.approx(3 / 7)
    assert shares["disgust"] == 0 and data.classes[data.labels[0]].value == "neutral"


def test_soft_loss_is_cross_entropy_against_the_distribution():
    import torch

    from openfer.engine.recipe import load_recipe
    from openfer.engine.task import ClassificationTask

    task = ClassificationTask(load_recipe("fernet_m_ferplus", ["loss.label_smoothing=0",
                                                               "loss.soft_targets=votes8"]))
    assert task.target_kinds == {"votes8": "distribution"}
    logits = torch.randn(5, 8)
    labels = torch.tensor([0, 3, 7, 1, 1])
    one_hot = torch.nn.functional.one_hot(labels, 8).float()
    assert torch.allclose(task.soft_loss(logits, one_hot),
                          torch.nn.functional.cross_entropy(logits, labels), atol=1e-6)
    half = (one_hot + torch.nn.functional.one_hot(torch.tensor([1, 1, 1, 1, 0]), 8)) / 2
    expected = -(half * torch.log_softmax(logits, 1)).sum(1).mean()
    assert torch.allclose(task.soft_loss(logits, half), expected, atol=1e-6)


def test_soft_targets_need_the_classification_method():
    from openfer.engine.recipe import load_recipe
    from openfer.engine.train import TASKS
    from openfer.errors import RecipeError

    recipe = load_recipe("resnet18_centerloss_rafdb", ["loss.soft_targets=x"])
    with pytest.raises(RecipeError, match="loss.soft_targets work with method 'classification'"):
        TASKS[recipe["method"]](recipe)


def test_a_missing_soft_target_is_named_before_training(fer_plus, tmp_path):
    from openfer.engine.recipe import load_recipe
    from openfer.engine.train import train

    recipe = load_recipe("fernet_m_ferplus", [f"data.root={fer_plus}", "data.val_split=null",
                                              "loss.soft_targets=probabilities"])
    with pytest.raises(OpenferError, match="has no target 'probabilities'.*label_distribution"):
        train(recipe, output_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()
