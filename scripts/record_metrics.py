"""Measure weight files on FER2013 PublicTest again and record the metrics in their metadata.

    python scripts/record_metrics.py src/openfer/weights/*.safetensors \
        [--root ../shared/data/fer2013/fer2013.csv.gz] [--write]

For weights shipped before their metadata held per-class metrics: evaluates each file as
``scripts/ship_weights.py`` does (plain, and with flip TTA:
:func:`openfer.evaluate.recorded_metrics`) and prints the result. ``--write`` rewrites the
file's ``metrics`` (tensors untouched, so its bf16 / int8 records stay valid); it refuses when
the headline accuracy differs from the one recorded, which would mean other data or other
weights than those measured before.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import openfer
from openfer.checkpoint import read_header, save_weights
from openfer.data import load_dataset
from openfer.evaluate import recorded_metrics

ROOT = Path(__file__).resolve().parents[2] / "shared/data/fer2013/fer2013.csv.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("weights", type=Path, nargs="+")
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    for path in args.weights:
        model = openfer.load_model(path)
        test = load_dataset("fer2013", args.root, "PublicTest", image_size=model.meta.load_size,
                            channels=model.meta.channels, classes=model.meta.classes)
        recorded = recorded_metrics(model, test, "PublicTest")
        before = (model.meta.metrics or {}).get("fer2013", {})
        print(f"{path}: {json.dumps({k: v for k, v in recorded.items() if k != 'per_class'})}")
        if not args.write:
            continue
        if "accuracy" in before and abs(before["accuracy"] - recorded["accuracy"]) > 1e-4:
            raise SystemExit(f"{path}: PublicTest accuracy {recorded['accuracy']} differs from "
                             f"the recorded {before['accuracy']}; not written")
        digest = read_header(path)["sha256"]
        save_weights(model, path, metrics={**(model.meta.metrics or {}), "fer2013": recorded})
        assert read_header(path)["sha256"] == digest, "tensors changed"
        print(f"  written (tensors unchanged, {digest[:12]})")


if __name__ == "__main__":
    main()
