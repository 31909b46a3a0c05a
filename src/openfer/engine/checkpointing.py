"""Training checkpoints that are never half-written and are verified when read.

:class:`AtomicCheckpointIO` replaces Lightning's checkpoint writer: the full training state
(weights, optimiser, schedulers, loop counters, callbacks) is serialised in memory, prefixed with
a magic line and the SHA-256 of the payload, and written atomically (:mod:`openfer.fileio`).
Reading verifies the checksum and loads with ``weights_only=True`` (no code in a checkpoint can
run). :func:`find_resume_checkpoint` picks the newest checkpoint of a run that verifies, so a
corrupt last checkpoint falls back to the previous good one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..errors import OpenferError, write_failure_reason
from ..fileio import atomic_write_bytes

MAGIC = b"OPENFER-CHECKPOINT v1\n"


class CorruptCheckpointError(OpenferError):
    """A checkpoint file is truncated, altered or not an openfer checkpoint."""


class CheckpointWriteError(OpenferError):
    """A checkpoint could not be written (full disk, read-only or forbidden directory)."""


def write_checkpoint(checkpoint: dict, path: str | Path) -> None:
    """Write atomically; a full disk or an unwritable directory is an :class:`OpenferError`
    that says so, and the previous checkpoint at ``path`` is left as it was."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    try:
        atomic_write_bytes(path, MAGIC + digest + b"\n" + payload)
    except OSError as exc:
        reason = write_failure_reason(exc)
        raise CheckpointWriteError(
            f"cannot write the checkpoint {path}: {reason} ({len(payload) + 100:,} bytes "
            "needed); the previous checkpoints of this run are intact. Free space or choose "
            "another --output, then continue with --resume") from None


def read_checkpoint(path: str | Path, map_location=None) -> dict:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise OpenferError(f"checkpoint {path} not found") from None
    if not raw.startswith(MAGIC):
        raise CorruptCheckpointError(f"{path} is not an openfer training checkpoint (no header); "
                                     "resume only from the .ckpt files 'openfer train' wrote")
    digest, _, payload = raw[len(MAGIC):].partition(b"\n")
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise CorruptCheckpointError(f"{path} is corrupt (checksum mismatch): it was truncated or "
                                     "altered; resume from an earlier checkpoint")
    try:
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as exc:  # a verified payload that torch refuses: report, don't crash
        raise CorruptCheckpointError(f"{path}: cannot load the checkpoint safely ({exc})") \
            from None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O with atomic writes and verified, pickle-free reads."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        write_checkpoint(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        return read_checkpoint(path, map_location=map_location)


def find_resume_checkpoint(run_dir: str | Path) -> Path | None:
    """The most advanced checkpoint in ``run_dir/checkpoints`` that verifies (``last.ckpt``
    on a tie); ``None`` if there is none.

    Unreadable ones are skipped with a warning, so a run killed while a disk filled up or a file
    was damaged still resumes from its last good state. Temporary files a killed process left
    behind are removed.
    """
    import warnings

    directory = Path(run_dir) / "checkpoints"
    for stale in directory.glob(".*.ckpt.*.tmp"):      # left by a process killed mid-write
        with contextlib.suppress(OSError):
            stale.unlink()
    best, best_key = None, None
    for candidate in sorted(directory.glob("*.ckpt")):
        try:
            state = read_checkpoint(candidate, map_location="cpu")
        except CorruptCheckpointError as exc:
            warnings.warn(f"skipping checkpoint: {exc}", stacklevel=2)
            continue
        key = (int(state.get("global_step", 0)), candidate.name == "last.ckpt")
        if best_key is None or key > best_key:
            best, best_key = candidate, key
    return best
