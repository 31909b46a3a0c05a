"""Face detectors side by side on one photo: time per ``detect`` call and faces found.

    python benchmarks/detectors.py [--photo ../shared/data/photos/group6.jpg] [--threads 1]

Each detector (YuNet, MTCNN, Haar; those whose weights are found) runs ``detect`` on the same
decoded photo: one warm-up call, then the median of ``--repeats`` calls, with ``--threads``
torch / OpenCV threads. YuNet's boxes are the reference: a face counts as found when a box
overlaps one of YuNet's at IoU > 0.5; other boxes are counted as extra. One JSON object on
stdout. The README's detector paragraph quotes this script's output.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photo", type=Path, default=SHARED / "data/photos/group6.jpg")
    parser.add_argument("--yunet", type=Path, default=SHARED / "weights/yunet.onnx")
    parser.add_argument("--mtcnn", type=Path, default=None,
                        help="MTCNN's folder (default: wherever openfer finds it)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import cv2
    import torch
    from PIL import Image

    from openfer.bench import machine, timed
    from openfer.faces.detect import create_detector
    from openfer.faces.track import iou

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    image = np.asarray(Image.open(args.photo).convert("RGB"))
    detectors = {}
    if args.yunet.is_file():
        detectors["yunet"] = create_detector("yunet", weights=str(args.yunet))
    try:
        detectors["mtcnn"] = create_detector("mtcnn", mtcnn=args.mtcnn)
    except Exception as exc:                       # weights not installed: say so, go on
        print(f"mtcnn skipped: {exc}", flush=True)
    detectors["haar"] = create_detector("haar")

    reference = detectors["yunet"].detect(image) if "yunet" in detectors else None
    results = {}
    for name, detector in detectors.items():
        faces = detector.detect(image)                                   # the warm-up call
        seconds = timed(lambda d=detector: d.detect(image), args.repeats, warmup=0)
        entry = {"ms": round(1000 * seconds, 1), "faces": len(faces)}
        if reference is not None:
            found = [any(iou(f.box, r.box) > 0.5 for f in faces) for r in reference]
            entry["found_of_reference"] = f"{sum(found)}/{len(reference)}"
            entry["extra"] = sum(not any(iou(f.box, r.box) > 0.5 for r in reference)
                                 for f in faces)
        results[name] = entry
    print(json.dumps({"photo": str(args.photo), "size": [image.shape[1], image.shape[0]],
                      "threads": args.threads, "repeats": args.repeats,
                      "machine": machine(), "python": platform.python_version(),
                      "detectors": results}, indent=2))


if __name__ == "__main__":
    main()
