"""openfer serve: a real server on loopback, real photos, every kind of bad upload, the page in
a real headless browser."""

from __future__ import annotations

import concurrent.futures
import io
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
import uvicorn  # noqa: E402

import openfer  # noqa: E402
from conftest import png_declaring  # noqa: E402
from openfer.infer import Recognizer  # noqa: E402
from openfer.model_card import model_card  # noqa: E402
from openfer.serve import ServeConfig, create_app  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"
GROUP6 = SHARED / "data" / "photos" / "group6.jpg"
YUNET = SHARED / "weights" / "yunet.onnx"
ARTIFACTS = Path(os.environ.get("OPENFER_TEST_ARTIFACTS",
                                Path(__file__).resolve().parents[1] / "test-artifacts"))


class Server:
    """uvicorn in a thread, on a free loopback port."""

    def __init__(self, config: ServeConfig):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1",
                                                   port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started:
            assert time.time() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


def _config(**changes) -> ServeConfig:
    if not YUNET.is_file():
        pytest.skip(f"{YUNET} not found (../shared is not beside the repository)")
    return ServeConfig(detector="yunet", yunet=str(YUNET), **changes)


@pytest.fixture(scope="module")
def server():
    with Server(_config(max_upload_bytes=2_000_000, max_pixels=30_000_000, max_files=4)) as s:
        yield s


@pytest.fixture(scope="module")
def group6() -> bytes:
    if not GROUP6.is_file():
        pytest.skip(f"{GROUP6} not found (../shared is not beside the repository)")
    return GROUP6.read_bytes()


def _png(width: int, height: int) -> bytes:
    image = Image.fromarray(np.full((height, width, 3), 128, np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _bomb() -> bytes:
    return png_declaring(100_000, 100_000)          # 10 gigapixels in about 100 bytes


# -- the happy path ---------------------------------------------------------------------------

def test_health_readiness_models_and_docs(server):
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json()["ready"] is True
        model = client.get("/v1/models").json()["models"][0]
        assert model["architecture"] == "fernet_m" and len(model["classes"]) == 7
        assert model["input_size"] == [48, 48] and model["detector"] == "yunet"
        assert "/v1/predict" in client.get("/openapi.json").json()["paths"]
        assert client.get("/docs").status_code == 200
        card = client.get("/v1/models/card")
        assert card.headers["content-type"].startswith("text/markdown")
        assert card.text == model_card("default")


def test_an_onnx_server_serves_its_files_card(tmp_path):
    pytest.importorskip("onnxruntime")
    from openfer.export import export_onnx

    onnx = export_onnx(openfer.load_model("fernet_s.fer2013"), tmp_path / "s.onnx")
    with Server(_config(model=str(onnx), backend="onnx")) as s:
        response = httpx.get(f"{s.url}/v1/models/card", timeout=30)
    assert response.status_code == 200 and response.text == model_card(onnx)
    assert "(ONNX, fp32); SHA-256 of the file" in response.text


def test_a_model_without_a_readable_card_gets_a_json_404_naming_it(monkeypatch):
    import importlib

    from openfer.errors import OpenferError

    def unreadable(model):
        raise OpenferError("its metadata cannot be read")

    # (the module: openfer.model_card is also the function's name in the package)
    monkeypatch.setattr(importlib.import_module("openfer.model_card"), "model_card", unreadable)
    with Server(_config(model="fernet_s.fer2013")) as s:
        response = httpx.get(f"{s.url}/v1/models/card", timeout=30)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "no_card" and "fernet_s.fer2013 carries no model card" in \
        error["message"] and "its metadata cannot be read" in error["message"]


def test_a_multitask_model_answers_with_its_heads(tmp_path, group6):
    """Served Emotion-GCN / multi-task models give valence, arousal, age... in each record, as
    ``openfer predict --json`` does."""
    from openfer.checkpoint import save_weights

    model = openfer.create_model("multitask", backbone="fernet_s",
                                 heads=("age", "valence", "arousal"))
    model.meta = model.meta.replace(heads_trained=("age", "valence", "arousal"))
    path = save_weights(model, tmp_path / "multitask.safetensors")
    with Server(_config(model=str(path))) as s:
        response = httpx.post(f"{s.url}/v1/predict", timeout=60,
                              files={"file": ("group6.jpg", group6, "image/jpeg")})
        assert response.status_code == 200, response.text
        records = response.json()["records"]
        assert len(records) == 6
        for record in records:
            assert isinstance(record["valence"], float) and isinstance(record["arousal"], float)
            assert record["age"] in record["age_scores"] and len(record["age_scores"]) == 5
        if shutil.which("chromium") and shutil.which("chromedriver"):   # and the page shows them
            from selenium.webdriver.common.by import By
            from selenium.webdriver.support.ui import WebDriverWait

            driver = _browser()
            try:
                _open_page(driver, s.url, "multitask", GROUP6)
                WebDriverWait(driver, 60).until(
                    lambda d: len(d.find_elements(By.CSS_SELECTOR, "li.face .heads")) == 6)
                line = driver.find_element(By.CSS_SELECTOR, "li.face .heads").text
                assert line.startswith("valence ") and " · arousal " in line and " · age " in line
            finally:
                driver.quit()


def test_multipart_upload_finds_the_six_faces_in_predict_json_records(server, group6):
    response = httpx.post(f"{server.url}/v1/predict",
                          files={"file": ("group6.jpg", group6, "image/jpeg")}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["images"] == [{"file": "group6.jpg", "width": 1280, "height": 886, "faces": 6}]
    records = body["records"]
    assert [r["face"] for r in records] == list(range(6))
    for record in records:      # the record format of `openfer predict --json`
        assert {"file", "frame", "time", "face", "box", "detector_score", "landmarks", "label",
                "confidence", "scores"} <= set(record)
        assert record["label"] == max(record["scores"], key=record["scores"].get)
        assert sum(record["scores"].values()) == pytest.approx(1, abs=1e-3)
        x1, y1, x2, y2 = record["box"]
        assert 0 <= x1 < x2 <= 1280 and 0 <= y1 < y2 <= 886


def test_raw_bytes_and_several_files_give_the_same_faces(server, group6):
    raw = httpx.post(f"{server.url}/v1/predict", content=group6,
                     headers={"Content-Type": "image/jpeg"}, timeout=60).json()
    many = httpx.post(f"{server.url}/v1/predict", timeout=60, files=[
        ("file", ("a.jpg", group6, "image/jpeg")), ("file", ("b.png", _png(64, 48))),
    ]).json()
    assert [i["faces"] for i in many["images"]] == [6, 0]
    assert [r["label"] for r in raw["records"]] == [r["label"] for r in many["records"][:6]]
    assert many["records"][6] == {"file": "b.png", "frame": None, "time": None, "face": None,
                                  "label": None, "note": "no face detected"}


def test_detect_false_classifies_the_whole_image_as_one_face(server):
    face = Image.open(SHARED / "data" / "photos" / "aligned112.png") \
        if (SHARED / "data" / "photos" / "aligned112.png").is_file() else None
    if face is None:
        pytest.skip("aligned112.png not found")
    buffer = io.BytesIO()
    face.save(buffer, format="PNG")
    body = httpx.post(f"{server.url}/v1/predict?detect=false", timeout=30,
                      files={"file": ("face.png", buffer.getvalue())}).json()
    assert body["detector"] == "none" and len(body["records"]) == 1
    assert body["records"][0]["box"] == [0.0, 0.0, float(face.width), float(face.height)]


def _assert_answers_as_the_recognizer(body: dict, photo: bytes, model, **options) -> None:
    """The server's records for ``photo`` are the six faces ``Recognizer(model, **options)``
    finds and labels in it, with the same scores."""
    from openfer.infer import Recognizer

    image = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
    local = Recognizer(model, detector="yunet", detector_options={"weights": str(YUNET)},
                       **options).predict(image)[0]
    assert len(body["records"]) == len(local.faces) == 6
    for record, face in zip(body["records"], local.faces):
        assert record["label"] == face.label
        for name, score in face.probabilities.items():
            assert record["scores"][name] == pytest.approx(score, abs=2e-3)


def test_a_server_started_with_tta_answers_as_the_recognizer_with_it(group6):
    """``openfer serve --tta shifts``: every face's scores are the 18 views' average, as
    ``Recognizer(tta="shifts")`` gives them; ``/v1/models`` says so."""
    with Server(_config(tta="shifts")) as server:
        assert httpx.get(f"{server.url}/v1/models").json()["models"][0]["tta"] == "shifts"
        body = httpx.post(f"{server.url}/v1/predict", timeout=60,
                          files={"file": ("group6.jpg", group6, "image/jpeg")}).json()
    _assert_answers_as_the_recognizer(body, group6, "default", tta="shifts")


def test_a_server_given_several_models_answers_with_their_ensemble(group6):
    """``openfer serve --model A --model B``: each face's scores are the mean of the members'
    probabilities, as ``Recognizer([A, B])`` gives them; the card is the ensemble's."""
    members = ["default", "fernet_s.fer2013"]
    with Server(_config(model=members)) as server:
        model = httpx.get(f"{server.url}/v1/models").json()["models"][0]
        card = httpx.get(f"{server.url}/v1/models/card", timeout=60).text
        body = httpx.post(f"{server.url}/v1/predict", timeout=60,
                          files={"file": ("group6.jpg", group6, "image/jpeg")}).json()
    assert model["name"] == members and model["architecture"].startswith("ensemble(")
    assert body["model"] == members
    assert card == model_card(members) and card.startswith("# Model card: ensemble of 2 models")
    assert "## Model card: default" in card and "## Model card: fernet_s.fer2013" in card
    _assert_answers_as_the_recognizer(body, group6, members)


def test_openfer_serve_reads_a_repeated_model_as_an_ensemble(monkeypatch):
    import openfer.serve
    from openfer.cli import main

    served = []
    monkeypatch.setattr(openfer.serve, "run", lambda config, **_: served.append(config.model))
    assert main(["serve", "--model", "default", "--model", "fernet_s.fer2013"]) == 0
    assert main(["serve", "--model", "fernet_s.fer2013"]) == 0
    assert main(["serve"]) == 0
    assert served == [["default", "fernet_s.fer2013"], "fernet_s.fer2013", "default"]


def test_a_server_looks_for_faces_of_its_min_face_and_more(group6, monkeypatch):
    """``openfer serve --min-face PX``, as ``openfer predict``'s: group6's faces are ~100 px."""
    import openfer.serve
    from openfer.cli import main

    served = []
    monkeypatch.setattr(openfer.serve, "run", lambda config, **_: served.append(config.min_face))
    assert main(["serve", "--min-face", "64"]) == 0 and main(["serve"]) == 0
    assert served == [64, None]                             # None: the detectors' MIN_FACE
    for min_face, found in ((64, 6), (200, 0)):
        with Server(_config(min_face=min_face)) as server:
            body = httpx.post(f"{server.url}/v1/predict", timeout=60,
                              files={"file": ("group6.jpg", group6, "image/jpeg")}).json()
        assert body["images"][0]["faces"] == found, min_face


# -- bad input: each kind gets its own 4xx, and the server keeps serving ---------------------

def _bad_uploads(group6: bytes) -> list[tuple[str, dict, int, str]]:
    flipped = bytearray(_png(64, 64))
    flipped[40:60] = bytes(b ^ 0xFF for b in flipped[40:60])
    return [
        ("empty file", {"files": {"file": ("e.jpg", b"")}}, 400, "empty"),
        ("empty raw body", {"content": b""}, 400, "empty"),
        ("text named .jpg", {"files": {"file": ("notes.jpg", b"hello, not a photo\n" * 5)}},
         415, "not_an_image"),
        ("PDF", {"files": {"file": ("doc.png", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" * 20)}},
         415, "not_an_image"),
        ("truncated JPEG", {"files": {"file": ("t.jpg", group6[:4000])}}, 422, "corrupt"),
        ("bit-flipped PNG", {"files": {"file": ("f.png", bytes(flipped))}}, 422, "corrupt"),
        ("JPEG header only", {"files": {"file": ("h.jpg", b"\xff\xd8\xff\xe0" + b"\0" * 20)}},
         422, "corrupt"),
        ("decompression bomb (100000x100000 PNG)", {"files": {"file": ("b.png", _bomb())}},
         413, "too_many_pixels"),
        ("over the byte limit",
         {"files": {"file": ("big.jpg", b"\xff\xd8\xff" + b"\0" * 2_100_000)}}, 413, "too_large"),
        ("chunked body over the byte limit",
         {"content": iter([b"\xff\xd8\xff" + b"\0" * 500_000] * 5),
          "headers": {"Content-Type": "image/jpeg"}}, 413, "too_large"),
        ("multipart without a file part", {"files": {"note": (None, "no file")}}, 400,
         "no_file"),
        ("five files (limit 4)", {"files": [("file", (f"{i}.png", _png(8, 8))) for i in range(5)]},
         400, "bad_multipart"),
    ]


def test_every_bad_upload_gets_a_clear_json_4xx_and_the_server_survives(server, group6):
    seen = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for name, request, status, code in _bad_uploads(group6):
            response = client.post("/v1/predict", **request)
            error = response.json()["error"]
            seen.append((name, response.status_code, error["code"]))
            assert (response.status_code, error["code"]) == (status, code), (name, error)
            assert error["message"] and len(error["message"]) > 20
        assert client.post("/v1/predict", files={"file": ("ok.jpg", group6)}).status_code == 200
        assert client.get("/healthz").status_code == 200
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "serve_bad_uploads.txt").write_text(
        "".join(f"{status} {code:16s} {name}\n" for name, status, code in seen))


# -- videos -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def held_video(tmp_path_factory, fer2013_csv) -> Path:
    """Three real FER2013 PublicTest faces, each held 1 s at 15 fps in one place with
    camera-like jitter, then cut to the next (tests/helpers/held_faces.py): one person whose
    expression changes twice."""
    from helpers.held_faces import write_held_faces_video
    from openfer.data import load_dataset

    faces = load_dataset("fer2013", fer2013_csv, "PublicTest")
    rows = np.random.default_rng(3).choice(len(faces.labels), 3, replace=False)
    return write_held_faces_video(tmp_path_factory.mktemp("video") / "held.avi",
                                  faces.images[rows, 0].numpy(), 15, 15)


@pytest.fixture(scope="module")
def video_server():
    with Server(_config(max_video_bytes=3_000_000, max_video_frames=30)) as s:
        yield s


def test_a_video_upload_answers_as_predict_video_with_tracks_and_a_summary(video_server,
                                                                          held_video):
    """POST /v1/predict/video gives the records `Recognizer.predict_video` gives (the same
    labels, track ids and smoothed scores, frame by frame) and one summary per person."""
    from openfer.summary import summarize

    response = httpx.post(f"{video_server.url}/v1/predict/video?every=2&smooth=0.3",
                          files={"file": ("held.avi", held_video.read_bytes())}, timeout=120)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["video"] == {"file": "held.avi", "width": 320, "height": 240, "fps": 15.0,
                             "every": 2, "smooth_s": 0.3, "frames_analysed": 23,
                             "truncated": False}
    reference = list(Recognizer(detector="yunet", detector_options={"weights": str(YUNET)})
                     .predict_video(held_video, every=2, smooth=0.3))
    expected = [r for result in reference for r in result.records()]
    records = body["records"]
    assert [(r["frame"], r["time"], r.get("track_id"), r["label"]) for r in records] == \
        [(r["frame"], r["time"], r.get("track_id"), r["label"]) for r in expected]
    for got, want in zip(records, expected):
        if want.get("scores"):
            assert got["scores"] == pytest.approx(want["scores"], abs=2e-3)
            assert got["frame_scores"] == pytest.approx(want["frame_scores"], abs=2e-3)
    assert len({r["track_id"] for r in records if "box" in r}) == 1      # one person
    summaries = body["summaries"]
    assert len(summaries) == 1 and summaries[0]["frames"] == sum("box" in r for r in records)
    assert [s["label"] for s in summaries] == [s["label"] for s in summarize(reference)]
    stats = httpx.get(f"{video_server.url}/v1/stats").json()
    assert stats["videos"] >= 1 and stats["video_frames"] >= 23


def test_a_long_video_is_cut_at_the_frame_limit_and_says_so(video_server, held_video):
    body = httpx.post(f"{video_server.url}/v1/predict/video", content=held_video.read_bytes(),
                      headers={"Content-Type": "video/x-msvideo"}, timeout=120).json()
    assert body["video"]["frames_analysed"] == 30 and body["video"]["truncated"] is True
    assert max(r["frame"] for r in body["records"]) == 29


def test_every_bad_video_upload_gets_a_clear_json_4xx(video_server, held_video, group6):
    video = held_video.read_bytes()
    cases = [
        ("a photo", {"files": {"file": ("g.jpg", group6)}}, "", 415, "not_a_video",
         "/v1/predict"),
        ("text named .mp4", {"files": {"file": ("v.mp4", b"not a video\n" * 50)}}, "", 415,
         "not_a_video", "MP4/MOV"),
        ("empty", {"content": b""}, "", 400, "empty", "0 bytes"),
        ("AVI header, then garbage", {"content": video[:12] + bytes(4000)}, "", 422, "corrupt",
         "video"),
        ("over the video byte limit", {"content": video[:12] + bytes(3_100_000)}, "", 413,
         "too_large", "3,000,000"),
        ("two files", {"files": [("file", ("a.avi", video)), ("file", ("b.avi", video))]}, "",
         400, "bad_multipart", "at most 1"),
        ("every=0", {"content": video}, "?every=0", 400, "invalid_request", "every"),
        ("negative smooth", {"content": video}, "?smooth=-1", 400, "invalid_request", "smooth"),
    ]
    with httpx.Client(base_url=video_server.url, timeout=60) as client:
        for name, request, query, status, code, words in cases:
            response = client.post(f"/v1/predict/video{query}", **request)
            error = response.json()["error"]
            assert (response.status_code, error["code"]) == (status, code), (name, error)
            assert words in error["message"], (name, error)
        assert client.post("/v1/predict", files={"file": ("ok.jpg", group6)}).status_code == 200


def test_api_key_guards_the_v1_routes_but_not_health_or_the_page(group6):
    with Server(_config(api_key="s3cret")) as s, httpx.Client(base_url=s.url, timeout=30) as c:
        assert c.get("/v1/models").status_code == 401
        assert c.get("/v1/models", headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.get("/v1/models", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.post("/v1/predict", files={"file": ("g.jpg", group6)},
                      headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/healthz").status_code == 200 and c.get("/").status_code == 200
        assert "access-control-allow-origin" not in c.get(
            "/v1/models", headers={"Origin": "http://elsewhere", "X-API-Key": "s3cret"}).headers


def test_a_full_queue_answers_503_with_retry_after(group6):
    with Server(_config(max_queue=0)) as s:
        response = httpx.post(f"{s.url}/v1/predict", files={"file": ("g.jpg", group6)})
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert response.json()["error"]["code"] == "busy"
        assert httpx.get(f"{s.url}/readyz").status_code == 503


def test_concurrent_requests_are_classified_in_shared_batches(server):
    faces = [_png(48, 48) for _ in range(4)]
    before = httpx.get(f"{server.url}/v1/stats").json()["batching"]

    def call(i):
        return httpx.post(f"{server.url}/v1/predict?detect=false", timeout=120,
                          files={"file": (f"{i}.png", faces[i % 4])}).json()["images"][0]["faces"]

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        assert list(pool.map(call, range(96))) == [1] * 96
    after = httpx.get(f"{server.url}/v1/stats").json()["batching"]
    batches, classified = after["batches"] - before["batches"], after["faces"] - before["faces"]
    assert classified == 96 and batches < 96, (batches, classified)


# -- the web page in a real browser -----------------------------------------------------------

def _chromium() -> tuple[str, str]:
    webdriver = pytest.importorskip("selenium.webdriver")  # noqa: F841
    browser = shutil.which("chromium") or shutil.which("chromium-browser") \
        or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        pytest.skip("no chromium + chromedriver on this machine (Debian: apt-get install "
                    "chromium chromium-driver; .ci/run installs them)")
    return browser, driver


def _browser(*flags: str):
    """Headless Chromium driven by selenium, with extra command-line ``flags``."""
    browser, driver_path = _chromium()
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1400,1000", *flags):
        options.add_argument(flag)
    return webdriver.Chrome(options=options,
                            service=webdriver.ChromeService(executable_path=driver_path))


def _open_page(driver, url: str, architecture: str, photo=None) -> None:
    """Load the page, wait until it names the served model, and drop ``photo`` on it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url + "/")
    WebDriverWait(driver, 30).until(
        lambda d: architecture in d.find_element(By.ID, "status").text)
    if photo is not None:
        driver.find_element(By.ID, "file").send_keys(str(photo))


def test_the_page_shows_boxes_labels_and_bars_for_every_face(server, group6):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _browser()
    try:
        _open_page(driver, server.url, "fernet_m", GROUP6)
        WebDriverWait(driver, 60).until(
            lambda d: d.find_element(By.ID, "canvas").get_attribute("data-boxes") != "0")
        canvas = driver.find_element(By.ID, "canvas")
        faces = driver.find_elements(By.CSS_SELECTOR, "li.face")
        assert canvas.get_attribute("data-boxes") == "6" and len(faces) == 6
        assert (canvas.get_attribute("width"), canvas.get_attribute("height")) == ("1280", "886")
        labels = {"anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"}
        for face in faces:
            assert face.find_element(By.CSS_SELECTOR, ".top").text.split(": ")[1].split(" (")[0] \
                in labels
            assert len(face.find_elements(By.CSS_SELECTOR, ".bar")) == 7
        # the boxes are drawn: pixels on the canvas carry the first box colour (#1f6feb)
        drawn = driver.execute_script(
            "const c = document.getElementById('canvas').getContext('2d');"
            "const d = c.getImageData(0, 0, 1280, 886).data; let n = 0;"
            "for (let i = 0; i < d.length; i += 4)"
            "  if (d[i] === 31 && d[i+1] === 111 && d[i+2] === 235) n++;"
            "return n;")
        assert drawn > 200
        assert "group6.jpg: 6 faces" in driver.find_element(By.ID, "status").text
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(ARTIFACTS / "serve_page_group6.png"))
        driver.find_element(By.CSS_SELECTOR, "#card summary").click()
        assert "Limitations and ethical considerations" in driver.find_element(
            By.ID, "card-text").text
    finally:
        driver.quit()


def test_the_page_analyses_a_dropped_video_and_plays_it_with_its_boxes(video_server, tmp_path,
                                                                       fer2013_csv):
    """A WebM (VP9, which Chromium plays) of three real FER2013 faces held in one place: the page
    uploads it to /v1/predict/video, lists the one person with the share of each label, and
    plays the video with the face's box drawn from the analysed frames."""
    import cv2
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from helpers.held_faces import held_face_frames
    from openfer.data import load_dataset

    faces = load_dataset("fer2013", fer2013_csv, "PublicTest")
    rows = np.random.default_rng(3).choice(len(faces.labels), 3, replace=False)
    path = tmp_path / "held.webm"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP90"), 15, (320, 240))
    if not writer.isOpened():
        pytest.skip("this OpenCV cannot write VP9 WebM")
    for frame in held_face_frames(faces.images[rows, 0].numpy(), 15, seed=3):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    driver = _browser("--autoplay-policy=no-user-gesture-required")
    try:
        _open_page(driver, video_server.url, "fernet_m", path)
        WebDriverWait(driver, 120).until(
            lambda d: d.find_element(By.ID, "canvas").get_attribute("data-people") is not None
            or "error" in d.find_element(By.ID, "status").get_attribute("class"))
        canvas = driver.find_element(By.ID, "canvas")
        status = driver.find_element(By.ID, "status").text
        assert canvas.get_attribute("data-people") == "1", status
        assert "held.webm: 1 person(s), 15 frames analysed (3.0 s)" in status, status
        top = driver.find_element(By.CSS_SELECTOR, "li.face .top").text
        assert top.startswith("Person 1: ") and "of 15 frames (0" in top, top
        shares = driver.find_elements(By.CSS_SELECTOR, "li.face .bar")
        assert len(shares) == 7
        WebDriverWait(driver, 60).until(                 # played, with the box drawn
            lambda d: int(canvas.get_attribute("data-video-frames") or 0) >= 5
            and canvas.get_attribute("data-boxes") == "1")
        assert (canvas.get_attribute("width"), canvas.get_attribute("height")) == ("320", "240")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(ARTIFACTS / "serve_page_video.png"))
    finally:
        driver.quit()


def test_the_pages_camera_follows_a_real_face_with_one_id_and_steady_labels(server, tmp_path,
                                                                          fer2013_csv):
    """Chromium's fake camera plays a real FER2013 face held still with camera-like jitter
    (tests/helpers/held_faces.py); the page sends frames, draws the face, keeps its number, and
    averages its scores in time as ``openfer predict --smooth 0.3`` does."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from helpers.held_faces import write_held_faces_y4m
    from openfer.data import load_dataset

    face = load_dataset("fer2013", fer2013_csv, "PublicTest").images[[0], 0].numpy()
    camera = write_held_faces_y4m(tmp_path / "camera.y4m", face, fps=15, hold=30)
    driver = _browser("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                      f"--use-file-for-fake-video-capture={camera}")
    try:
        _open_page(driver, server.url, "fernet_m")
        # the average itself: 63 % of a change after one time constant, at any frame rate
        for fps in (10, 20, 50):
            reached = driver.execute_script("""
                tracks = []; nextTrack = 0;
                const face = (s) => ({box: [0, 0, 50, 50], scores: {a: 1 - s, b: s},
                                      label: s ? "b" : "a"});
                follow([face(0)], 0, true);
                let out;
                for (let k = 1; k <= Math.round(0.3 * arguments[0]); k++)
                    out = follow([face(1)], k / arguments[0], true)[0];
                return [out.scores.b, out.label, out.frame_label, out.track_id];""", fps)
            assert reached[0] == pytest.approx(1 - np.exp(-1), abs=1e-6)
            assert reached[1:] == ["b", "b", 0]
        heads = driver.execute_script("""
            tracks = []; nextTrack = 0;
            const face = (s) => ({box: [0, 0, 50, 50], scores: {a: 1 - s, b: s}, label: "a",
                                  valence: s, age: s ? "0-3" : "70+",
                                  age_scores: {"0-3": s, "70+": 1 - s}});
            follow([face(0)], 0, true);
            const out = follow([face(1)], 0.3, true)[0];
            return [out.valence, out.age_scores["0-3"], out.age];""")
        assert heads[0] == pytest.approx(1 - np.exp(-1), abs=1e-6)       # heads averaged too
        assert heads[1] == pytest.approx(1 - np.exp(-1), abs=1e-6) and heads[2] == "0-3"
        moved = driver.execute_script("""
            tracks = []; nextTrack = 0;
            const face = (x) => ({box: [x, 0, x + 50, 50], scores: {a: 1, b: 0}});
            follow([face(0), face(200)], 0, true);
            return follow([face(210), face(5), face(400)], 0.1, true).map((f) => f.track_id);""")
        assert moved == [1, 0, 2]            # ids follow the faces, a new face gets a new id

        driver.find_element(By.ID, "camera").click()
        WebDriverWait(driver, 120).until(
            lambda d: int(d.find_element(By.ID, "canvas").get_attribute("data-frames") or 0) >= 8)
        canvas = driver.find_element(By.ID, "canvas")
        assert canvas.get_attribute("data-boxes") == "1"
        assert (canvas.get_attribute("width"), canvas.get_attribute("height")) == ("640", "480")
        top = driver.find_element(By.CSS_SELECTOR, "li.face .top").text
        assert top.startswith("Face 1: "), top        # the same face kept its number throughout
        assert driver.execute_script("return tracks.length") == 1
        assert len(driver.find_elements(By.CSS_SELECTOR, "li.face .bar")) == 7
        assert "Camera: 1 face(s)" in driver.find_element(By.ID, "status").text
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(ARTIFACTS / "serve_page_camera.png"))
        driver.find_element(By.ID, "camera").click()
        assert driver.find_element(By.ID, "camera").text == "Use the camera"
    finally:
        driver.quit()
