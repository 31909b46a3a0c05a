"""Recognising expressions in photos, folders and videos: detection, alignment, results."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import openfer
from conftest import SHARED, png_declaring
from openfer.checkpoint import save_weights
from openfer.cli import main
from openfer.faces.align import ARCFACE_112, similarity_transform
from openfer.faces.detect import HaarDetector, YuNetDetector
from openfer.faces.track import IoUTracker, iou
from openfer.infer import Recognizer

PHOTOS = SHARED / "data" / "photos"
YUNET = SHARED / "weights" / "yunet.onnx"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A model file for pipeline tests (its predictions are not judged here)."""
    return save_weights(openfer.create_model("deep_emotion"),
                        tmp_path_factory.mktemp("m") / "model.safetensors")


@pytest.fixture(scope="module")
def group6():
    path = PHOTOS / "group6.jpg"
    if not path.is_file():
        pytest.skip(f"{path} not found (../shared is not beside the repository)")
    return path


@pytest.fixture(scope="module")
def yunet():
    if not YUNET.is_file():
        pytest.skip(f"{YUNET} not found (../shared is not beside the repository)")
    return YuNetDetector(YUNET)


def _rgb(path):
    return np.asarray(Image.open(path).convert("RGB"))


# -- detection ------------------------------------------------------------------------------
def test_yunet_finds_all_six_faces_with_landmarks(group6, yunet):
    faces = yunet.detect(_rgb(group6))
    assert len(faces) == 6
    for face in faces:
        assert face.score > 0.8 and face.landmarks.shape == (5, 2)
        x1, y1, x2, y2 = face.box
        left_eye, right_eye = face.landmarks[0], face.landmarks[1]
        assert x1 < left_eye[0] < right_eye[0] < x2 and y1 < left_eye[1] < y2


def test_haar_finds_at_least_four_of_the_six_faces(group6, yunet):
    image = _rgb(group6)
    truth = [f.box for f in yunet.detect(image)]
    found = HaarDetector().detect(image)
    matched = {i for f in found for i, t in enumerate(truth) if iou(f.box, t) > 0.3}
    assert len(matched) >= 4, f"Haar matched {len(matched)} of the 6 faces"


def test_auto_detector_prefers_yunet_when_its_weights_are_found(monkeypatch, yunet):
    from openfer.faces.detect import create_detector
    monkeypatch.setenv("OPENFER_YUNET", str(YUNET))
    assert create_detector("auto").name == "yunet"
    monkeypatch.delenv("OPENFER_YUNET")
    monkeypatch.delenv("OPENFER_MTCNN", raising=False)
    monkeypatch.setenv("OPENFER_HOME", "/nonexistent")
    monkeypatch.setattr("openfer.faces.mtcnn._package_folder", lambda: None)   # nor the pip one
    assert create_detector("auto").name == "haar"


def test_missing_yunet_weights_say_where_to_put_them(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENFER_YUNET", raising=False)
    monkeypatch.setenv("OPENFER_HOME", str(tmp_path))
    with pytest.raises(openfer.OpenferError, match="save it as .*yunet.onnx"):
        YuNetDetector()


def test_yunet_weights_are_checked_against_the_pinned_checksum(tmp_path):
    fake = tmp_path / "yunet.onnx"
    fake.write_bytes(b"not the model")
    with pytest.raises(openfer.OpenferError, match="does not match YuNet's pinned"):
        YuNetDetector(fake)


# -- alignment and tracking ------------------------------------------------------------------
def test_similarity_transform_recovers_a_known_transform():
    angle, scale, shift = np.deg2rad(12), 1.7, np.array([5.0, -3.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    source = ARCFACE_112 / 2
    target = source @ rotation.T + shift
    matrix = similarity_transform(source, target)
    assert np.allclose(matrix[:, :2], rotation, atol=1e-9)
    assert np.allclose(matrix[:, 2], shift, atol=1e-9)


@pytest.mark.parametrize("factor, offset", [(4, 200), (3, 201), (5, 0), (2, 37)])
def test_a_face_shrunk_by_a_whole_factor_is_the_area_average_of_its_pixels(factor, offset):
    """A large face is area-averaged before it is warped, without aliasing and without a
    shift: shrunk ``factor`` times, each output pixel is the mean of its ``factor`` x
    ``factor`` block (pixel centres as OpenCV's resize has them)."""
    from openfer.faces.align import warp

    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 255, (800, 900, 3)).astype(np.uint8), (0, 0), 2)
    shift = -offset / factor - (factor - 1) / (2 * factor)
    matrix = np.array([[1 / factor, 0, shift], [0, 1 / factor, shift]])
    region = image[offset:offset + 48 * factor, offset:offset + 48 * factor]
    expected = cv2.resize(region, (48, 48), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(warp(image, matrix, (48, 48)), expected)


def test_faces_in_a_large_photo_are_cropped_from_their_own_region(group6, model_file):
    """Only the region a face's crop reads is area-averaged, not the whole photo: six faces
    of an 18-megapixel photo take about as long as six of its 1.1-megapixel original."""
    import time

    rec = Recognizer(model_file, detector="yunet", detector_options={"weights": YUNET})
    image = np.asarray(Image.open(group6).convert("RGB"))
    big = cv2.resize(image, (image.shape[1] * 4, image.shape[0] * 4))
    faces = rec.detector.detect(image)

    def seconds(photo, detections):
        start = time.perf_counter()
        crops = [rec.crop(photo, d) for d in detections]
        return time.perf_counter() - start, crops

    seconds(big, [d.scaled(4.0) for d in faces])                  # warm-up
    small_s, small = seconds(image, faces)
    big_s, crops = seconds(big, [d.scaled(4.0) for d in faces])
    assert big_s < 10 * small_s + 0.02, (big_s, small_s)           # the whole photo: 50x
    for a, b in zip(small, crops):                                 # the same faces
        assert np.abs(a.astype(int) - b).mean() < 6


def test_tracker_keeps_ids_and_starts_new_ones():
    tracker = IoUTracker()
    assert tracker.update([(0, 0, 10, 10), (50, 50, 60, 60)]) == [0, 1]
    assert tracker.update([(52, 51, 62, 61), (1, 0, 11, 10)]) == [1, 0]
    assert tracker.update([(100, 100, 110, 110)]) == [2]


# -- the Recognizer ---------------------------------------------------------------------------
def test_recognizer_on_the_group_photo(group6, model_file):
    result = Recognizer(model_file, detector="yunet",
                        detector_options={"weights": YUNET}).predict(group6)[0]
    assert result.error is None and len(result.faces) == 6
    assert (result.width, result.height) == (1280, 886)
    for face in result.faces:
        assert set(face.probabilities) == set(openfer.create_model("deep_emotion").meta.classes)
        assert sum(face.probabilities.values()) == pytest.approx(1, abs=1e-3)
        assert face.label == max(face.probabilities, key=face.probabilities.get)


def test_aligned_face_without_detection(model_file):
    path = PHOTOS / "aligned112.png"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    result = Recognizer(model_file, detector="none").predict(path)[0]
    assert len(result.faces) == 1 and result.faces[0].box == [0.0, 0.0, 112.0, 112.0]


def test_an_ensemble_predicts_the_mean_of_its_members_probabilities(tmp_path, capsys):
    """``Recognizer([a, b])`` and ``openfer predict --model a --model b``: the mean of the two
    models' probabilities, face by face (as ``openfer eval`` with two models)."""
    torch.manual_seed(0)
    a = save_weights(openfer.create_model("fernet_s"), tmp_path / "a.safetensors")
    b = save_weights(openfer.create_model("fernet_s"), tmp_path / "b.safetensors")
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48, 1), dtype=np.uint8)
    single = [Recognizer(m, detector="none", precision="fp32").classify(faces) for m in (a, b)]
    both = Recognizer([a, b], detector="none", precision="fp32")
    assert both.meta.architecture.startswith("ensemble(")
    np.testing.assert_allclose(both.classify(faces), (single[0] + single[1]) / 2, atol=1e-5)
    cv2.imwrite(str(tmp_path / "face.png"), faces[0])
    assert main(["predict", str(tmp_path / "face.png"), "--model", str(a), "--model", str(b),
                 "--no-detect", "--precision", "fp32", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    expected = (single[0][0] + single[1][0]) / 2
    np.testing.assert_allclose(list(record["scores"].values()), expected, atol=1e-4)
    assert Recognizer([a], detector="none").meta.architecture == "fernet_s"   # not ensemble(a)
    with pytest.raises(openfer.OpenferError, match="not .onnx files"):
        Recognizer([a, tmp_path / "c.onnx"], detector="none")


def test_rgb_bgr_arrays_and_pil_images_agree(group6, model_file):
    rec = Recognizer(model_file, detector="yunet", detector_options={"weights": YUNET})
    rgb = _rgb(group6)
    from_rgb, from_pil = rec.predict([rgb, Image.fromarray(rgb)])
    from_bgr = rec.predict(rgb[:, :, ::-1].copy(), color="bgr")[0]
    assert [f.probabilities for f in from_bgr.faces] == [f.probabilities for f in from_rgb.faces]
    assert [f.box for f in from_pil.faces] == [f.box for f in from_rgb.faces]


def test_image_without_a_face_says_so(model_file, tmp_path):
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 300, 3), 200, np.uint8)).save(blank)
    result = Recognizer(model_file, detector="haar").predict(blank)[0]
    assert result.faces == [] and result.error is None
    assert result.records() == [{"file": str(blank), "frame": None, "time": None, "face": None,
                                 "label": None, "note": "no face detected"}]


def test_small_photos_without_a_face_suggest_no_detect_once(model_file, tmp_path, capsys):
    crops = tmp_path / "crops"
    crops.mkdir()
    for i in range(3):                                 # nothing a detector would call a face
        Image.fromarray(np.full((48, 48, 3), 60 * i, np.uint8)).save(crops / f"{i}.png")
    Image.fromarray(np.full((200, 300, 3), 200, np.uint8)).save(crops / "wall.png")
    options = ["--model", str(model_file), "--detector", "haar", "--json"]
    assert main(["predict", str(crops), *options]) == 0
    err = capsys.readouterr().err
    assert err.count("--no-detect classifies each one whole") == 1 and "(48x48)" in err
    assert main(["predict", str(crops / "wall.png"), *options]) == 0   # a scene: no hint
    assert main(["predict", str(crops), *options, "--no-detect"]) == 0
    assert "--no-detect classifies" not in capsys.readouterr().err


# -- bad input never crashes a batch ----------------------------------------------------------
def _bad_inputs(tmp_path, face_rgb):
    """(name, path, readable) for inputs from the wild."""
    files = []
    (tmp_path / "zero.jpg").write_bytes(b"")
    files.append(("zero-byte", tmp_path / "zero.jpg", False))
    ok = tmp_path / "ok.jpg"
    Image.fromarray(face_rgb).save(ok)
    data = ok.read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 3])
    files.append(("truncated", tmp_path / "truncated.jpg", False))   # half a face: refused
    corrupt = bytearray(data)
    corrupt[2:40] = b"\x00" * 38
    (tmp_path / "corrupt.jpg").write_bytes(bytes(corrupt))
    files.append(("corrupt header", tmp_path / "corrupt.jpg", False))
    (tmp_path / "notes.txt").write_text("not an image")
    files.append(("non-image", tmp_path / "notes.txt", False))
    Image.fromarray(face_rgb).convert("L").save(tmp_path / "gray.png")
    files.append(("grayscale", tmp_path / "gray.png", True))
    Image.fromarray(face_rgb).convert("RGBA").save(tmp_path / "rgba.png")
    files.append(("RGBA", tmp_path / "rgba.png", True))
    Image.fromarray(face_rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    files.append(("CMYK", tmp_path / "cmyk.jpg", True))
    sixteen = (np.asarray(Image.fromarray(face_rgb).convert("L"), np.uint16) * 257)
    Image.fromarray(sixteen).save(tmp_path / "gray16.png")
    files.append(("16-bit", tmp_path / "gray16.png", True))
    rotated = Image.fromarray(np.ascontiguousarray(np.rot90(face_rgb, -1)))   # stored sideways
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated.save(tmp_path / "exif.jpg", exif=exif)
    files.append(("EXIF-rotated", tmp_path / "exif.jpg", True))
    return files


def test_bad_files_get_messages_and_the_batch_goes_on(model_file, tmp_path):
    face = np.asarray(Image.open(PHOTOS / "aligned112.png").convert("RGB")) \
        if (PHOTOS / "aligned112.png").is_file() else np.full((112, 112, 3), 128, np.uint8)
    cases = _bad_inputs(tmp_path, face)
    results = Recognizer(model_file, detector="none").predict([p for _, p, _ in cases])
    for (name, path, readable), result in zip(cases, results):
        if readable:
            assert result.error is None, f"{name}: {result.error}"
            assert len(result.faces) == 1 and (result.width, result.height) == (112, 112), name
        else:
            assert result.error and str(path) in result.error, name


def test_exif_orientation_is_applied(tmp_path):
    from openfer.data.images import read_image_bounded
    stored = np.zeros((40, 80, 3), np.uint8)          # stored landscape, 80 wide
    exif = Image.Exif()
    exif[0x0112] = 6                                  # rotate 90° clockwise on display
    Image.fromarray(stored).save(tmp_path / "r.jpg", exif=exif)
    image, _ = read_image_bounded(tmp_path / "r.jpg")
    assert image.shape[:2] == (80, 40)


def test_bounded_reading_refuses_what_it_cannot_decode_in_bounded_memory(tmp_path):
    from openfer.data.images import read_image_bounded
    from openfer.errors import DataFormatError

    wide = tmp_path / "wide.png"                   # 121 megapixels, not a JPEG: no DCT scaling
    wide.write_bytes(png_declaring(11_000, 11_000))
    with pytest.raises(DataFormatError, match="11000x11000 pixels; PNG images above 120 "
                                              "megapixels are not decoded"):
        read_image_bounded(wide)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(100_000, 100_000))
    with pytest.raises(DataFormatError, match="bomb.png"):
        read_image_bounded(bomb)


@pytest.mark.slow
def test_giant_image_is_decoded_in_bounded_memory(tmp_path, model_file):
    giant = tmp_path / "giant.jpg"
    Image.new("L", (20000, 20000), 90).save(giant, quality=50)
    # Peak resident memory of this process image: VmHWM (ru_maxrss would include the memory of
    # the pytest process it was forked from, which Linux carries across exec).
    script = (
        "from openfer.infer import Recognizer; "
        f"r = Recognizer({str(model_file)!r}, detector='haar').predict({str(giant)!r})[0]; "
        "assert r.error is None and (r.width, r.height) == (20000, 20000), r; "
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    peak_mb = int(out.stdout.strip().splitlines()[-1]) / 1024
    assert peak_mb < 1200, f"peak memory {peak_mb:.0f} MB for a 20000x20000 JPEG"


# -- video --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fer_video(tmp_path_factory, fer2013_csv):
    """A 12-frame video of two real FER2013 faces drifting slowly (PublicTest rows 0 and 4)."""
    from openfer.data import load_dataset
    faces = load_dataset("fer2013", fer2013_csv, "PublicTest").images[[0, 4], 0].numpy()
    path = tmp_path_factory.mktemp("video") / "two_faces.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (480, 270))
    for t in range(12):
        frame = np.full((270, 480), 128, np.uint8)
        for k, face in enumerate(faces):
            big = cv2.resize(face, (120, 120), interpolation=cv2.INTER_CUBIC)
            x, y = 40 + 240 * k + 2 * t, 70 + t
            frame[y:y + 120, x:x + 120] = big
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def test_video_gives_one_record_per_face_per_frame_with_stable_ids(fer_video, model_file):
    rec = Recognizer(model_file, detector="yunet", detector_options={"weights": YUNET})
    frames = list(rec.predict_video(fer_video))
    assert [f.frame for f in frames] == list(range(12))
    assert all(len(f.faces) == 2 for f in frames)
    first = {round(f.box[0] / 240): f.track_id for f in frames[0].faces}
    for frame in frames:
        assert {round(f.box[0] / 240): f.track_id for f in frame.faces} == first
    every = list(rec.predict_video(fer_video, every=5))
    assert [f.frame for f in every] == [0, 5, 10]


def test_a_face_missed_for_less_than_a_second_keeps_its_track(fer2013_csv, model_file,
                                                              tmp_path):
    """A real face, then 0.6 s (6 frames at 10 fps) without it (out of the picture, or missed
    by the detector), then back where it was: one track, at any --every."""
    from openfer.data import load_dataset

    face = load_dataset("fer2013", fer2013_csv, "PublicTest").images[0, 0].numpy()
    path = tmp_path / "gap.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for t in range(30):
        frame = np.full((240, 320), 128, np.uint8)
        if not 10 <= t < 16:
            frame[60:180, 100:220] = cv2.resize(face, (120, 120), interpolation=cv2.INTER_CUBIC)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    rec = Recognizer(model_file, detector="yunet", detector_options={"weights": YUNET})
    for every in (1, 2):
        frames = list(rec.predict_video(path, every=every))
        seen = [f.frame for f in frames if f.faces]
        assert seen and not any(10 <= k < 16 for k in seen)
        assert {face.track_id for f in frames for face in f.faces} == {0}, every


def test_predict_cli_on_video_and_unreadable_video(fer_video, model_file, tmp_path, capsys):
    assert main(["predict", str(fer_video), "--model", str(model_file), "--detector", "yunet",
                 "--yunet", str(YUNET), "--json", "--every", "3",
                 "--save-annotated", str(tmp_path / "out")]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 8 and {r["frame"] for r in records} == {0, 3, 6, 9}
    assert {r["track_id"] for r in records} == {0, 1}
    assert (tmp_path / "out" / "two_faces.annotated.mp4").stat().st_size > 0
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    assert main(["predict", str(broken), "--model", str(model_file)]) == 1
    assert "broken.mp4: cannot open the video" in capsys.readouterr().err


def test_annotated_copies_of_inputs_with_the_same_name_do_not_overwrite_each_other(
        model_file, tmp_path, capsys):
    photos = tmp_path / "photos"
    shades = {"happy/001.jpg": 40, "sad/001.jpg": 90, "001.png": 140, "001.jpg": 190}
    for name, shade in shades.items():
        (photos / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((48, 48, 3), shade, np.uint8)).save(photos / name)
    out = tmp_path / "out"
    assert main(["predict", str(photos), "--recursive", "--no-detect", "--model",
                 str(model_file), "--save-annotated", str(out)]) == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.jpg"))
    assert written == ["001-2.annotated.jpg", "001.annotated.jpg", "happy/001.annotated.jpg",
                       "sad/001.annotated.jpg"]        # sub-folders kept, one name renamed
    assert "001.png: annotated copy written to" in capsys.readouterr().err
    means = {str(p.relative_to(out)): cv2.imread(str(p)).mean() for p in out.rglob("*.jpg")}
    assert means["happy/001.annotated.jpg"] < means["sad/001.annotated.jpg"]   # each its own


def test_an_annotated_video_that_cannot_be_written_is_an_error_of_its_input(
        fer_video, model_file, tmp_path, capsys, monkeypatch):
    options = ["--model", str(model_file), "--no-detect", "--max-frames", "2"]
    a_file = tmp_path / "out.txt"
    a_file.write_text("")
    assert main(["predict", str(fer_video), *options, "--save-annotated", str(a_file)]) == 2
    assert "out.txt: a file, not a folder" in capsys.readouterr().err

    class Unopened:                     # OpenCV without an encoder, or a folder it may not write
        def __init__(self, *args):
            pass

        def isOpened(self):
            return False

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoWriter", Unopened)
    assert main(["predict", str(fer_video), *options, "--save-annotated",
                 str(tmp_path / "out"), "--strict"]) == 1
    assert "cannot write the annotated video there" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_video_shows_its_progress_in_frames_on_a_terminal(fer_video, model_file,
                                                            monkeypatch):
    import openfer.predict_cli as predict_cli

    bars = []

    class Bar:                                             # what tqdm is given and told
        def __init__(self, total, unit):
            self.total, self.unit, self.count, self.closed = total, unit, 0, False
            bars.append(self)

        def update(self):
            self.count += 1

        def close(self):
            self.closed = True

    monkeypatch.setattr(predict_cli.sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(predict_cli, "_progress", Bar)
    assert main(["predict", str(fer_video), "--model", str(model_file), "--detector",
                 "yunet", "--yunet", str(YUNET), "--every", "5", "--json"]) == 0
    frames = [b for b in bars if b.unit == "frame"]
    assert [(b.total, b.count, b.closed) for b in frames] == [(3, 3, True)]   # 0, 5, 10 of 12


@pytest.fixture
def http_video(fer_video):
    """The video served over HTTP on loopback (as an IP camera or a web server would)."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(fer_video.parent))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{fer_video.name}"
    server.shutdown()


def test_a_photo_url_is_read_as_a_photo(http_video, fer_video, model_file, tmp_path, capsys):
    face = cv2.imread(str(PHOTOS / "aligned112.png")) if (PHOTOS / "aligned112.png").is_file() \
        else np.full((112, 112, 3), 128, np.uint8)
    cv2.imwrite(str(fer_video.parent / "face.png"), face)        # beside the served video
    url = http_video.rsplit("/", 1)[0] + "/face.png"
    options = ["--model", str(model_file), "--no-detect", "--json"]
    assert main(["predict", url, *options, "--save-annotated", str(tmp_path)]) == 0
    [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    local = Recognizer(model_file, detector="none").predict(fer_video.parent / "face.png")[0]
    assert record["file"] == url and record["frame"] is None and record["time"] is None
    assert "track_id" not in record or record["track_id"] is None
    assert record["label"] == local.faces[0].label            # PNG: the same pixels
    assert (tmp_path / "127.0.0.1_face.annotated.jpg").stat().st_size > 0
    assert main(["predict", url.replace("face.png", "missing.png"), *options]) == 1
    assert "missing.png: cannot open" in capsys.readouterr().err


def test_video_urls_and_camera_streams_are_read_like_files(fer_video, http_video, model_file,
                                                          tmp_path, capsys):
    rec = Recognizer(model_file, detector="yunet", detector_options={"weights": YUNET})
    local = [[f.label for f in r.faces] for r in rec.predict_video(fer_video)]
    streamed = list(rec.predict_video(http_video))
    assert [[f.label for f in r.faces] for r in streamed] == local
    assert streamed[0].source == http_video and streamed[3].time == 0.3   # 10 frames/s
    options = ["--model", str(model_file), "--detector", "yunet", "--yunet", str(YUNET),
               "--json"]
    assert main(["predict", http_video, *options, "--every", "4"]) == 0     # a URL as a path
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["frame"] for r in records} == {0, 4, 8} and len(records) == 6
    assert main(["predict", "--camera", http_video, *options, "--max-frames", "2",   # live
                 "--save-annotated", str(tmp_path)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["frame"] for r in records] == [0, 0, 1, 1]
    assert (tmp_path / "127.0.0.1_two_faces.annotated.mp4").stat().st_size > 0
    secret = http_video.replace("http://", "http://viewer:s3cret@").replace(".avi", "_no.avi")
    assert main(["predict", "--camera", secret, *options]) == 1
    err = capsys.readouterr().err
    assert "viewer:***@127.0.0.1" in err and "s3cret" not in err
    assert "cannot open the video" in err


def test_uploads_are_opened_as_local_files_only(fer_video, http_video, monkeypatch):
    """The web service opens uploads with ``local_only``: FFmpeg may not follow a file to the
    network (a playlist inside an upload would otherwise make the server fetch URLs)."""
    import os

    from openfer.errors import OpenferError
    from openfer.video import FFMPEG_OPTIONS, open_video

    monkeypatch.delenv(FFMPEG_OPTIONS, raising=False)
    capture, _, fps = open_video(fer_video, local_only=True)
    assert capture.read()[0] and fps == 10.0
    capture.release()
    with pytest.raises(OpenferError, match="cannot open"):
        open_video(http_video, local_only=True)
    assert FFMPEG_OPTIONS not in os.environ                  # restored
    open_video(http_video)[0].release()                       # the command line may


def test_camera_takes_a_number_or_a_stream_url(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--camera", "front"])
    assert "neither a camera number" in capsys.readouterr().err


# -- the command line ----------------------------------------------------------------------------
def test_predict_cli_json_records_and_summary(group6, model_file, tmp_path, capsys):
    (tmp_path / "bad.jpg").write_bytes(b"junk")
    code = main(["predict", str(group6), str(tmp_path / "bad.jpg"), "--model", str(model_file),
                 "--detector", "yunet", "--yunet", str(YUNET), "--json"])
    assert code == 0
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    faces = [r for r in records if r["face"] is not None]
    assert len(faces) == 6 and all(r["file"] == str(group6) for r in faces)
    expected = {"box", "scores", "label", "confidence", "detector_score", "landmarks"}
    assert expected <= faces[0].keys()
    errors = [r for r in records if r.get("error")]
    assert len(errors) == 1 and "bad.jpg" in errors[0]["error"]
    assert "1 unreadable" in captured.err
    assert main(["predict", str(tmp_path / "bad.jpg"), "--model", str(model_file)]) == 1
    assert main(["predict", str(group6), str(tmp_path / "bad.jpg"), "--model", str(model_file),
                 "--detector", "haar", "--strict"]) == 1


def test_predict_cli_csv_has_one_row_per_face(group6, model_file, capsys):
    assert main(["predict", str(group6), "--model", str(model_file), "--detector", "yunet",
                 "--yunet", str(YUNET), "--csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("file,frame,time,face,track_id,x1,y1,x2,y2")
    assert len(lines) == 7
