"""Per-person summaries of a video (``openfer predict --summary``, ``openfer.summary``)."""

import csv
import json

import numpy as np
import pytest

from conftest import SHARED
from helpers.held_faces import write_held_faces_video
from openfer.cli import main
from openfer.infer import FaceResult, ImageResult
from openfer.summary import summarize

YUNET = SHARED / "weights" / "yunet.onnx"


def frame(index, *faces):
    """A frame at 10 fps with faces given as (track_id, label, valence)."""
    return ImageResult("clip.mp4", frame=index, time=index / 10, faces=[
        FaceResult(box=[0, 0, 10, 10], label=label, confidence=0.8, track_id=tid,
                   probabilities={"happiness": 0.8 if label == "happiness" else 0.2,
                                  "neutral": 0.2 if label == "happiness" else 0.8},
                   extras={"valence": valence, "frame_valence": 9.0})
        for tid, label, valence in faces])


def test_one_row_per_track_with_its_times_label_shares_and_means():
    results = [frame(0, (0, "happiness", 0.5), (1, "neutral", -0.5)),
               frame(5, (0, "happiness", 0.3)),
               frame(10, (0, "neutral", 0.1), (1, "neutral", -0.3)),
               ImageResult("photo.jpg", faces=[FaceResult([0, 0, 1, 1], {"neutral": 1.0},
                                                          "neutral", 1.0)])]   # no track
    first, second = summarize(results)
    assert (first["track_id"], first["first_frame"], first["last_frame"]) == (0, 0, 10)
    assert (first["start"], first["end"], first["frames"]) == (0.0, 1.0, 3)
    assert first["label"] == "happiness"
    assert first["share"] == {"happiness": pytest.approx(2 / 3, abs=1e-4),
                              "neutral": pytest.approx(1 / 3, abs=1e-4)}
    assert first["mean_scores"]["happiness"] == pytest.approx((0.8 + 0.8 + 0.2) / 3, abs=1e-4)
    assert first["mean_valence"] == pytest.approx(0.3, abs=1e-4)
    assert "mean_frame_valence" not in first              # the frame's own, before smoothing
    assert (second["track_id"], second["frames"], second["label"]) == (1, 2, "neutral")
    assert second["share"]["happiness"] == 0.0


def test_predict_writes_the_summary_of_a_real_video_as_csv_and_json(fer2013_csv, tmp_path,
                                                                   capsys):
    from openfer.data import load_dataset
    faces = load_dataset("fer2013", fer2013_csv, "PublicTest").images[[0, 4], 0].numpy()
    video = write_held_faces_video(tmp_path / "two.avi", faces, fps=10, hold=12)
    assert main(["predict", str(video), "--yunet", str(YUNET), "--json", "--summary",
                 str(tmp_path / "people.csv")]) == 0
    out = capsys.readouterr()
    records = [json.loads(line) for line in out.out.splitlines()]
    rows = list(csv.DictReader(open(tmp_path / "people.csv")))
    assert "summary of" in out.err
    tracked = [r for r in records if r.get("track_id") is not None]
    assert sum(int(row["frames"]) for row in rows) == len(tracked)
    for row in rows:                       # the shares are the records' label counts
        mine = [r for r in tracked if r["track_id"] == int(row["track_id"])]
        for label in {r["label"] for r in mine}:
            share = sum(r["label"] == label for r in mine) / len(mine)
            assert float(row[f"share_{label}"]) == pytest.approx(share, abs=1e-4)
        assert sum(float(row[k]) for k in row if k.startswith("share_")) == \
            pytest.approx(1, abs=1e-3)
        assert row["start"] == str(mine[0]["time"]) and row["end"] == str(mine[-1]["time"])
    assert main(["predict", str(video), "--yunet", str(YUNET), "--summary",
                 str(tmp_path / "people.json"), "--smooth", "0.3"]) == 0
    smoothed = json.loads((tmp_path / "people.json").read_text())
    assert [r["frames"] for r in smoothed] == [int(r["frames"]) for r in rows]
    assert all(np.isclose(sum(r["mean_scores"].values()), 1, atol=1e-3) for r in smoothed)


def test_a_summary_path_in_a_missing_folder_is_refused_before_any_work(tmp_path, capsys):
    assert main(["predict", str(tmp_path), "--summary", str(tmp_path / "no" / "s.csv")]) != 0
    assert "its folder does not exist" in capsys.readouterr().err


def test_a_stream_stopped_with_ctrl_c_keeps_its_summary(tmp_path, monkeypatch, capsys):
    from openfer.infer import Recognizer

    def camera(self, source, **options):
        for i in range(3):
            result = frame(i, (0, "neutral", 0.0))
            yield (result, np.zeros((20, 20, 3), np.uint8)) if options.get("with_frames") \
                else result
        raise KeyboardInterrupt

    monkeypatch.setattr(Recognizer, "predict_video", camera)
    assert main(["predict", "--camera", "0", "--detector", "haar", "--summary",
                 str(tmp_path / "s.json")]) == 130
    rows = json.loads((tmp_path / "s.json").read_text())
    assert [(r["track_id"], r["frames"], r["label"]) for r in rows] == [(0, 3, "neutral")]
    assert "interrupted" in capsys.readouterr().err
