"""Temporal smoothing of expression scores along face tracks (openfer's addition for video)."""

import json
import math

import numpy as np
import pytest
from PIL import Image

import openfer
from conftest import SHARED
from helpers.held_faces import write_held_faces_video
from openfer.cli import main
from openfer.errors import OpenferError
from openfer.infer import FaceResult, ImageResult, Recognizer
from openfer.smoothing import TrackSmoother

YUNET = SHARED / "weights" / "yunet.onnx"
CLASSES = ("anger", "happiness", "neutral")


def frame(*faces):
    """An ImageResult with faces given as (track_id, probabilities)."""
    return ImageResult("clip", faces=[
        FaceResult(box=[0, 0, 10, 10], probabilities=dict(zip(CLASSES, probs)),
                   label=CLASSES[int(np.argmax(probs))], confidence=max(probs), track_id=tid)
        for tid, probs in faces])


def scores(face):
    return np.array([face.probabilities[c] for c in CLASSES])


def test_a_tracks_first_frame_is_its_own_average_and_a_steady_face_stays_put():
    smoother = TrackSmoother(0.3)
    for t in np.arange(0, 2, 1 / 15):
        face = smoother.update(frame((0, (0.2, 0.7, 0.1))), t).faces[0]
        assert np.allclose(scores(face), (0.2, 0.7, 0.1)) and face.label == "happiness"


def test_a_change_is_63_percent_through_after_one_time_constant_at_any_frame_rate():
    for fps in (4, 10, 30, 60):
        smoother = TrackSmoother(0.5)
        smoother.update(frame((0, (1.0, 0.0, 0.0))), 0.0)
        for k in range(1, fps // 2 + 1):
            face = smoother.update(frame((0, (0.0, 1.0, 0.0))), k / fps).faces[0]
        assert scores(face)[1] == pytest.approx(1 - math.exp(-1), abs=1e-4), fps
        assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-4)


def test_label_and_confidence_follow_the_average_and_the_frames_own_scores_are_kept():
    smoother = TrackSmoother(1.0)
    smoother.update(frame((0, (0.1, 0.8, 0.1))), 0.0)
    face = smoother.update(frame((0, (0.6, 0.3, 0.1))), 0.1).faces[0]
    assert face.label == "happiness"                       # one odd frame does not flip it
    assert face.confidence == pytest.approx(scores(face)[1], abs=1e-5)
    assert face.extras["frame_scores"] == dict(zip(CLASSES, (0.6, 0.3, 0.1)))


def test_tracks_are_averaged_separately_untracked_faces_untouched_and_old_tracks_forgotten():
    smoother = TrackSmoother(0.2)
    smoother.update(frame((0, (1.0, 0.0, 0.0)), (1, (0.0, 0.0, 1.0))), 0.0)
    a, b, loose = smoother.update(frame((0, (0.0, 1.0, 0.0)), (1, (0.0, 0.0, 1.0)),
                                        (None, (0.0, 1.0, 0.0))), 0.1).faces
    assert a.label == "anger" and b.label == "neutral" and np.allclose(scores(b), (0, 0, 1))
    assert "frame_scores" not in loose.extras and loose.label == "happiness"
    back = smoother.update(frame((0, (0.0, 1.0, 0.0))), 0.1 + 10 * 0.2 + 0.01).faces[0]
    assert np.allclose(scores(back), (0, 1, 0))            # gone longer than `forget`: afresh


def test_a_multitask_models_heads_are_averaged_too_and_their_frame_values_kept():
    smoother = TrackSmoother(0.5)

    def with_heads(valence, young):
        result = frame((0, (0.2, 0.7, 0.1)))
        scores = {"0-3": young, "4-19": 1 - young}
        result.faces[0].extras = {"valence": valence, "age": max(scores, key=scores.get),
                                  "age_scores": scores}
        return result

    smoother.update(with_heads(-1.0, 1.0), 0.0)
    face = smoother.update(with_heads(1.0, 0.0), 0.5).faces[0]
    weight = 1 - math.exp(-1)
    assert face.extras["valence"] == pytest.approx(-1 + 2 * weight, abs=1e-4)
    assert face.extras["age_scores"]["4-19"] == pytest.approx(weight, abs=1e-4)
    assert face.extras["age"] == "4-19"                    # the label follows the average
    assert face.extras["frame_valence"] == 1.0
    assert face.extras["frame_age_scores"] == {"0-3": 0.0, "4-19": 1.0}
    face = smoother.update(with_heads(1.0, 0.0), 0.5).faces[0]    # same instant: no change
    assert face.extras["valence"] == pytest.approx(-1 + 2 * weight, abs=1e-4)


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf")])
def test_the_time_constant_must_be_a_positive_number_of_seconds(seconds):
    with pytest.raises(ValueError, match="positive number of seconds"):
        TrackSmoother(seconds)


# -- on real faces -------------------------------------------------------------------------------
FPS, HOLD, FACES = 15, 30, 40


@pytest.fixture(scope="module")
def held_faces_video(tmp_path_factory, fer2013_csv):
    """40 real FER2013 PublicTest faces, each held 2 s at 15 fps in the same place with
    camera-like jitter, then cut to the next (tests/helpers/held_faces.py): a steady expression
    the classifier should label the same throughout its hold."""
    from openfer.data import load_dataset
    faces = load_dataset("fer2013", fer2013_csv, "PublicTest")
    rows = np.random.default_rng(0).choice(len(faces.labels), FACES, replace=False)
    return write_held_faces_video(tmp_path_factory.mktemp("video") / "held_faces.avi",
                                  faces.images[rows, 0].numpy(), FPS, HOLD)


def label_changes(results) -> tuple[int, int]:
    """Label changes between consecutive frames in the second half of each hold (when even a
    slow average has settled on the new face), and the number of such frame pairs."""
    changes = pairs = 0
    for previous, current in zip(results, results[1:]):
        if current.frame % HOLD > HOLD // 2 and previous.faces and current.faces:
            pairs += 1
            changes += previous.faces[0].label != current.faces[0].label
    return changes, pairs


def test_smoothing_removes_most_label_flicker_of_the_default_model_on_real_faces(
        held_faces_video):
    rec = Recognizer("default", detector="yunet", detector_options={"weights": YUNET})
    raw = list(rec.predict_video(held_faces_video))
    smooth = list(rec.predict_video(held_faces_video, smooth=0.3))
    assert [r.frame for r in raw] == [r.frame for r in smooth] == list(range(FACES * HOLD))
    raw_changes, pairs = label_changes(raw)
    smooth_changes, _ = label_changes(smooth)
    assert pairs > 0.9 * FACES * (HOLD - HOLD // 2 - 1)
    assert raw_changes >= 20                               # the flicker is real ...
    assert smooth_changes <= raw_changes / 3               # ... and mostly gone
    for r, s in zip(raw, smooth):                          # the frames' own scores are kept
        for a, b in zip(r.faces, s.faces):
            assert b.extras["frame_scores"] == a.probabilities


def test_predict_cli_smooth_option(held_faces_video, capsys):
    assert main(["predict", str(held_faces_video), "--yunet", str(YUNET), "--json",
                 "--max-frames", "4", "--smooth", "0.3"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 4 and all(set(r["frame_scores"]) == set(r["scores"])
                                     for r in records)
    with pytest.raises(SystemExit):
        main(["predict", str(held_faces_video), "--smooth", "-0.5"])
    assert "'-0.5' is not a duration" in capsys.readouterr().err
    rec = Recognizer("default", detector="yunet", detector_options={"weights": YUNET})
    with pytest.raises(OpenferError, match="smooth needs track=True"):
        next(rec.predict_video(held_faces_video, smooth=0.3, track=False))


# -- offline: evaluation on data sets of video frames ----------------------------------------------
def test_sequences_are_smoothed_per_video_in_frame_order_whatever_the_sample_order():
    from openfer.smoothing import smooth_sequences

    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    videos = np.array([0, 0, 0, 1, 1])
    frames = np.array([1, 2, 4, 1, 2])
    out = smooth_sequences(probs, videos, frames, seconds=0.1, fps=10)
    w1, w2 = 1 - math.exp(-1), 1 - math.exp(-2)          # one frame = 0.1 s; a gap of two
    assert np.allclose(out[0], [1, 0]) and np.allclose(out[1], [1 - w1, w1])
    assert np.allclose(out[2], out[1] + w2 * (probs[2] - out[1]))
    assert np.allclose(out[3], [0, 1])                    # another video starts afresh
    shuffle = np.array([4, 2, 0, 3, 1])
    assert np.allclose(smooth_sequences(probs[shuffle], videos[shuffle], frames[shuffle], 0.1,
                                        10), out[shuffle])


def test_eval_smooth_needs_frames_of_videos(fer2013_subset, capsys):
    assert main(["eval", "--model", "default", "--dataset", "fer2013", "--root",
                 str(fer2013_subset), "--split", "PublicTest", "--smooth", "0.3"]) != 0
    assert "smoothing over time needs faces that are frames of videos" in \
        capsys.readouterr().err


def test_eval_smooths_aff_wild2_frames_over_time(fer2013_csv, tmp_path, capsys):
    """An Aff-Wild2 tree (cropped_aligned/<video>/00001.jpg, EXPR_Set annotations) of real
    FER2013 faces held 45 frames each with camera-like jitter: openfer eval --smooth averages
    each video's scores in frame order at --fps, as a hand-written average does."""
    from openfer.data import load_dataset
    from openfer.evaluate import predict_probabilities
    from openfer.labels import AFFWILD2, FER2013, convert

    from helpers.held_faces import held_face_frames

    faces = load_dataset("fer2013", fer2013_csv, "PublicTest")
    rows = np.random.default_rng(1).choice(len(faces.labels), 12, replace=False)
    header = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise"
    annotations = tmp_path / "EXPR_Set" / "Validation_Set"
    annotations.mkdir(parents=True)
    for v, group in enumerate(np.split(rows, 3)):
        folder = tmp_path / "cropped_aligned" / f"video{v}"
        folder.mkdir(parents=True)
        frames = held_face_frames(faces.images[group, 0].numpy(), 45, seed=v, size=(112, 112),
                                  side=104)
        for k, image in enumerate(frames, 1):
            Image.fromarray(image).convert("RGB").save(folder / f"{k:05d}.jpg", quality=90)
        codes = [convert(int(faces.labels[r]), FER2013, AFFWILD2) for r in group for _ in
                 range(45)]
        (annotations / f"video{v}.txt").write_text(header + "\n" + "\n".join(map(str, codes))
                                                   + "\n")
    common = ["eval", "--model", "default", "--dataset", "affwild2", "--root", str(tmp_path),
              "--split", "val", "--option", "task=expr", "--json"]
    assert main(common) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main(common + ["--smooth", "0.3", "--fps", "30"]) == 0
    smoothed = json.loads(capsys.readouterr().out)
    assert plain["n"] == smoothed["n"] == 540 and "smooth_s" not in plain
    assert (smoothed["smooth_s"], smoothed["fps"]) == (0.3, 30.0)
    assert smoothed["fps_read_from_videos"] == 0          # no videos/ folder: --fps for all

    model = openfer.load_model("default")
    dataset = load_dataset("affwild2", tmp_path, "val", task="expr", image_size=(48, 48),
                           channels=1)
    probs = predict_probabilities(model, dataset)
    expected, average = [], None
    for i, path in enumerate(dataset.paths):              # the tree's order: video, frame
        if path.stem == "00001":
            average = probs[i]
        else:
            average = average + (1 - math.exp(-1 / 30 / 0.3)) * (probs[i] - average)
        expected.append(average.argmax())
    truth = [model.meta.classes.index(dataset.classes[y].value) for y in dataset.labels]
    assert smoothed["accuracy"] == pytest.approx(np.mean(np.array(expected) == truth), abs=1e-9)
    assert plain["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == truth), abs=1e-9)


def test_eval_smooth_reads_each_videos_frame_rate_from_its_file(tmp_path):
    """Aff-Wild2's videos beside its frames (``videos/batch*/<video>.mp4``; a two-person
    video's folders ``<video>_left`` / ``_right`` share one file): each video is smoothed at its
    own rate, the others at ``fps``."""
    import cv2

    from openfer.data import load_dataset
    from openfer.evaluate import _smoother
    from openfer.smoothing import frame_rates

    header = "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise"
    (tmp_path / "EXPR_Set" / "Validation_Set").mkdir(parents=True)
    for name in ("video1", "video2_left", "video2_right", "video3"):
        folder = tmp_path / "cropped_aligned" / name
        folder.mkdir(parents=True)
        for k in (1, 2):
            Image.new("RGB", (112, 112), (90, 90, 90)).save(folder / f"{k:05d}.jpg")
        (tmp_path / "EXPR_Set" / "Validation_Set" / f"{name}.txt").write_text(
            header + "\n0\n4\n")
    for batch, name, rate in (("batch1", "video1", 10), ("batch2", "video2", 25)):
        (tmp_path / "videos" / batch).mkdir(parents=True)
        writer = cv2.VideoWriter(str(tmp_path / "videos" / batch / f"{name}.avi"),
                                 cv2.VideoWriter_fourcc(*"MJPG"), rate, (64, 64))
        for _ in range(3):
            writer.write(np.zeros((64, 64, 3), np.uint8))
        writer.release()
    dataset = load_dataset("affwild2", tmp_path, "val", task="expr")
    assert sorted(dataset.video_files) == ["video1", "video2_left", "video2_right"]
    rates, read = frame_rates(dataset, 30.0)
    assert read == 3
    assert dict(zip((p.parent.name for p in dataset.paths), rates)) == {
        "video1": 10.0, "video2_left": 25.0, "video2_right": 25.0, "video3": 30.0}
    smooth, read = _smoother(dataset, 0.2, 30.0)
    probs = np.tile([[1.0, 0.0], [0.0, 1.0]], (4, 1))       # frame 1, frame 2 of each video
    out = smooth(probs)
    for i, rate in zip(range(1, 8, 2), (10, 25, 25, 30)):  # one frame later: 1 / rate seconds
        assert out[i, 1] == pytest.approx(1 - math.exp(-1 / rate / 0.2))
