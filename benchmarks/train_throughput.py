"""Training throughput (images/s) of registered models on real FER2013 faces, through the engine.

Runs the real training path (Lightning, batched augmentation as in the recipe, optimiser step)
for a fixed number of steps and reports images/s over training steps only. Not a test.

    python benchmarks/train_throughput.py --threads 2 --steps 60
    python benchmarks/train_throughput.py --recipe deep_emotion_fer2013_aug --threads 2

Writes one JSON line per recipe to stdout and, with --out, appends it to a JSONL file.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared/data/fer2013/fer2013.csv.gz"


def measure(recipe_name: str, root: Path, steps: int, threads: int,
            overrides: list[str] = ()) -> dict:
    from lightning.pytorch.callbacks import Callback

    from openfer.bench import machine
    from openfer.engine.recipe import load_recipe
    from openfer.engine.train import Throughput, train

    torch.set_num_threads(threads)
    recipe = load_recipe(recipe_name, [f"data.root={root}", "trainer.progress_bar=false",
                                       "trainer.max_epochs=1", "data.val_split=null",
                                       # no validation: a plateau schedule watches the loss
                                       "trainer.monitor=train/loss", "trainer.monitor_mode=min",
                                       *overrides])
    batch = recipe["data"]["batch_size"]
    recipe["data"]["limit_train"] = batch * (steps + 5)
    meter = Throughput()

    class SkipWarmup(Callback):
        """Reset the meter after 5 warm-up steps."""

        def on_train_batch_end(self, trainer, module, outputs, b, batch_idx):
            if batch_idx == 4:
                meter.images, meter.seconds = 0, 0.0

    with tempfile.TemporaryDirectory() as out:
        started = time.time()
        summary = train(recipe, output_dir=out, callbacks=[meter, SkipWarmup()])
        wall = time.time() - started
    return {"recipe": recipe_name, "model": recipe["model"]["name"], "batch_size": batch,
            "steps": steps, "threads": threads, "precision": summary["precision"],
            "overrides": list(overrides),
            "images_per_second": round(meter.images_per_second, 1),
            "wall_seconds": round(wall, 1), "torch": torch.__version__,
            "machine": machine()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", action="append",
                        help="recipe name(s); default: the Deep-Emotion recipes")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="append results to this JSONL file")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="recipe overrides for every recipe, e.g. trainer.precision=bf16-mixed")
    args = parser.parse_args()
    recipes = args.recipe or ["deep_emotion_fer2013", "deep_emotion_paper_fer2013",
                              "deep_emotion_fer2013_aug"]
    for name in recipes:
        result = measure(name, args.root, args.steps, args.threads, args.overrides)
        print(json.dumps(result), flush=True)
        if args.out:
            with open(args.out, "a") as handle:
                handle.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
