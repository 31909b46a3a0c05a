"""A small FER2013 training run, resumed from its own checkpoints, that can be made to die.

    python tests/helpers/fault_runner.py FER2013_CSV RUN_DIR [--die-writing N] [--die-committing N]

``--die-writing N``: SIGKILL this process half-way through writing the bytes of its N-th
checkpoint file (the temporary file holds half a checkpoint). ``--die-committing N``: SIGKILL it
after the N-th checkpoint's temporary file is complete, before it replaces the old checkpoint.
``--die-before-last N``: the same at its N-th ``last.ckpt`` (after that epoch's ``best.ckpt``).
All three act at the real write path (:mod:`openfer.fileio`), as a power cut or the OOM killer
would. ``--best-every-epoch``: monitor the epoch number instead of the validation accuracy, so
every epoch writes ``best.ckpt`` whatever the numbers (training itself is unchanged).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

RECIPE = ["data.limit_train=768", "data.limit_val=128", "trainer.max_epochs=5",
          "augment.hflip=0.5", "augment.rotation=10", "scheduler.name=cosine",
          "trainer.progress_bar=false"]


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("csv")
    parser.add_argument("run")
    parser.add_argument("--die-writing", type=int, default=0)
    parser.add_argument("--die-committing", type=int, default=0)
    parser.add_argument("--die-before-last", type=int, default=0)
    parser.add_argument("--best-every-epoch", action="store_true")
    args = parser.parse_args()

    from openfer import fileio

    checkpoint_writes = {"n": 0, "last": 0}
    real_fdopen, real_commit = os.fdopen, fileio._commit

    class HalfThenDie:
        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            self.handle.write(data[:len(data) // 2])
            self.handle.flush()
            os.fsync(self.handle.fileno())
            _die()

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)

    def fdopen(fd, *a, **k):
        handle = real_fdopen(fd, *a, **k)
        if ".ckpt." in os.readlink(f"/proc/self/fd/{fd}"):
            checkpoint_writes["n"] += 1
            if checkpoint_writes["n"] == args.die_writing:
                return HalfThenDie(handle)
        return handle

    def commit(tmp, path):
        if str(path).endswith(".ckpt") and checkpoint_writes["n"] == args.die_committing:
            _die()
        if str(path).endswith("last.ckpt"):
            checkpoint_writes["last"] += 1
            if checkpoint_writes["last"] == args.die_before_last:
                _die()
        return real_commit(tmp, path)

    if args.die_writing:
        fileio.os.fdopen = fdopen
    if args.die_committing or args.die_before_last:
        fileio.os.fdopen = fdopen
        fileio._commit = commit

    from openfer.engine.recipe import load_recipe
    from openfer.engine.train import train

    overrides, callbacks = [f"data.root={args.csv}", *RECIPE], []
    if args.best_every_epoch:
        from lightning.pytorch.callbacks import Callback

        class EpochNumber(Callback):
            def on_validation_epoch_end(self, trainer, module):
                module.log("fault/epoch", float(trainer.current_epoch))

        overrides.append("trainer.monitor=fault/epoch")
        callbacks.append(EpochNumber())
    recipe = load_recipe("deep_emotion_fer2013", overrides)
    summary = train(recipe, output_dir=args.run, resume=True, callbacks=callbacks)
    print(json.dumps({"epochs": summary["epochs"], "resumed_from": summary["resumed_from"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
