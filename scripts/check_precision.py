"""Measure a model's bf16 or int8 inference against fp32 on FER2013 PublicTest, and record it.

    python scripts/check_precision.py src/openfer/weights/fernet_m_distilled.fer2013.safetensors \
        --precision bf16|int8 [--weight-bits 7|8] [--root ../shared/data/fer2013/fer2013.csv.gz] \
        [--write]

Classifies every PublicTest face through ``Recognizer`` (no detection) in fp32 and in the reduced
precision and prints the top-label agreement and both accuracies. For int8 the activations'
scales are first calibrated on 2,048 Training faces (fixed seed; :mod:`openfer.models.quantize`).
``--write`` stores the check (and the int8 calibration) in the weight file's metadata
(``meta.bf16`` / ``meta.int8``), which lets ``Recognizer(precision="auto")`` take that precision
on CPUs that run it well (bf16: AMX-BF16 or AVX512-BF16; int8: x86 with AVX2), and refuses when
the reduced precision changes the answers: agreement under 99 % or accuracy moved by more than
half a point. Measured for the shipped FERNets: bf16 on an Intel Xeon (AMX-BF16) and an AMD EPYC
(AVX512-BF16), the same agreement on both (distilled FERNet-M 99.41 %, FERNet-S 99.08 %); int8
on the AMD EPYC (benchmarks/results/README.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import openfer
from openfer.checkpoint import save_weights
from openfer.data import load_dataset
from openfer.infer import Recognizer

ROOT = Path(__file__).resolve().parents[2] / "shared/data/fer2013/fer2013.csv.gz"
MIN_AGREEMENT, MAX_ACCURACY_CHANGE = 0.99, 0.005
CALIBRATION_FACES, CALIBRATION_BATCH = 2048, 256


def int8_record(model, root: Path, weight_bits: int = 7) -> dict:
    """The int8 calibration of ``model`` on FER2013 Training faces."""
    from openfer.export import calibration_inputs
    from openfer.models.quantize import calibrate

    train = load_dataset("fer2013", root, "Training", image_size=model.meta.load_size,
                         channels=model.meta.channels, classes=model.meta.classes)
    inputs = torch.from_numpy(calibration_inputs(model.meta, train, CALIBRATION_FACES))
    record = calibrate(model, inputs.split(CALIBRATION_BATCH), weight_bits=weight_bits)
    return {**record, "calibration": f"FER2013 Training, {len(inputs)} faces (seed 0)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("--precision", choices=("bf16", "int8"), required=True)
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--weight-bits", type=int, choices=(7, 8), default=7,
                        help="int8 weights' bits: 7 (default; runs on every x86 CPU with AVX2) "
                             "or 8 (not taken by auto on AVX-512 CPUs without VNNI)")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    model = openfer.load_model(args.weights)
    reduced = args.precision
    if reduced == "int8":
        model.meta = model.meta.replace(int8=int8_record(model, args.root, args.weight_bits))
    test = load_dataset("fer2013", args.root, "PublicTest", image_size=model.meta.load_size,
                        channels=model.meta.channels, classes=model.meta.classes)
    faces = test.images.permute(0, 2, 3, 1).numpy()
    labels = test.labels                # in the model's class order (load_dataset maps by name)
    scores = {p: Recognizer(model, detector="none", precision=p, batch_size=256, device="cpu")
              .classify(faces) for p in ("fp32", reduced)}
    top = {p: s.argmax(1) for p, s in scores.items()}
    check = {"split": "FER2013 PublicTest", "n": int(len(labels)),
             "top1_agreement": round(float((top["fp32"] == top[reduced]).mean()), 4),
             "accuracy_fp32": round(float((top["fp32"] == labels).mean()), 4),
             f"accuracy_{reduced}": round(float((top[reduced] == labels).mean()), 4)}
    # how the scores moved (printed, not recorded): the largest change of one class's score, and
    # the faces with two classes of exactly equal score (a coarse output grid shows as ties)
    ties = (np.diff(np.sort(scores[reduced], 1), axis=1) == 0).any(1)
    print(json.dumps({"max_score_change": round(float(abs(scores[reduced] - scores["fp32"])
                                                       .max()), 4),
                      f"faces_with_tied_scores_{reduced}": round(float(ties.mean()), 4)}))
    print(json.dumps(check))                                        # the last line: the check
    if not args.write:
        return
    if check["top1_agreement"] < MIN_AGREEMENT or \
            abs(check[f"accuracy_{reduced}"] - check["accuracy_fp32"]) > MAX_ACCURACY_CHANGE:
        raise SystemExit(f"{args.weights}: {reduced} changes the answers (agreement under "
                         f"{MIN_AGREEMENT:.0%} or accuracy moved over {MAX_ACCURACY_CHANGE:.1%});"
                         f" not recorded: precision='auto' does not take {reduced} for it")
    if reduced == "int8":
        model.meta = model.meta.replace(int8={**model.meta.int8, "check": check})
    else:
        model.meta = model.meta.replace(bf16=check)
    path = save_weights(model, args.weights)
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
