"""The command line: the eval JSON contract and clear errors for bad input."""

import json
import subprocess
import sys

import pytest

import openfer
from conftest import SIX_ROWS, write_fer2013_csv
from openfer.checkpoint import DEFAULT_MODEL, save_weights
from openfer.cli import main

CONTRACT = {"accuracy", "mean_class_accuracy", "macro_f1", "n", "confusion_matrix", "classes"}


@pytest.fixture
def weights(tmp_path):
    return save_weights(openfer.create_model("deep_emotion"), tmp_path / "m.safetensors")


def test_eval_json_contract(weights, small_fer2013, capsys):
    assert main(["eval", "--model", str(weights), "--dataset", "fer2013", "--root",
                 str(small_fer2013), "--split", "PublicTest", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert CONTRACT <= report.keys()
    assert report["n"] == 2 and len(report["classes"]) == 7
    assert len(report["confusion_matrix"]) == 7 and sum(map(sum, report["confusion_matrix"])) == 2


def test_eval_table_is_readable(weights, small_fer2013, capsys):
    assert main(["eval", "--model", str(weights), "--dataset", "fer2013", "--root",
                 str(small_fer2013), "--split", "Training"]) == 0
    out = capsys.readouterr().out
    assert "mean class accuracy" in out and "confusion matrix" in out


def test_eval_on_real_publictest_via_subprocess(weights, fer2013_csv):
    result = subprocess.run([sys.executable, "-m", "openfer", "eval", "--model", str(weights),
                             "--dataset", "fer2013", "--root", str(fer2013_csv), "--split",
                             "PublicTest", "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["n"] == 3589


@pytest.mark.parametrize("args, message", [
    (["eval", "--model", "missing.safetensors", "--dataset", "fer2013", "--root", "x.csv"],
     "model file missing.safetensors not found"),
    (["eval", "--model", "{weights}", "--dataset", "affectnet2", "--root", "x"],
     "unknown data set 'affectnet2'"),
    (["eval", "--model", "{weights}", "--dataset", "fer2013", "--root", "{kaggle_test}",
      "--split", "test"], "no expression label"),
    (["train", "--recipe", "deep_emotion_fer2013", "optimizer.lr_rate=1"],
     "unknown key 'optimizer.lr_rate'"),
    (["train", "--recipe", "deep_emotion_fer2013"], "data.root is not set"),
    (["eval", "--model", "{weights}", "--dataset", "fer2013", "--root", "{bad_csv}",
      "--split", "Training"], "line 2, field 'emotion'"),
])
def test_bad_input_exits_2_with_a_clear_message(args, message, weights, tmp_path, capsys):
    kaggle_test = tmp_path / "test.csv"
    kaggle_test.write_text("pixels\n" + " ".join(["7"] * 2304) + "\n")
    bad_csv = write_fer2013_csv(tmp_path / "bad.csv", SIX_ROWS)
    lines = bad_csv.read_text().splitlines()
    lines[1] = "seven" + lines[1][1:]
    bad_csv.write_text("\n".join(lines) + "\n")
    args = [a.format(weights=weights, kaggle_test=kaggle_test, bad_csv=bad_csv) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("openfer: error: ") and message in err
    assert "Traceback" not in err


def test_training_on_bad_data_writes_nothing(tmp_path, capsys):
    bad = write_fer2013_csv(tmp_path / "fer2013.csv", SIX_ROWS)
    bad.write_text(bad.read_text().replace("Training", "Trainig", 1))
    out = tmp_path / "run"
    assert main(["train", "--recipe", "deep_emotion_fer2013", f"data.root={bad}",
                 "--output", str(out)]) == 2
    assert "unknown Usage 'Trainig'" in capsys.readouterr().err
    assert not out.exists()


def test_models_and_recipes_list(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "deep_emotion_paper" in out
    line = next(line for line in out.splitlines() if line.startswith("  default "))
    accuracy = openfer.load_model("default").meta.metrics["fer2013"]["accuracy"]
    assert f"{100 * accuracy:.2f} % fer2013 PublicTest" in line, line
    assert line.endswith(f"(= {DEFAULT_MODEL})"), line
    assert main(["recipes"]) == 0
    assert "deep_emotion_fer2013" in capsys.readouterr().out


def test_eval_help_names_every_reader():
    from openfer.cli import DATASET_NAMES
    from openfer.data import DATASETS

    assert sorted(DATASET_NAMES) == sorted(DATASETS)


def test_no_example_in_the_help_runs_two_lines_together():
    import re

    from openfer.cli import EXAMPLES

    for command, text in EXAMPLES.items():
        for line in text.splitlines()[1:]:
            # a continuation whose "\\" was lost is joined to its line after a run of spaces
            assert not re.search(r"\S {2,}--", line), (command, line)


def test_predict_piped_into_a_reader_that_stops_early_ends_quietly(weights, tmp_path):
    faces = write_fer2013_csv(tmp_path / "faces.csv", [(0, "PublicTest")] * 3000)  # > 64 KB
    child = subprocess.Popen([sys.executable, "-m", "openfer", "predict", str(faces), "--model",
                              str(weights)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout.readline().startswith(f"{faces}:".encode())     # as `| head -1`
    child.stdout.close()
    assert child.wait(timeout=120) == 141                  # as a tool stopped by SIGPIPE
    assert b"Traceback" not in child.stderr.read()


@pytest.mark.parametrize("command", ["train", "cv"])
def test_a_training_device_flag_says_which_gpu(command):
    from openfer.cli import _training_overrides, build_parser

    def overrides(*flags):
        args = build_parser().parse_args([command, "--recipe", "r", "--output", "o", *flags])
        return _training_overrides(args)

    assert overrides("--device", "cuda:1") == ["trainer.accelerator=gpu", "trainer.devices=[1]"]
    assert overrides("--device", "cuda") == ["trainer.accelerator=gpu"]
    assert overrides("--device", "cpu", "--devices", "2") == ["trainer.devices=2",
                                                               "trainer.accelerator=cpu"]


def test_a_device_that_is_no_device_is_refused_when_the_command_line_is_read(capsys):
    for command in (["train", "--recipe", "r"], ["eval", "--model", "m", "--dataset", "fer2013",
                                                 "--root", "x"], ["predict", "x.jpg"]):
        with pytest.raises(SystemExit) as stopped:
            main([*command, "--device", "gpu1"])
        assert stopped.value.code == 2
        assert "'gpu1': expected cpu, cuda, cuda:N" in capsys.readouterr().err


def test_predict_reads_kaggles_unlabelled_test_csv(weights, tmp_path, capsys):
    test = tmp_path / "test.csv"
    test.write_text("pixels\n" + " ".join(["7"] * 2304) + "\n" + " ".join(["200"] * 2304) + "\n")
    assert main(["predict", str(test), "--model", str(weights), "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["file"] for r in records] == [f"{test}:2", f"{test}:3"]
    assert all(r["label"] in openfer.create_model("deep_emotion").meta.classes for r in records)


def test_predict_on_a_folder_without_images_says_why_nothing_was_read(weights, tmp_path, capsys):
    """A folder of class sub-folders (``happy/*.jpg``) read without --recursive yields nothing:
    the note says to add it; a folder with no image at all says files go by extension."""
    (tmp_path / "photos" / "happy").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no faces here")
    for folder, note in (("photos", "it has sub-folders: add --recursive"),
                         ("empty", "files are recognised by extension")):
        assert main(["predict", str(tmp_path / folder), "--model", str(weights),
                     "--no-detect"]) == 1
        err = capsys.readouterr().err
        assert f"{tmp_path / folder}: no images or videos in it" in err and note in err


@pytest.mark.parametrize("command", [["train", "--recipe", "fernet_m_fer2013"],
                                     ["cv", "--recipe", "fmpn_ckplus", "--output", "cv"]])
def test_training_without_the_train_extra_names_the_extra(command, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "lightning", None)        # as if it were not installed
    assert main(command) == 2
    assert "needs the [train] extra (lightning is missing)" in capsys.readouterr().err


def test_reader_options_that_are_not_yaml_are_kept_as_text():
    from openfer.cli import _reader_options

    assert _reader_options(["fold=3", "crop=detect", "root=[x", "ratings=a: b: c"]) == {
        "fold": 3, "crop": "detect", "root": "[x", "ratings": "a: b: c"}


def test_data_reports_what_a_reader_found(small_fer2013, capsys):
    assert main(["data", "--dataset", "fer2013", "--root", str(small_fer2013), "--split",
                 "PublicTest", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 2 and report["unlabelled"] == 0
    assert report["counts"]["neutral"] == 1 and report["counts"]["sadness"] == 1
    assert report["classes"][0] == "anger" and report["problems"] == []


def test_data_verify_lists_unreadable_images_and_exits_1(tmp_path, capsys):
    from PIL import Image

    for emotion in ("happy", "sad"):
        (tmp_path / emotion).mkdir()
        Image.new("L", (64, 64), 90).save(tmp_path / emotion / "a.png")
    (tmp_path / "sad" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    assert main(["data", "--dataset", "folder", "--root", str(tmp_path)]) == 0   # not decoded
    capsys.readouterr()
    assert main(["data", "--dataset", "folder", "--root", str(tmp_path), "--verify"]) == 1
    out = capsys.readouterr().out
    assert "verified: 2 of 3 images decode" in out and "broken.png" in out


def test_bench_times_the_shipped_model(capsys):
    import torch

    threads = torch.get_num_threads()
    assert main(["bench", "--model", "fernet_s.fer2013", "--repeats", "5", "--batch", "8",
                 "--device", "cpu"]) == 0
    assert torch.get_num_threads() == threads         # 1 thread while timing, then restored
    report = json.loads(capsys.readouterr().out)
    assert report["architecture"] == "fernet_s" and report["threads"] == 1
    assert report["input"] == [1, 48, 48]
    assert 0 < report["latency_ms_batch1"] < 1000 and report["faces_per_s_batch8"] > 1
    assert report["model"] == "fernet_s.fer2013"
    assert main(["bench", "--model", "default", "--model", "fernet_s.fer2013", "--repeats", "5",
                 "--batch", "8"]) == 0                # an ensemble
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == ["default", "fernet_s.fer2013"]
    assert report["architecture"].startswith("ensemble(")


def test_eval_compare_scores_a_second_model_on_the_same_faces(weights, small_fer2013, tmp_path,
                                                              capsys):
    """--compare: a model against itself differs on no face; against a network of another input
    (224x224 RGB) the faces are prepared again for it and still paired one to one."""
    args = ["eval", "--model", str(weights), "--dataset", "fer2013", "--root",
            str(small_fer2013), "--split", "PublicTest", "--json"]
    assert main([*args, "--compare", str(weights)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["comparison"]["model_file"] == str(weights)
    assert report["comparison"]["difference"] == 0 and report["comparison"]["mcnemar_p"] == 1
    rgb = save_weights(openfer.create_model("resnet18"), tmp_path / "rgb.safetensors")
    assert main([*args, "--compare", str(rgb)]) == 0
    comparison = json.loads(capsys.readouterr().out)["comparison"]
    assert comparison["n"] == 2 and comparison["accuracy_a"] == report["accuracy"]
    assert main([*args[:-1], "--compare", str(rgb)]) == 0
    assert "McNemar p = " in capsys.readouterr().out


def test_overrides_may_follow_the_options(monkeypatch):
    """``openfer train --recipe r --output runs/x optimizer.lr=0.01``: argparse alone took
    overrides only before the options ("unrecognized arguments")."""
    from openfer import cli

    seen = {}
    monkeypatch.setitem(cli.COMMANDS, "train", lambda args: seen.setdefault("args", args) and 0)
    assert main(["train", "--recipe", "r", "data.root=x", "--output", "o", "optimizer.lr=0.01",
                 "trainer.seed=1"]) == 0
    assert seen["args"].overrides == ["data.root=x", "optimizer.lr=0.01", "trainer.seed=1"]
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--recipe", "r", "--output", "o", "--bogus"])
    assert exit_.value.code == 2


def test_serve_refuses_a_port_that_cannot_exist(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--port", "99999"])
    assert "'99999' is not a TCP port: use 1-65535" in capsys.readouterr().err
