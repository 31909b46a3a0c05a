"""Reading Aff-Wild2 / ABAW annotations for a million frames (issue 6).

Emotion-GCN's original Aff-Wild2 preprocessing matches every annotated frame against the list
of extracted frames with a linear search (O(n²) in the number of frames: hours at Aff-Wild2's
scale). openfer's reader (:mod:`openfer.data.affwild2`) lists each video folder once and
matches frames by number in a dict. This benchmark writes ABAW-format EXPR_Set and VA_Set
files (header line, one line per frame, ``-1`` / ``-5`` markers on 5 % of the frames) and an
empty file per frame under ``cropped_aligned/<video>/`` (so the image check runs too), then
times ``openfer.data.load_dataset("affwild2", ...)`` at 10 k, 100 k and 1 M frames.

    python benchmarks/affwild2_annotations.py [--frames 1000000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

FRAMES_PER_VIDEO = 2000
EXPR_HEADER = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"


def write_abaw(root: Path, n_frames: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    expr_dir = root / "EXPR_Set" / "Training_Set"
    va_dir = root / "VA_Set" / "Training_Set"
    expr_dir.mkdir(parents=True)
    va_dir.mkdir(parents=True)
    for video in range(n_frames // FRAMES_PER_VIDEO):
        name = f"{video:03d}-{video % 60:02d}-1920x1080"
        codes = rng.integers(0, 8, FRAMES_PER_VIDEO)
        codes[rng.random(FRAMES_PER_VIDEO) < 0.05] = -1
        va = rng.uniform(-1, 1, (FRAMES_PER_VIDEO, 2)).round(3)
        va[rng.random(FRAMES_PER_VIDEO) < 0.05] = -5
        (expr_dir / f"{name}.txt").write_text(
            EXPR_HEADER + "\n" + "\n".join(map(str, codes)) + "\n")
        (va_dir / f"{name}.txt").write_text(
            "valence,arousal\n" + "\n".join(f"{v},{a}" for v, a in va) + "\n")
        frames = root / "cropped_aligned" / name
        frames.mkdir(parents=True)
        for frame in range(1, FRAMES_PER_VIDEO + 1):
            if frame % 97:                        # about 1 % of the frames have no image
                os.close(os.open(frames / f"{frame:05d}.jpg", os.O_CREAT | os.O_WRONLY))


def main() -> None:
    from openfer.data import load_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    for n in args.frames:
        root = Path(tempfile.mkdtemp(prefix="affwild2_bench_"))
        try:
            start = time.perf_counter()
            write_abaw(root, n)
            written = time.perf_counter() - start
            start = time.perf_counter()
            dataset = load_dataset("affwild2", root, "train", image_size=(112, 112),
                                   channels=3, task="mtl")
            seconds = time.perf_counter() - start
        finally:
            shutil.rmtree(root, ignore_errors=True)
        row = {"frames_annotated": n, "frames_kept": len(dataset),
               "dropped": dict(dataset.dropped), "read_seconds": round(seconds, 2),
               "frames_per_second": round(n / seconds), "write_seconds": round(written, 1)}
        print(json.dumps(row))
        results.append(row)
    if args.json:
        args.json.write_text(json.dumps({"machine": f"{os.cpu_count()} CPU cores, "
                                         f"{platform.python_version()}",
                                         "command": "python benchmarks/affwild2_annotations.py",
                                         "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
