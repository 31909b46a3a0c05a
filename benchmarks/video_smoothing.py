"""Label flicker and lag of video predictions, with and without temporal smoothing.

    python benchmarks/video_smoothing.py [--faces 300] [--hold 45] [--fps 15] [--model default]

Writes a video of real FER2013 PublicTest faces (``--faces`` drawn with seed 0), each held
``--hold`` frames with camera-like jitter and then cut to the next face in the same place
(tests/helpers/held_faces.py), runs ``Recognizer.predict_video`` on it once (YuNet detector),
and replays the per-frame results through :class:`openfer.smoothing.TrackSmoother` for each
time constant (what ``predict_video(smooth=...)`` does). For each it reports, over the frames
where a face was found:

- label changes per second in the second half of each hold (the face does not change there:
  every change is flicker), and as a fraction of consecutive frame pairs;
- accuracy against the face's FER2013 label: in that settled half, over all frames, and in the
  first 0.2 s after each cut (the lag an abrupt change of expression pays); and, for reference,
the accuracy on the same faces given as 48x48 stills (``detector="none"``).

One JSON object on stdout. The README's "Video" paragraph quotes this script's output.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data/fer2013/fer2013.csv.gz")
    parser.add_argument("--yunet", type=Path, default=SHARED / "weights/yunet.onnx")
    parser.add_argument("--model", default="default")
    parser.add_argument("--faces", type=int, default=300)
    parser.add_argument("--hold", type=int, default=45, help="frames each face is held")
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--taus", default="0,0.05,0.1,0.2,0.3,0.5,1.0",
                        help="time constants in seconds (0: no smoothing)")
    args = parser.parse_args()

    import torch

    sys.path.insert(0, str(REPO / "tests"))
    from helpers.held_faces import write_held_faces_video

    from openfer.bench import machine
    from openfer.data import load_dataset
    from openfer.infer import Recognizer
    from openfer.smoothing import TrackSmoother

    torch.set_num_threads(1)
    faces = load_dataset("fer2013", args.data, "PublicTest")
    rows = np.random.default_rng(0).choice(len(faces.labels), args.faces, replace=False)
    truth = np.repeat(np.asarray(faces.labels)[rows], args.hold)
    recognizer = Recognizer(args.model, detector="yunet",
                            detector_options={"weights": args.yunet})
    classes = list(recognizer.meta.classes)
    with tempfile.TemporaryDirectory() as tmp:
        video = write_held_faces_video(Path(tmp) / "held_faces.avi",
                                       faces.images[rows, 0].numpy(), args.fps, args.hold)
        start = time.perf_counter()
        raw = list(recognizer.predict_video(video))
        seconds = time.perf_counter() - start
    still = Recognizer(args.model, detector="none").predict(
        [faces.images[row, 0].numpy() for row in rows])
    still_accuracy = round(float(np.mean([classes.index(r.faces[0].label) == faces.labels[row]
                                          for r, row in zip(still, rows)])), 4)
    position = np.arange(len(raw)) % args.hold
    seen = np.array([bool(r.faces) for r in raw])
    settled = position >= args.hold // 2
    first = position < round(0.2 * args.fps)
    rows_out = []
    for tau in (float(t) for t in args.taus.split(",")):
        smoother = TrackSmoother(tau) if tau > 0 else None
        labels = np.full(len(raw), -1)
        for i, result in enumerate(raw):
            result = copy.deepcopy(result)
            if smoother is not None:
                smoother.update(result, result.frame / args.fps)
            if result.faces:
                labels[i] = classes.index(result.faces[0].label)
        pairs = settled[1:] & settled[:-1] & seen[1:] & seen[:-1]
        changes = float(np.mean(labels[1:][pairs] != labels[:-1][pairs]))

        def accuracy(mask, labels=labels):
            mask = mask & seen
            return round(float(np.mean(labels[mask] == truth[mask])), 4)

        rows_out.append({"tau_s": tau,
                         "label_changes_per_s_settled": round(changes * args.fps, 3),
                         "label_changes_per_frame_pair_settled": round(changes, 4),
                         "accuracy_settled": accuracy(settled),
                         "accuracy_all_frames": accuracy(np.ones_like(seen)),
                         "accuracy_first_0.2s_after_a_cut": accuracy(first)})
    print(json.dumps({
        "benchmark": "video_smoothing", "model": args.model,
        "precision": getattr(recognizer, "precision", None),
        "video": {"faces": args.faces, "hold_frames": args.hold, "fps": args.fps,
                  "frames": len(raw), "frames_with_a_face": int(seen.sum()),
                  "source": "FER2013 PublicTest rows drawn with seed 0, "
                            "tests/helpers/held_faces.py"},
        "accuracy_of_the_same_faces_as_48x48_stills": still_accuracy,
        "predict_video_frames_per_s": round(len(raw) / seconds, 1),
        "results": rows_out, "machine": machine(), "python": platform.python_version(),
        "command": "python benchmarks/video_smoothing.py " + " ".join(sys.argv[1:]),
    }, indent=1))


if __name__ == "__main__":
    main()
