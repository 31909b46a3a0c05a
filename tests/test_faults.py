"""Nothing lost, nothing crashes: a training killed at any point resumes to the same weights,
checkpoints are never unreadable, full or read-only disks and vanished data files give clear
errors, and no file openfer loads can run code."""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import random
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("lightning")
from lightning.pytorch.callbacks import Callback  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

import openfer  # noqa: E402
from openfer import fileio  # noqa: E402
from openfer.engine import datamodule as datamodule_module  # noqa: E402
from openfer.engine.checkpointing import (CheckpointWriteError, CorruptCheckpointError,  # noqa: E402
                                          MAGIC, find_resume_checkpoint, read_checkpoint)
from openfer.engine.recipe import load_recipe  # noqa: E402
from openfer.engine.train import train  # noqa: E402
from openfer.errors import DataFormatError, OpenferError  # noqa: E402

pytestmark = pytest.mark.slow
RUNNER = Path(__file__).parent / "helpers" / "fault_runner.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _runner(csv: Path, run: Path, *flags: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(RUNNER), str(csv), str(run), *flags], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _every_checkpoint_verifies(run: Path) -> int:
    files = sorted((run / "checkpoints").glob("*.ckpt")) if (run / "checkpoints").is_dir() else []
    for path in files:
        read_checkpoint(path)            # raises CorruptCheckpointError if half-written
    return len(files)


def _same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(str(a)), load_file(str(b))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


# -- SIGKILL at any moment, then resume -------------------------------------------------------

@pytest.fixture(scope="module")
def straight_run(fer2013_subset, tmp_path_factory):
    """The fault runner's training, uninterrupted: its directory and wall time."""
    run = tmp_path_factory.mktemp("straight") / "run"
    started = time.perf_counter()
    straight = _runner(fer2013_subset, run)
    assert straight.wait(300) == 0, straight.stderr.read().decode()[-3000:]
    return run, time.perf_counter() - started


def test_sigkill_anywhere_then_resume_gives_the_uninterrupted_weights(fer2013_subset, tmp_path,
                                                                       straight_run):
    straight_dir, duration = straight_run

    run, rng, kills = tmp_path / "killed", random.Random(7), []
    faults = [("--die-writing", "1"),     # half of the first checkpoint's bytes on disk
              None, None, None,           # SIGKILL from outside at random moments
              ("--die-committing", "2"),  # complete temporary file, not yet renamed
              ("--die-writing", "2")]
    for fault in faults:
        if fault:
            process = _runner(fer2013_subset, run, *fault)
            process.wait(300)
        else:
            process = _runner(fer2013_subset, run)
            time.sleep(rng.uniform(0.15, 0.5) * duration)   # early enough to land mid-run
            process.kill()
            process.wait(60)
        kills.append(process.returncode)
        _every_checkpoint_verifies(run)   # no checkpoint on disk is ever unreadable
    assert kills.count(-9) >= 4, (kills, duration)   # (a kill may land after the run finished)

    final = _runner(fer2013_subset, run)
    assert final.wait(300) == 0, final.stderr.read().decode()[-3000:]
    assert not list((run / "checkpoints").glob(".*.tmp")), "stale temporary files were kept"
    assert _same_weights(straight_dir / "last.safetensors", run / "last.safetensors")
    assert _same_weights(straight_dir / "best.safetensors", run / "best.safetensors")


def test_death_between_the_last_epochs_two_checkpoints_resumes_to_the_same_weights(
        fer2013_subset, tmp_path, straight_run):
    """Killed after the final epoch's best.ckpt, before its last.ckpt: best.ckpt is then the
    newest state, and the resumed run (nothing left to train) must end with that epoch's
    weights in last.safetensors too, not the epoch before's (found on an AMD EPYC, where the
    random kills above landed there). The run monitors the epoch number, so that the final
    epoch writes best.ckpt on any CPU (whether its accuracy improves depends on the CPU's
    arithmetic); training is the uninterrupted run's."""
    straight_dir, _ = straight_run
    epochs = 5                                          # the fault runner's trainer.max_epochs
    run = tmp_path / "killed"
    process = _runner(fer2013_subset, run, "--best-every-epoch", "--die-before-last", str(epochs))
    assert process.wait(300) == -9
    best = read_checkpoint(run / "checkpoints" / "best.ckpt")
    last = read_checkpoint(run / "checkpoints" / "last.ckpt")
    assert best["global_step"] > last["global_step"] and best["epoch"] == epochs - 1
    final = _runner(fer2013_subset, run, "--best-every-epoch")
    assert final.wait(300) == 0, final.stderr.read().decode()[-3000:]
    assert _same_weights(straight_dir / "last.safetensors", run / "last.safetensors")
    assert _same_weights(straight_dir / "last.safetensors", run / "best.safetensors")
    assert read_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == \
        best["global_step"]


# -- corrupt checkpoints ----------------------------------------------------------------------

def _short(csv, *overrides):
    return load_recipe("deep_emotion_fer2013", [
        f"data.root={csv}", "data.limit_train=256", "data.limit_val=64",
        "trainer.progress_bar=false", *overrides])


@pytest.fixture(scope="module")
def two_epoch_run(fer2013_subset, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    train(_short(fer2013_subset, "trainer.max_epochs=2"), output_dir=run)
    return run


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "empty", "foreign file"])
def test_a_damaged_checkpoint_is_detected_and_resume_takes_the_previous_good_one(
        two_epoch_run, tmp_path, damage):
    run = tmp_path / "run"
    shutil.copytree(two_epoch_run, run)
    last = run / "checkpoints" / "last.ckpt"
    raw = bytearray(last.read_bytes())
    if damage == "flip a byte":
        raw[len(raw) // 2] ^= 0x40
    elif damage == "truncate":
        raw = raw[:len(raw) * 2 // 3]
    elif damage == "empty":
        raw = bytearray()
    else:
        raw = bytearray(b"PK\x03\x04 not a checkpoint")
    last.write_bytes(bytes(raw))
    with pytest.raises(CorruptCheckpointError, match="last.ckpt") as error:
        read_checkpoint(last)
    assert "resume" in str(error.value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert find_resume_checkpoint(run) == run / "checkpoints" / "best.ckpt"
    assert any("skipping checkpoint" in str(w.message) for w in caught)


def test_when_every_checkpoint_is_corrupt_resume_refuses_with_a_message(two_epoch_run,
                                                                         tmp_path, fer2013_subset):
    run = tmp_path / "run"
    shutil.copytree(two_epoch_run, run)
    for path in (run / "checkpoints").glob("*.ckpt"):
        path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(OpenferError, match="every one failed its checksum"):
        train(_short(fer2013_subset, "trainer.max_epochs=3"), output_dir=run, resume=True)


# -- disks that fill up or refuse writes --------------------------------------------------------

class _FullAfter:
    """``os.fdopen`` for :mod:`openfer.fileio` whose checkpoint files hit ENOSPC once
    ``allowed`` checkpoint files have been written."""

    def __init__(self, allowed: int):
        self.allowed, self.opened, self.real = allowed, 0, os.fdopen

    def __call__(self, fd, *args, **kwargs):
        handle = self.real(fd, *args, **kwargs)
        if ".ckpt." not in os.readlink(f"/proc/self/fd/{fd}"):
            return handle
        self.opened += 1
        if self.opened <= self.allowed:
            return handle
        real_write = handle.write

        def write(data):
            real_write(data[:4096])
            raise OSError(errno.ENOSPC, "No space left on device")
        handle.write = write
        return handle


def test_a_full_disk_stops_training_with_a_clear_error_and_keeps_the_last_checkpoint(
        fer2013_subset, tmp_path, monkeypatch):
    run = tmp_path / "run"
    monkeypatch.setattr(fileio.os, "fdopen", _FullAfter(allowed=2))   # epoch 0: best + last
    with pytest.raises(CheckpointWriteError, match="the disk is full") as error:
        train(_short(fer2013_subset, "trainer.max_epochs=3"), output_dir=run)
    assert "previous checkpoints of this run are intact" in str(error.value)
    assert "--resume" in str(error.value)
    monkeypatch.undo()
    assert read_checkpoint(run / "checkpoints" / "last.ckpt")["epoch"] == 0
    assert not list((run / "checkpoints").glob(".*.tmp"))
    summary = train(_short(fer2013_subset, "trainer.max_epochs=3"), output_dir=run, resume=True)
    assert summary["epochs"] == 3 and summary["resumed_from"].endswith("last.ckpt")


@contextlib.contextmanager
def _tmpfs(path: Path, options: str):
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small file system needs root (the injected-ENOSPC test covers "
                    "the same path)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_really_full_file_system_keeps_the_previous_checkpoint(fer2013_subset, tmp_path):
    run = tmp_path / "run"
    recipe = _short(fer2013_subset, "trainer.max_epochs=4", "optimizer.lr=0.05")
    size = 0
    probe = tmp_path / "probe"
    train(_short(fer2013_subset, "trainer.max_epochs=1"), output_dir=probe)
    size = (probe / "checkpoints" / "last.ckpt").stat().st_size
    # room for best + last of one epoch, not for a third file written beside them
    with _tmpfs(run / "checkpoints", f"size={int(size * 2.5) // 1024}k"):
        with pytest.raises(CheckpointWriteError, match="the disk is full"):
            train(recipe, output_dir=run)
        good = read_checkpoint(run / "checkpoints" / "last.ckpt")
        assert good["epoch"] >= 0 and not list((run / "checkpoints").glob(".*.tmp"))


def test_a_read_only_output_directory_is_refused_before_training(fer2013_subset, tmp_path):
    with _tmpfs(tmp_path / "ro", "ro,size=1m") as readonly:
        with pytest.raises(OpenferError, match="cannot write to the output directory .*"
                                               "Read-only file system"):
            train(_short(fer2013_subset, "trainer.max_epochs=1"), output_dir=readonly / "run")


# -- data files that vanish mid-training ------------------------------------------------------

@pytest.mark.parametrize("workers", [0, 2])
def test_an_image_deleted_mid_training_is_named_in_the_error(tmp_path, monkeypatch, workers):
    root = tmp_path / "faces"
    rng = np.random.default_rng(0)
    for emotion in ("happy", "sad"):
        (root / emotion).mkdir(parents=True)
        for i in range(24):
            Image.fromarray(rng.integers(0, 255, (48, 48), np.uint8)).save(
                root / emotion / f"{i}.png")
    monkeypatch.setattr(datamodule_module, "IN_MEMORY_LIMIT", 0)    # read files every epoch
    victim = root / "sad" / "7.png"

    class DeleteAfterFirstEpoch(Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            victim.unlink(missing_ok=True)

    recipe = load_recipe("deep_emotion_fer2013", [
        "data.dataset=folder", f"data.root={root}", "data.train_split=all", "data.val_split=null",
        f"data.num_workers={workers}", "data.batch_size=16", "trainer.max_epochs=2",
        "trainer.progress_bar=false"])
    with pytest.raises(DataFormatError, match=r"sad/7\.png.*(not found|No such file)"):
        train(recipe, output_dir=tmp_path / "run", callbacks=[DeleteAfterFirstEpoch()])


# -- loading never runs code ------------------------------------------------------------------

class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_whose_pickle_would_run_code_is_refused(tmp_path):
    import hashlib
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"state_dict": _Payload(marker)})
    evil = tmp_path / "evil.ckpt"      # a valid header and checksum: only the payload is evil
    evil.write_bytes(MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
    with pytest.raises(CorruptCheckpointError, match="cannot load the checkpoint safely"):
        read_checkpoint(evil)
    torch_style = tmp_path / "evil.pt"
    torch.save({"model": _Payload(marker)}, torch_style)
    with pytest.raises(OpenferError):
        openfer.load_model(torch_style)
    with pytest.raises(OpenferError):
        openfer.load_model(evil)
    assert not marker.exists(), "loading executed code from a pickle"


@pytest.mark.parametrize("where, reason", [
    ("blocker/x.safetensors", "a part of its folder path is a file, not a folder"),
    ("/proc/openfer-none/x.safetensors", r"no file can be created in its folder"),
])
def test_weights_that_cannot_be_written_are_an_error_naming_the_place(tmp_path, where, reason):
    """`openfer export --output` (and every atomic write) to a place that cannot hold the file:
    a message naming it and why, exit status 2 — not a traceback."""
    from openfer.cli import main
    from openfer.errors import FileWriteError
    from openfer.fileio import atomic_write_bytes

    if where.startswith("/proc") and not Path("/proc/self").is_dir():
        pytest.skip("no /proc on this system")
    (tmp_path / "blocker").write_text("a file, not a folder")
    target = tmp_path / where                         # an absolute ``where`` stays as it is
    with pytest.raises(FileWriteError, match=f"cannot write {target}: {reason}") as caught:
        atomic_write_bytes(target, b"x")
    assert isinstance(caught.value, OSError) and caught.value.errno      # OSError handlers too
    assert main(["export", "--model", "default", "--output", str(target)]) == 2
    assert (tmp_path / "blocker").read_text() == "a file, not a folder"
