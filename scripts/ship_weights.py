"""Copy a training run's best weights into the package as shipped weights, metadata completed.

    python scripts/ship_weights.py runs/deep_emotion_fer2013 deep_emotion.fer2013

Reads the run's best.safetensors, recipe.yaml and summary.json, evaluates the weights on the
recipe's validation split without and with flip TTA (the headline is without: what
``openfer predict`` does by default), and writes src/openfer/weights/<name>.safetensors with those
metrics, the exact training command, the wall time and the license note in its metadata.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import openfer
from openfer.checkpoint import save_weights

PACKAGE_WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "openfer" / "weights"
LICENSE = ("weights: MIT (openfer); trained on FER2013 (ICML 2013 challenge data, research "
           "use): check the data's terms before commercial use")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("name")
    parser.add_argument("--weights", default="best.safetensors")
    parser.add_argument("--command-note", default="",
                        help="appended to the recorded command as a shell comment: how the "
                             "run's inputs (teachers, an init) were made")
    args = parser.parse_args()
    import yaml

    from openfer.data import load_dataset
    from openfer.evaluate import recorded_metrics

    summary = json.loads((args.run / "summary.json").read_text())
    recipe = yaml.safe_load((args.run / "recipe.yaml").read_text())
    model = openfer.load_model(args.run / args.weights)
    data = recipe["data"]
    test = load_dataset(data["dataset"], data["root"], data["val_split"],
                        image_size=model.meta.load_size, channels=model.meta.channels)
    recorded = recorded_metrics(model, test, data["val_split"])
    workspace = str(Path(__file__).resolve().parents[2])          # the folder beside ../shared
    command = (summary["command"].replace(f"{workspace}/shared/", "../shared/")
               .replace(f"{workspace}/runs/", "runs/"))
    if args.command_note:
        command += f"  # {args.command_note}"
    model.meta = model.meta.replace(
        metrics={"fer2013": recorded}, license=LICENSE,
        training_data="FER2013 Training (28,709 faces); model selected on PublicTest",
        command=command,
        notes=(model.meta.notes or "") + f"; trained {summary['epochs']} epochs "
              + (f"(resumed: its last stretch took {summary['wall_seconds'] / 60:.0f} min)"
                 if summary.get("resumed_from") else
                 f"in {summary['wall_seconds'] / 60:.0f} min")
              + f" on {summary['machine']} ({summary['torch_threads']} torch threads)")
    path = save_weights(model, PACKAGE_WEIGHTS / f"{args.name}.safetensors")
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} kB): "
          f"{ {k: v for k, v in recorded.items() if k != 'per_class'} }")


if __name__ == "__main__":
    main()
