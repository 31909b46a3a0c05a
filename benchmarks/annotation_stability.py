"""How often annotated video labels move: title and score panel placement per tracked face.

    python benchmarks/annotation_stability.py [--frames 150]

Runs ``predict_video`` (YuNet, the default model) on the six-person photo panning and zooming
(the video of benchmarks/predict_vs_fer_pipeline.py, 640x443, 25 fps), lays out each frame's
labels as ``--save-annotated`` does, once frame by frame and once with
:class:`openfer.annotate.Placements` (labels stay where they were while that spot is free), and
counts the face-to-face transitions (a tracked face in consecutive frames) in which its title or
panel changes side (above, below, left, right, inside, none) or its panel's rows change. One
JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def side(rect, box) -> str:
    if rect is None:
        return "none"
    if rect[1] >= box[3] - 2:
        return "below"
    if rect[3] <= box[1] + 2:
        return "above"
    if rect[0] >= box[2]:
        return "right"
    return "left" if rect[2] <= box[0] else "inside"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=150)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO / "benchmarks"))
    from predict_vs_fer_pipeline import make_video

    from openfer.annotate import Placements, layout
    from openfer.bench import machine
    from openfer.infer import Recognizer

    recognizer = Recognizer("default", detector="yunet",
                            detector_options={"weights": SHARED / "weights/yunet.onnx"})
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "group.avi"
        make_video(video, args.frames)
        frames = list(recognizer.predict_video(video, with_frames=True))
    out = {}
    for name, placements in (("frame_by_frame", None), ("placements", Placements())):
        previous, moves, transitions = {}, 0, 0
        for result, rgb in frames:
            plan = layout(rgb.shape, result, placements=placements)
            for face, box, title, (panel, rows) in zip(result.faces, plan.boxes,
                                                       plan.title_rects, plan.panel_rects):
                state = (side(title, box), side(panel, box), rows)
                if face.track_id in previous:
                    transitions += 1
                    moves += previous[face.track_id] != state
                previous[face.track_id] = state
        out[name] = {"moves": moves, "transitions": transitions}
    print(json.dumps({"benchmark": "annotation_stability", "frames": len(frames), **out,
                      "machine": machine(),
                      "command": "python benchmarks/annotation_stability.py "
                                 + " ".join(sys.argv[1:])}, indent=1))


if __name__ == "__main__":
    main()
