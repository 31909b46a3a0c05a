"""Training with the Lightning engine: it learns on real faces, resumes exactly, runs DDP."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from safetensors.torch import load_file

from openfer.engine.checkpointing import read_checkpoint
from openfer.engine.recipe import load_recipe
from openfer.engine.train import train
from openfer.models.registry import load_model

pytestmark = pytest.mark.slow
QUIET = ["trainer.progress_bar=false"]


def _recipe(root, *overrides):
    return load_recipe("deep_emotion_fer2013", [f"data.root={root}", *QUIET, *overrides])


def test_short_training_learns_on_real_faces(fer2013_csv, tmp_path):
    summary = train(_recipe(fer2013_csv, "data.limit_train=8000", "data.limit_val=600",
                            "trainer.max_epochs=4", "optimizer.lr=0.003"),
                    output_dir=tmp_path)
    rows = list(csv.DictReader(open(tmp_path / "logs" / "metrics.csv")))
    epoch_losses = [float(r["train/loss_epoch"]) for r in rows if r.get("train/loss_epoch")]
    assert epoch_losses[-1] < epoch_losses[0] - 0.1, f"training loss did not fall: {epoch_losses}"
    # The most frequent class (happiness) is 25 % of PublicTest: chance level for a constant guess.
    assert summary["metrics"]["accuracy"] > 0.36, summary["metrics"]
    assert summary["metrics"]["n"] == 600
    assert (tmp_path / "best.safetensors").is_file() and (tmp_path / "metrics.json").is_file()
    # The weights' metadata says on what, how (flip TTA or not) and per class (the model card).
    recorded = load_model(tmp_path).meta.metrics["fer2013"]
    assert recorded["split"] == "PublicTest" and recorded["accuracy"] == pytest.approx(
        summary["metrics"]["accuracy"], abs=1e-4)
    assert recorded["tta_flip"] is bool(load_recipe("deep_emotion_fer2013")["trainer"]["tta_flip"])
    assert sum(row["support"] for row in recorded["per_class"].values()) == 600
    # A checkpoint exports to the same weights the run exported (for runs stopped early).
    from openfer.cli import main
    assert main(["export", "--model", str(tmp_path / "checkpoints" / "best.ckpt"),
                 "--output", str(tmp_path / "from_ckpt.safetensors")]) == 0
    exported = load_file(str(tmp_path / "from_ckpt.safetensors"))
    for key, value in load_file(str(tmp_path / "best.safetensors")).items():
        assert torch.equal(value, exported[key]), key


class StopAfterEpoch(Callback):
    """Ends a run after an epoch, as if the process had been stopped there."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, module):
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True


def test_resume_continues_bit_identically(fer2013_csv, tmp_path):
    recipe = _recipe(fer2013_csv, "data.limit_train=1024", "data.limit_val=256",
                     "augment.hflip=0.5", "augment.rotation=10", "augment.erasing=0.5",
                     "scheduler.name=cosine", "trainer.max_epochs=3")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(recipe, output_dir=straight)
    train(recipe, output_dir=resumed, callbacks=[StopAfterEpoch(0)])
    assert read_checkpoint(resumed / "checkpoints" / "last.ckpt")["epoch"] == 0
    summary = train(recipe, output_dir=resumed, resume=True)
    assert summary["resumed_from"].endswith(".ckpt") and summary["epochs"] == 3
    a = load_file(str(straight / "last.safetensors"))
    b = load_file(str(resumed / "last.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resume"


def test_ddp_two_cpu_processes(fer2013_csv, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "openfer", "train", "--recipe", "deep_emotion_fer2013",
         f"data.root={fer2013_csv}", "data.limit_train=1024", "data.limit_val=256",
         "trainer.max_epochs=1", *QUIET, "--accelerator", "cpu", "--devices", "2",
         "--strategy", "ddp", "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["world_size"] == 2
    # 1,024 images over 2 ranks with batch 128: 4 steps per rank, one epoch.
    assert read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["global_step"] == 4


def _gather_heads(rank: int, port: int, out) -> None:
    """One process of a two-process gloo group: it saw labels for its own heads only."""
    from types import SimpleNamespace

    import torch.distributed as dist

    from openfer.engine.task import ClassificationTask

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2)
    try:
        task = SimpleNamespace(heads_trained={"valence"} if rank == 0 else {"age", "gender"})
        out.put((rank, sorted(ClassificationTask._heads_trained_everywhere(task))))
    finally:
        dist.destroy_process_group()


def test_a_distributed_run_records_the_heads_every_process_trained():
    """A head labelled only in another process's share of the data is recorded too (each
    process checkpoints together; the heads are gathered there)."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = mp.get_context("spawn")
    out = context.Queue()
    processes = [context.Process(target=_gather_heads, args=(rank, port, out))
                 for rank in range(2)]
    for process in processes:
        process.start()
    results = dict(out.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    assert results == {0: ["age", "gender", "valence"], 1: ["age", "gender", "valence"]}


def test_labels_are_mapped_into_the_model_class_order(small_fer2013):
    from openfer.data import load_dataset
    from openfer.engine.datamodule import to_model_classes
    dataset = load_dataset("fer2013", small_fer2013, "all")            # FER2013 order
    raf_order = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
    before = [dataset.classes[i].value for i in dataset.labels]
    mapped = to_model_classes(dataset, raf_order)
    assert [raf_order[i] for i in mapped.labels] == before


def test_model_init_fine_tunes_from_shipped_weights(fer2013_subset, tmp_path):
    """``model.init`` starts from trained weights: one short epoch at a small learning rate from
    the shipped FERNet-S keeps it far above a network trained from scratch for the same epoch."""
    common = [f"data.root={fer2013_subset}", "model.name=fernet_s", "trainer.max_epochs=1",
              "optimizer.lr=0.0005", "scheduler.warmup_epochs=0", "trainer.tta_flip=false",
              *QUIET]
    tuned = train(load_recipe("fernet_m_fer2013", [*common, "model.init=fernet_s.fer2013"]),
                  output_dir=tmp_path / "tuned")
    scratch = train(load_recipe("fernet_m_fer2013", common), output_dir=tmp_path / "scratch")
    assert tuned["metrics"]["accuracy"] > 0.55, tuned["metrics"]       # shipped: 68 % on all
    assert tuned["metrics"]["accuracy"] > scratch["metrics"]["accuracy"] + 0.2
    terms = load_model(tmp_path / "tuned" / "best.safetensors").meta.license
    assert terms.startswith("trained by openfer on fer2013 (Training)")     # the card shows it
    assert "those of fernet_s.fer2013, the weights it started from" in terms
    assert "fernet_s" not in load_model(tmp_path / "scratch" / "last.safetensors").meta.license


def test_model_init_must_match_the_architecture(fer2013_subset, tmp_path):
    from openfer.errors import RecipeError
    for init, message in (("deep_emotion.fer2013", "same architecture"),
                          ("no_such.safetensors", "model.init")):
        with pytest.raises(RecipeError, match=message):
            train(load_recipe("fernet_m_fer2013", [f"data.root={fer2013_subset}",
                                                   "model.name=fernet_s", f"model.init={init}",
                                                   *QUIET]), output_dir=tmp_path / init)
    with pytest.raises(RecipeError, match="model.init must be"):
        load_recipe("fernet_m_fer2013", ["model.init=[a, b]"])


def test_precision_auto_is_bf16_only_where_bfloat16_is_native(monkeypatch):
    """The FERNet recipes say ``precision: auto``: bf16-mixed on CPUs with AMX-BF16 (2.5x faster
    than fp32 there), fp32 on CPUs that would emulate bf16 (~13x slower on an AVX2 AMD EPYC)."""
    import openfer.models.fusion as fusion
    from openfer.engine.train import resolve_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(fusion, "native_bf16", lambda: True)
    assert resolve_precision("auto", "auto") == "bf16-mixed"
    assert resolve_precision("auto", "cpu") == "bf16-mixed"
    monkeypatch.setattr(fusion, "native_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "32-true"
    assert resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"     # asked for: as given
    for name in ("fernet_m_fer2013", "fernet_l_fer2013", "fernet_s_distill_fer2013"):
        assert load_recipe(name, [])["trainer"]["precision"] == "auto"


def test_a_run_resumed_in_another_precision_says_so(fer2013_csv, tmp_path, monkeypatch):
    """``precision: auto`` is decided per machine: a run begun in bf16 (a CPU with AMX) and
    resumed where bf16 is emulated goes on in fp32, with a warning and a note in the summary."""
    import openfer.models.fusion as fusion

    recipe = _recipe(fer2013_csv, "data.limit_train=256", "data.limit_val=128",
                     "trainer.max_epochs=2", "trainer.precision=auto")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(fusion, "native_bf16", lambda: True)
    train(recipe, output_dir=tmp_path, callbacks=[StopAfterEpoch(0)])
    assert read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["openfer_precision"] == \
        "bf16-mixed"
    monkeypatch.setattr(fusion, "native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="trained in bf16-mixed and resumes in 32-true"):
        summary = train(recipe, output_dir=tmp_path, resume=True)
    assert summary["precision"] == "32-true"
    assert summary["precision_before_resume"] == "bf16-mixed"
    # Its checkpoints now record fp32: resumed again on this machine, nothing to say.
    recipe["trainer"]["max_epochs"] = 3
    summary = train(recipe, output_dir=tmp_path, resume=True)
    assert summary["epochs"] == 3 and "precision_before_resume" not in summary


def test_training_leaves_the_processs_deterministic_setting_as_it_found_it(fer2013_csv,
                                                                         tmp_path):
    """Lightning switches deterministic algorithms on for the whole process; predicting after
    training in the same process (a notebook) must not run under it."""
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
    train(_recipe(fer2013_csv, "data.limit_train=128", "data.limit_val=64",
                  "trainer.max_epochs=1"), output_dir=tmp_path)
    assert (torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled()) == before


def test_only_the_launching_process_copies_a_best_checkpoint_that_is_ahead(tmp_path,
                                                                           monkeypatch):
    """When ``best.ckpt`` is ahead of ``last.ckpt`` (a run killed between the two writes),
    resuming makes it ``last.ckpt`` too; in a multi-process run only rank 0 writes that copy
    (the other processes resume from ``best.ckpt``, the same bytes), so no two processes race."""
    from openfer.engine.checkpointing import write_checkpoint
    from openfer.engine.train import RANK_VARIABLES, _resume_path

    for name in RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    write_checkpoint({"global_step": 8, "epoch": 1}, folder / "best.ckpt")
    write_checkpoint({"global_step": 4, "epoch": 0}, folder / "last.ckpt")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert _resume_path(tmp_path, True) == folder / "best.ckpt"
    assert read_checkpoint(folder / "last.ckpt")["global_step"] == 4       # untouched
    monkeypatch.delenv("LOCAL_RANK")
    assert _resume_path(tmp_path, True) == folder / "last.ckpt"
    assert (folder / "last.ckpt").read_bytes() == (folder / "best.ckpt").read_bytes()
