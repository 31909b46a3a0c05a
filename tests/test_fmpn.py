"""FMPN (VCIP 2019): the three networks, CK+ and FMPN's released files, motion masks, both
training stages and the subject-independent k-fold runner."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import openfer
from conftest import SHARED
from openfer.data import load_dataset
from openfer.errors import DataFormatError, OpenferError

FMPN_DATA = SHARED / "data" / "fmpn"


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


# -- the networks -----------------------------------------------------------------------------

def test_parameter_counts_and_keys_equal_the_originals():
    model = openfer.create_model("fmpn")
    assert _count(model.generator) == 6_040_968          # ResFaceGenNet, 1x299x299
    assert _count(model.fusion) == 377                   # FusionNet
    assert _count(model.classifier) == 21_799_911        # Inception3(7, aux_logits=False)
    assert _count(model) == 27_841_256
    assert (len(model.generator.state_dict()), len(model.fusion.state_dict()),
            len(model.classifier.state_dict())) == (87, 27, 566)
    assert "feature_extractor.9.conv_block.2.weight" in model.generator.state_dict()  # PReLU
    assert model.meta.input_size == (299, 299) and model.meta.mean == (0.0, 0.0, 0.0)
    assert model.classifier.transform_input                # as the original, on [0, 1] input


def test_generator_decodes_any_input_size_to_itself_and_masks_lie_in_0_1():
    model = openfer.create_model("fmpn", classifier="fernet_s", generator_width=8).eval()
    for side in (47, 48, 50, 299):
        with torch.no_grad():
            mask = model.generator(torch.rand(2, 1, side, side))
        assert mask.shape == (2, 1, side, side)
        assert float(mask.min()) > 0 and float(mask.max()) < 1
    logits, mask = model.forward_with_mask(torch.rand(3, 3, 48, 48))
    assert logits.shape == (3, 7) and mask.shape == (3, 1, 48, 48)
    assert model.fusion.model[1].out_channels == 1        # a one-channel classifier
    single = model(torch.rand(1, 3, 48, 48))              # one image, no batch trick needed
    assert single.shape == (1, 7)


def test_the_classifier_sees_fusion_of_the_face_and_the_masked_grey_face():
    model = openfer.create_model("fmpn", classifier="resnet18", generator_width=8,
                                 input_size=64).eval()
    x = torch.rand(2, 3, 64, 64)
    seen = {}
    model.classifier.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    logits, mask = model.forward_with_mask(x)
    from openfer.data.dataset import to_grey as grey         # the luma openfer uses everywhere
    fused = model.fusion(x, mask * grey(x))
    expected = (fused - model.classifier_mean) / model.classifier_std
    assert torch.allclose(seen["x"], expected, atol=1e-6)


def test_three_parts_save_and_load_separately_and_from_the_originals_files(tmp_path):
    from openfer.models.fmpn import load_parts, save_parts

    torch.manual_seed(0)
    source = openfer.create_model("fmpn", classifier="fernet_s", generator_width=8)
    written = save_parts(source, tmp_path / "parts")
    assert sorted(p.name for p in written.values()) == [
        "classifier.safetensors", "fusion.safetensors", "generator.safetensors"]
    target = openfer.create_model("fmpn", classifier="fernet_s", generator_width=8)
    load_parts(target, tmp_path / "parts", parts=("generator",))
    assert torch.equal(target.generator.feature_extractor[0].weight,
                       source.generator.feature_extractor[0].weight)
    assert not torch.equal(target.fusion.process_a[0].weight, source.fusion.process_a[0].weight)
    load_parts(target, tmp_path / "parts")
    assert all(torch.equal(a, b) for a, b in zip(target.state_dict().values(),
                                                 source.state_dict().values()))
    original = tmp_path / "original"                     # <epoch>_net_<part>.pth, DataParallel
    original.mkdir()
    for part, name in (("generator", "resface"), ("fusion", "fusion"), ("classifier", "cls")):
        torch.save({f"module.{k}": v for k, v in getattr(source, part).state_dict().items()},
                   original / f"300_net_{name}.pth")
    fresh = openfer.create_model("fmpn", classifier="fernet_s", generator_width=8)
    load_parts(fresh, original)
    assert torch.equal(fresh.fusion.model[1].weight, source.fusion.model[1].weight)
    wider = openfer.create_model("fmpn", classifier="fernet_s", generator_width=16)
    with pytest.raises(OpenferError, match="does not fit"):
        load_parts(wider, tmp_path / "parts", parts=("generator",))


def test_whole_fmpn_round_trips_through_a_weights_file(tmp_path):
    from openfer.checkpoint import save_weights

    model = openfer.create_model("fmpn", classifier="fernet_s", generator_width=8).eval()
    path = save_weights(model, tmp_path / "fmpn.safetensors")
    loaded = openfer.load_model(path).eval()
    x = torch.rand(2, 3, 48, 48)
    assert torch.allclose(model(x), loaded(x))


# -- FMPN's released files (real, in ../shared) --------------------------------------------------

@pytest.fixture(scope="module")
def fmpn_data():
    if not FMPN_DATA.is_dir():
        pytest.skip(f"{FMPN_DATA} not found")
    return FMPN_DATA


@pytest.mark.parametrize("name,classes,side,images,subjects", [
    ("CKPlus", 7, 70, 981, 118), ("MMI", 6, 81, 624, 31)])
def test_released_masks_and_lists_are_read_and_subject_independent(
        fmpn_data, name, classes, side, images, subjects):
    from openfer.data.fmpn_layout import read_fmpn_masks
    from openfer.data.folds import (check_subject_independent, fold_of_names, read_name_list,
                                    subject_of)

    root = fmpn_data / name
    for fold in range(10):                               # one mask per class per fold
        masks = read_fmpn_masks(root, fold, classes)
        assert masks.shape == (classes, side, side) and masks.dtype == np.uint8
        assert masks.min() == 0 and masks.max() == 255
        assert 100 < masks.mean() < 150
    tests = [read_name_list(root / f"test_ids_{k}.csv") for k in range(10)]
    names = [n for fold in tests for n in fold]
    assert len(names) == len(set(names)) == images       # test folds partition the images
    check_subject_independent([subject_of(n) for n in names], fold_of_names(root, names))
    assert len({subject_of(n) for n in names}) == subjects
    for k in range(10):                                  # train = everything else
        train = read_name_list(root / f"train_ids_{k}.csv")
        assert set(train) == set(names) - set(tests[k])
        assert not {subject_of(n) for n in train} & {subject_of(n) for n in tests[k]}


def test_released_label_pickles_are_read_as_given(fmpn_data):
    from openfer.data.fmpn_layout import read_label_pickle

    ck = read_label_pickle(fmpn_data / "CKPlus" / "emotion_labels.pkl")
    assert len(ck) == 582 and ck["S133_010"] == 5.0
    counts = {v: list(ck.values()).count(v) for v in set(ck.values())}
    assert counts == {1: 45, 2: 18, 3: 59, 4: 25, 5: 69, 6: 28, 7: 83, -1: 255}
    mmi = read_label_pickle(fmpn_data / "MMI" / "emotion_labels.pkl")
    assert len(mmi) == 213 and set(mmi.values()) == set(range(6))


def test_a_label_pickle_that_names_a_function_is_refused(tmp_path):
    from openfer.data.fmpn_layout import read_label_pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "emotion_labels.pkl"
    path.write_bytes(pickle.dumps({"S005_001": Evil()}, protocol=2))
    with pytest.raises(DataFormatError, match="opcode GLOBAL at byte .* is not plain data"):
        read_label_pickle(path)


def test_a_label_pickle_that_asks_for_a_huge_memo_is_refused_at_once(tmp_path):
    """Found by fuzzing: a mutated memo index made the unpickler reserve gigabytes (14 s)."""
    import struct
    import time

    from openfer.data.fmpn_layout import read_label_pickle

    path = tmp_path / "emotion_labels.pkl"
    path.write_bytes(b"\x80\x02}r" + struct.pack("<I", 0x7FFFFFF0) + b".")
    start = time.perf_counter()
    with pytest.raises(DataFormatError, match="memo index 2147483632 at byte 3 is out of range"):
        read_label_pickle(path)
    assert time.perf_counter() - start < 1


def test_fmpn_layout_reader_labels_a_fold_from_the_lists(fmpn_data, tmp_path):
    import shutil
    root = tmp_path / "CKPlus"
    shutil.copytree(fmpn_data / "CKPlus", root)
    names = (root / "test_ids_3.csv").read_text().split()
    (root / "imgs").mkdir()
    for name in names:                                   # stand-in faces for the listed names
        Image.new("L", (64, 64), 128).save(root / "imgs" / name)
    test = load_dataset("ckplus_fmpn", root, "test", image_size=(48, 48), channels=3, fold=3)
    assert len(test) == len(names) == 90
    assert [e.value for e in test.classes][:2] == ["anger", "contempt"]
    table = pickle.load(open(root / "emotion_labels.pkl", "rb"), encoding="latin1")
    first = "_".join(sorted(names)[0].split("_")[:2])
    assert test.labels[sorted(range(len(names)), key=lambda i: names[i])[0]] == \
        int(table[first]) - 1
    with pytest.raises(OpenferError, match="needs fold"):
        load_dataset("ckplus_fmpn", root, "test", image_size=(48, 48), channels=3)


# -- CK+ in its owners' layout ------------------------------------------------------------------

#: CK+ codes per synthetic sequence: 1 anger ... 7 surprise (no 0: neutral is the first frame).
CODES = (1, 2, 3, 4, 5, 6, 7)


def write_ckplus(root, subjects=6, frames=5, side=64, seed=0):
    """CK+ in the owners' layout (FORMATS.md 4): frames 8-digit and 1-based, labels as floats in
    exponent notation, an unlabelled sequence with an empty Emotion folder, a .DS_Store, one RGB
    sequence. The expression is a bright square whose position encodes the class and which
    grows over the sequence from a neutral first frame."""
    rng = np.random.default_rng(seed)
    for s in range(subjects):
        subject = f"S{5 + s * 5:03d}"
        for q, code in enumerate(CODES, 1):
            folder = root / "cohn-kanade-images" / subject / f"{q:03d}"
            folder.mkdir(parents=True)
            for f in range(1, frames + 1):
                image = rng.integers(60, 90, (side, side)).astype(np.uint8)
                strength = (f - 1) / (frames - 1)
                row, col = divmod(code - 1, 3)
                image[4 + row * 20:16 + row * 20, 4 + col * 20:16 + col * 20] = \
                    int(75 + 180 * strength)
                pixels = Image.fromarray(image)
                if s == 1 and q == 2:
                    pixels = pixels.convert("RGB")
                pixels.save(folder / f"{subject}_{q:03d}_{f:08d}.png")
            labels = root / "Emotion" / subject / f"{q:03d}"
            labels.mkdir(parents=True)
            (labels / f"{subject}_{q:03d}_{frames:08d}_emotion.txt").write_text(
                f"   {code:.7e}\n")
        unlabelled = root / "cohn-kanade-images" / subject / "009"
        unlabelled.mkdir()
        Image.new("L", (side, side)).save(unlabelled / f"{subject}_009_00000001.png")
        (root / "Emotion" / subject / "009").mkdir()
    (root / "cohn-kanade-images" / "S005" / "001" / ".DS_Store").write_bytes(b"\0\1")
    return root


def test_ckplus_reader_takes_the_last_three_frames_of_labelled_sequences(tmp_path):
    root = write_ckplus(tmp_path / "ck")
    data = load_dataset("ckplus", root, "all", image_size=(48, 48), channels=1)
    assert len(data) == 6 * 7 * 3                        # unlabelled sequences skipped
    assert [e.value for e in data.classes] == ["anger", "contempt", "disgust", "fear",
                                               "happiness", "sadness", "surprise"]
    assert data.sources[:3] == [str(root / "cohn-kanade-images/S005/001" /
                                    f"S005_001_0000000{f}.png") for f in (3, 4, 5)]
    assert set(data.native_labels.tolist()) == set(CODES)
    assert str(data.reference_paths[0]).endswith("S005_001_00000001.png")
    image, label = data[3 * 7 + 3]                       # S010/002: stored as RGB
    assert image.shape == (1, 48, 48) and label == 1
    with_neutral = load_dataset("ckplus", root, "all", image_size=(48, 48), channels=1,
                                neutral=True, contempt=False)
    assert len(with_neutral) == 6 * 6 * 4 and with_neutral.dropped["contempt sequences"] == 6
    assert with_neutral.classes[0].value == "neutral"


def test_ckplus_label_file_with_a_bad_code_names_the_file(tmp_path):
    root = write_ckplus(tmp_path / "ck", subjects=2)
    bad = root / "Emotion/S010/003/S010_003_00000005_emotion.txt"
    bad.write_text("   9.0000000e+00\n")
    with pytest.raises(DataFormatError, match="S010_003_00000005_emotion.txt.*not one of 0..7"):
        load_dataset("ckplus", root, "all", image_size=(48, 48), channels=1)


def test_generated_folds_never_share_a_subject(tmp_path):
    root = write_ckplus(tmp_path / "ck", subjects=6)
    seen = set()
    for fold in range(3):
        train = load_dataset("ckplus", root, "train", image_size=(32, 32), channels=1,
                             fold=fold, folds=3)
        test = load_dataset("ckplus", root, "test", image_size=(32, 32), channels=1,
                            fold=fold, folds=3)
        assert not set(train.subjects) & set(test.subjects)
        assert len(train) + len(test) == 126
        seen |= set(test.sources)
    assert len(seen) == 126                              # the test folds partition the data


# -- motion masks ---------------------------------------------------------------------------------

def test_sequence_masks_light_up_where_each_class_moves(tmp_path):
    from openfer.data.motion_masks import compute_class_masks, read_masks, write_masks

    root = write_ckplus(tmp_path / "ck", subjects=4)
    data = load_dataset("ckplus", root, "train", image_size=(60, 60), channels=1,
                        fold=0, folds=2)
    masks = compute_class_masks(data)
    assert masks.shape == (7, 60, 60) and masks.dtype == np.uint8
    for c, code in enumerate(CODES):
        row, col = divmod(code - 1, 3)
        region = masks[c, 4 + row * 18:14 + row * 18, 4 + col * 18:14 + col * 18]
        assert region.mean() > 200 > masks[c].mean() + 100, c    # the moving square, bright
    assert masks.min() == 0 and masks.max() == 255
    write_masks(masks, tmp_path / "imgs_res" / "0")
    assert np.array_equal(read_masks(tmp_path / "imgs_res" / "0", 7), masks)


def test_masks_come_from_the_training_fold_only(tmp_path):
    from openfer.data.motion_masks import compute_class_masks

    root = write_ckplus(tmp_path / "ck", subjects=4)
    kw = dict(image_size=(32, 32), channels=1, fold=0, folds=2)
    before = compute_class_masks(load_dataset("ckplus", root, "train", **kw))
    test = load_dataset("ckplus", root, "test", **kw)
    for path in test.sources:                           # change every test image
        Image.new("L", (64, 64), 255).save(path)
    after = compute_class_masks(load_dataset("ckplus", root, "train", **kw))
    assert np.array_equal(before, after)


def test_cropped_sequences_subtract_the_neutral_frame_cropped_alike(tmp_path):
    """With face regions (crop=detect), each neutral frame is cut by its sample's region:
    the masks equal those of the same sequences with every file cropped beforehand."""
    from openfer.data import ImageFileDataset
    from openfer.data.motion_masks import compute_class_masks

    root = write_ckplus(tmp_path / "ck", subjects=2)
    whole = load_dataset("ckplus", root, "all", image_size=(32, 32), channels=1)
    box = (2, 2, 40, 40)
    regioned = ImageFileDataset(whole.paths, whole.labels, whole.classes, image_size=(32, 32),
                                channels=1, regions=[box] * len(whole), name="regioned")
    regioned.reference_paths = whole.reference_paths

    def cropped(path):
        out = tmp_path / "cropped" / Path(path).name
        if not out.exists():
            out.parent.mkdir(exist_ok=True)
            Image.open(path).crop((2, 2, 42, 42)).save(out)
        return out
    precropped = ImageFileDataset([cropped(p) for p in whole.paths], whole.labels,
                                  whole.classes, image_size=(32, 32), channels=1,
                                  name="precropped")
    precropped.reference_paths = [cropped(p) for p in whole.reference_paths]
    assert np.array_equal(compute_class_masks(regioned), compute_class_masks(precropped))


def test_image_data_masks_are_class_mean_minus_neutral_mean(fer2013_subset):
    from openfer.data.motion_masks import compute_class_masks

    data = load_dataset("fer2013", fer2013_subset, "Training", image_size=(48, 48), channels=1)
    masks = compute_class_masks(data)
    assert masks.shape == (7, 48, 48) and masks.dtype == np.uint8
    faces = data.images[:, 0].double().numpy()
    labels = np.asarray(data.labels)
    happy, neutral = (data.classes.index(openfer.labels.Emotion(n))
                      for n in ("happiness", "neutral"))
    difference = np.abs(faces[labels == happy].mean(0) - faces[labels == neutral].mean(0))
    expected = (difference - difference.min()) / (difference.max() - difference.min()) * 255
    assert np.abs(masks[happy] - expected).max() <= 1
    others = [c for c in range(7) if c != neutral]
    assert np.abs(masks[neutral].astype(float) - masks[others].mean(0)).max() <= 1


# -- training -------------------------------------------------------------------------------------

def test_image_and_mask_get_the_same_crop_and_flip():
    from openfer.engine.fmpn import FMPNTask
    from openfer.engine.recipe import load_recipe

    recipe = load_recipe("fmpn_fer2013", ["model.args.generator_width=8",
                                          "augment={hflip: 0.5, rotation: 20, translate: 0.1}"])
    task = FMPNTask(recipe)
    torch.manual_seed(0)
    masks = torch.rand(7, 1, 48, 48)
    task.class_masks = masks
    labels = torch.tensor([0, 3, 6, 2])
    images = (masks[labels] * 255).round().to(torch.uint8).expand(-1, 3, -1, -1)  # face = mask
    x, target = task._inputs(images, labels, train=True)
    assert not torch.allclose(target, masks[labels], atol=0.05)   # it was augmented ...
    assert torch.allclose(x[:, :1], target, atol=1 / 255 + 1e-6)  # ... exactly as the image


def test_linear_decay_schedule_is_fmpns_lambda_policy():
    from openfer.engine.task import build_scheduler

    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    config = {"name": "linear_decay", "decay_epochs": 150}
    rule = build_scheduler(config, optimizer, 3000, 300)["scheduler"].lr_lambdas[0]
    original = [1.0 - max(0, e + 1 + 1 - 150) / float(150 + 1) for e in range(300)]
    assert [rule(e) for e in range(300)] == original
    assert rule(0) == 1.0 and rule(147) == 1.0 and rule(298) == pytest.approx(1 / 151)
    assert rule(299) == 0.0          # the policy's last epoch runs at lr 0, as the original's
    short = build_scheduler(config, optimizer, 80, 8)["scheduler"].lr_lambdas[0]
    # a run shorter than decay_epochs decays over its own epochs, not from 7 % of the rate
    assert [short(e) for e in range(8)] == pytest.approx([(7 - e) / 9 for e in range(8)])


def test_k_fold_runner_trains_both_stages_per_fold_and_resumes(tmp_path):
    """Two chained stages per fold on a synthetic CK+ tree (2 folds to keep CI short; the
    runner is the same for 10)."""
    pytest.importorskip("lightning")
    from openfer.engine.cross_validation import format_cv, run_cross_validation

    root = write_ckplus(tmp_path / "ck", subjects=6)
    common = ("method: fmpn\nmodel:\n  name: fmpn\n  args: {classifier: fernet_s, "
              "generator_width: 8, classes: [anger, contempt, disgust, fear, happiness, "
              "sadness, surprise]}\ndata: {dataset: ckplus, train_split: train, "
              "val_split: test, batch_size: 8, image_size: 48}\naugment: {hflip: 0.5}\n"
              "optimizer: {name: adam, lr: 0.003}\n")
    (tmp_path / "stage1.yaml").write_text(
        "name: ck_stage1\n" + common + "fmpn: {stage: mask}\ntrainer: {max_epochs: 1, "
        "monitor: val/mask_mse, monitor_mode: min, progress_bar: false}\n")
    (tmp_path / "stage2.yaml").write_text(
        "name: ck_joint\n" + common + "fmpn: {stage: joint, generator_lr: 0.001}\n"
        "trainer: {max_epochs: 8, progress_bar: false}\n")
    recipes = [str(tmp_path / "stage1.yaml"), str(tmp_path / "stage2.yaml")]
    result = run_cross_validation(recipes, [f"data.root={root}"], tmp_path / "cv", folds=2)
    assert [r["fold"] for r in result["per_fold"]] == [0, 1]
    assert sum(r["n"] for r in result["per_fold"]) == 126     # every image tested once
    accuracies = [r["accuracy"] for r in result["per_fold"]]
    assert result["accuracy"]["mean"] == pytest.approx(np.mean(accuracies))
    assert result["accuracy"]["std"] == pytest.approx(np.std(accuracies))
    assert result["accuracy"]["mean"] > 0.3, result            # chance 1/7
    assert "accuracy: " in format_cv(result)
    fold_dir = tmp_path / "cv" / "fold_1"
    assert (fold_dir / "1_ck_joint" / "masks" / "0.png").is_file()   # masks of fold 1's training
    record = json.loads((fold_dir / "1_ck_joint" / "masks" / "masks.json").read_text())
    assert record["source"]["options"]["fold"] == 1       # computed by stage 1, taken by stage 2
    assert (fold_dir / "1_ck_joint" / "masks" / "0.png").read_bytes() == \
        (fold_dir / "0_ck_stage1" / "masks" / "0.png").read_bytes()
    recipe_text = (fold_dir / "1_ck_joint" / "recipe.yaml").read_text()
    assert f"generator_from: {fold_dir / '0_ck_stage1'}" in recipe_text
    assert "fold: 1" in recipe_text
    saved = json.loads((tmp_path / "cv" / "cv_summary.json").read_text())
    assert saved["per_fold"] == result["per_fold"]
    stamp = (fold_dir / "1_ck_joint" / "summary.json").stat().st_mtime_ns
    again = run_cross_validation(recipes, [f"data.root={root}"], tmp_path / "cv", folds=2)
    assert again["accuracy"] == result["accuracy"]        # finished folds are not retrained
    assert (fold_dir / "1_ck_joint" / "summary.json").stat().st_mtime_ns == stamp


def test_fmpn_exports_to_onnx_with_the_same_logits(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from openfer.checkpoint import save_weights
    from openfer.cli import main

    model = openfer.create_model("fmpn", classifier="fernet_s", generator_width=8).eval()
    weights = save_weights(model, tmp_path / "fmpn.safetensors")
    assert main(["export", "--model", str(weights), "--output", str(tmp_path / "fmpn.onnx"),
                 "--dynamic-batch"]) == 0
    session = ort.InferenceSession(str(tmp_path / "fmpn.onnx"))
    x = np.random.default_rng(0).random((3, 3, 48, 48), dtype=np.float32)
    (logits,) = session.run(None, {session.get_inputs()[0].name: x})
    with torch.no_grad():
        assert np.abs(logits - model(torch.from_numpy(x)).numpy()).max() < 1e-4


def test_released_masks_follow_the_models_class_order(fmpn_data, tmp_path):
    """FMPN's imgs_res/<fold>/<c>.png are indexed by its own label order; a model with the
    classes in another order must get each class's own mask."""
    import shutil

    from openfer.data.fmpn_layout import read_fmpn_masks
    from openfer.engine.datamodule import to_model_classes
    from openfer.engine.fmpn import FMPNTask
    from openfer.engine.recipe import load_recipe

    root = tmp_path / "CKPlus"
    shutil.copytree(fmpn_data / "CKPlus", root)
    (root / "imgs").mkdir()
    for name in (root / "train_ids_4.csv").read_text().split():
        Image.new("L", (8, 8), 128).save(root / "imgs" / name)
    order = ["surprise", "sadness", "happiness", "fear", "disgust", "contempt", "anger"]
    recipe = load_recipe("fmpn_ckplus", [f"data.root={root}", "data.options.fold=4",
                                         f"model.args.classes=[{', '.join(order)}]",
                                         "model.args.classifier=fernet_s",
                                         "model.args.generator_width=8"])
    task = FMPNTask(recipe)
    train = to_model_classes(load_dataset("ckplus_fmpn", root, "train", image_size=(70, 70),
                                          channels=3, fold=4), task.meta.classes)
    masks = task._masks(train)
    released = read_fmpn_masks(root, 4, 7)                 # anger, contempt, ..., surprise
    fmpn_order = ["anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise"]
    for i, name in enumerate(order):
        assert np.array_equal(masks[i], released[fmpn_order.index(name)])


def test_deep_emotion_ckplus_recipe_runs_subject_independent_folds(tmp_path):
    """Deep-Emotion's CK+ recipe (the paper's other data set): its classes hold contempt, and
    openfer cv tests every image once, one fold per group of subjects (1 epoch each here)."""
    from openfer.engine.cross_validation import run_cross_validation

    root = write_ckplus(tmp_path / "ck", subjects=4)
    result = run_cross_validation(["deep_emotion_ckplus"], [
        f"data.root={root}", "data.options.crop=none", "trainer.max_epochs=1",
        "trainer.progress_bar=false"], tmp_path / "cv", folds=2)
    assert [row["n"] for row in result["per_fold"]] == [42, 42]


def test_affectnet_recipes_train_both_stages_with_masks_from_the_training_split(
        synthetic_affectnet, tmp_path, monkeypatch):
    """fmpn_affectnet_stage1 then fmpn_affectnet, as the recipes' header runs them, on AffectNet's
    CSV release (sized down: FERNet-S at 48 px, a width-8 generator): stage 1 computes the masks
    from the training split, stage 2 takes them from its generator_from run (same split: not
    computed again) and starts its generator from stage 1, and the classifier learns (the
    expression is where a bright bar sits)."""
    pytest.importorskip("lightning")
    import openfer.data.motion_masks as motion_masks
    from openfer.engine.recipe import load_recipe
    from openfer.engine.train import train
    from openfer.evaluate import evaluate

    small = [f"data.root={synthetic_affectnet}", "data.image_size=48",
             "data.options={align: false}", "augment={hflip: 0.5}", "data.batch_size=16",
             "model.args.classifier=fernet_s", "model.args.generator_width=8",
             "trainer.progress_bar=false"]
    first = load_recipe("fmpn_affectnet_stage1", small + ["trainer.max_epochs=1",
                                                          "optimizer.lr=0.003"])
    train(first, output_dir=tmp_path / "stage1")
    masks = sorted(p.name for p in (tmp_path / "stage1" / "masks").glob("*.png"))
    assert masks == [f"{c}.png" for c in range(7)]
    read = [np.asarray(Image.open(tmp_path / "stage1" / "masks" / m), np.float64) for m in masks]
    # neutral (class 0) has no motion of its own: it gets the mean of the others' masks
    assert np.abs(read[0] - np.mean(read[1:], 0)).max() <= 1
    happiness = read[1]                  # its bar sits at rows 4-20, columns 11-17 of 64
    assert happiness[3:15, 6:14].mean() > happiness[20:, :].mean() + 50

    record = json.loads((tmp_path / "stage1" / "masks" / "masks.json").read_text())
    assert record["classes"][:2] == ["neutral", "happiness"]      # AffectNet's own order
    assert record["source"]["split"] == "train" and record["source"]["image_size"] == [48, 48]

    def no_second_pass(dataset):
        raise AssertionError("stage 2 read the training split again for its masks")

    monkeypatch.setattr(motion_masks, "compute_class_masks", no_second_pass)
    second = load_recipe("fmpn_affectnet", small + [
        f"fmpn.generator_from={tmp_path / 'stage1'}",
        "trainer.max_epochs=10", "optimizer.lr=0.003", "fmpn.generator_lr=0.0003"])
    summary = train(second, output_dir=tmp_path / "joint")
    for m in masks:                                 # stage 1's masks, kept with the run
        assert (tmp_path / "joint" / "masks" / m).read_bytes() == \
            (tmp_path / "stage1" / "masks" / m).read_bytes()
    assert summary["metrics"]["n"] == 96
    model = openfer.load_model(tmp_path / "joint" / "best.safetensors")
    report = evaluate(model, load_dataset("affectnet7", synthetic_affectnet, "val",
                                          image_size=(48, 48), channels=3))
    assert report["accuracy"] > 0.5, report["accuracy"]                # chance 1/7


def test_computed_masks_are_reused_only_from_the_same_training_split(tmp_path):
    """masks.json records the split masks came from; another fold, option, root or size is a
    different split, whose masks must be computed afresh."""
    from openfer.data.motion_masks import mask_classes, matching_masks, write_masks
    from openfer.engine.fmpn import mask_source

    data = {"dataset": "ckplus", "root": str(tmp_path), "train_split": "train",
            "options": {"fold": 3, "folds": 10}}
    masks = np.random.default_rng(0).integers(0, 256, (7, 48, 48), dtype=np.uint8)
    order = ["anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise"]
    write_masks(masks, tmp_path / "masks", classes=order, source=mask_source(data, (48, 48)))
    assert mask_classes(tmp_path / "masks") == order
    found, classes = matching_masks(tmp_path / "masks", mask_source(data, (48, 48)))
    assert np.array_equal(found, masks) and classes == order
    relative = dict(data, root=os.path.relpath(tmp_path))      # the same folder, spelt otherwise
    assert matching_masks(tmp_path / "masks", mask_source(relative, (48, 48))) is not None
    other_fold = dict(data, options={"fold": 4, "folds": 10})
    assert matching_masks(tmp_path / "masks", mask_source(other_fold, (48, 48))) is None
    assert matching_masks(tmp_path / "masks", mask_source(data, (64, 64))) is None
    assert matching_masks(tmp_path / "masks", mask_source(dict(data, train_split="val"),
                                                          (48, 48))) is None
    write_masks(masks, tmp_path / "plain")                     # FMPN's layout: no record
    assert mask_classes(tmp_path / "plain") is None
    assert matching_masks(tmp_path / "plain", mask_source(data, (48, 48))) is None


def test_masks_of_a_data_set_changed_in_place_are_computed_afresh(tmp_path, fer2013_subset):
    """The same path is not the same data: masks.json records a fingerprint of the training
    split (labels, and pixels or files), and a relabelled or re-encoded split does not match."""
    from openfer.data import load_dataset
    from openfer.data.motion_masks import matching_masks, training_fingerprint, write_masks
    from openfer.engine.fmpn import mask_source

    faces = load_dataset("fer2013", fer2013_subset, "Training")
    data = {"dataset": "fer2013", "root": str(fer2013_subset), "train_split": "Training"}
    masks = np.zeros((7, 48, 48), np.uint8)
    order = [str(c.value) for c in faces.classes]
    write_masks(masks, tmp_path / "m", classes=order,
                source=mask_source(data, (48, 48), training_fingerprint(faces)))
    again = load_dataset("fer2013", fer2013_subset, "Training")
    assert matching_masks(tmp_path / "m", mask_source(data, (48, 48),
                                                      training_fingerprint(again))) is not None
    relabelled = load_dataset("fer2013", fer2013_subset, "Training")
    relabelled.labels[0] = (relabelled.labels[0] + 1) % 7
    repainted = load_dataset("fer2013", fer2013_subset, "Training")
    repainted.images[0, 0, 0, 0] ^= 1
    for changed in (relabelled, repainted):
        assert matching_masks(tmp_path / "m", mask_source(
            data, (48, 48), training_fingerprint(changed))) is None

    folder = tmp_path / "faces"                       # file-backed: path, size, mtime
    folder.mkdir()
    files = []
    for i in range(3):
        files.append(folder / f"{i}.png")
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(files[-1])
    file_set = type("FileSet", (), {"labels": np.arange(3), "sources": [str(f) for f in files]})
    before = training_fingerprint(file_set)
    assert training_fingerprint(file_set) == before
    Image.fromarray(np.full((9, 8), 7, np.uint8)).save(files[1])       # rewritten in place
    assert training_fingerprint(file_set) != before
