"""The openfer web service: ``openfer serve`` (FastAPI + uvicorn, the ``[serve]`` extra).

Routes::

    GET  /             the web page: drop a photo or turn on the camera
    POST /v1/predict   multipart upload (one or several files, any field name) or raw image
                       bytes; ``?detect=false`` treats each image as one pre-cropped face
    POST /v1/predict/video  one video (multipart or raw bytes); ``?every=N`` analyses every
                       N-th frame, ``?smooth=SECONDS`` averages scores along each face's track;
                       per-frame records with track ids, and one summary per person
    GET  /v1/models    the model's metadata (classes, input, metrics, training data, license)
    GET  /v1/models/card  its model card (Markdown; :mod:`openfer.model_card`)
    GET  /v1/stats     requests, batches, mean batch size
    GET  /healthz      the process is alive
    GET  /readyz       the model is loaded and the queue has room (503 otherwise)
    GET  /docs         OpenAPI documentation (/openapi.json)

``ServeConfig.model`` (``--model``, repeatable) may name several models: the server runs their
ensemble (the mean of their probabilities) and its card is the ensemble's, members' cards within.

A response has the same records as ``openfer predict --json`` (one per face, or one saying
there is no face) plus one summary per image. Faces of concurrent requests are classified in
one batch (:mod:`openfer.serve.batcher`). Limits (bytes, pixels, files, queued requests) turn
into ``4xx``/``503`` JSON errors (:mod:`openfer.serve.uploads`); the server never fetches a URL a
client gives it and binds to loopback unless told otherwise.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import queue
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

import numpy as np
from fastapi import Request

from ..faces.detect import detector_options
from ..infer import ImageResult, Recognizer
from .batcher import MicroBatcher
from .uploads import UploadError, check_video_upload, decode_upload

API_KEY_ENV = "OPENFER_API_KEY"
VIDEO_ROUTE = "/v1/predict/video"


@dataclass
class ServeConfig:
    """Everything ``openfer serve`` can be told; defaults are safe for a public machine."""

    model: str | list[str] = "default"            # several: their ensemble
    detector: str = "auto"
    yunet: str | None = None
    mtcnn: str | None = None
    min_face: int | None = None                   # smallest face side (default: MIN_FACE)
    backend: str = "torch"
    precision: str = "auto"
    tta: str | None = None                        # test-time augmentation: flip or shifts
    device: str = "cpu"
    max_upload_bytes: int = 10 * 1024 * 1024      # one request body
    max_video_bytes: int = 100 * 1024 * 1024      # one video upload (/v1/predict/video)
    max_video_frames: int = 9000                  # frames analysed of one video
    video_jobs: int = 1                           # videos analysed at once (others wait)
    max_pixels: int = 40_000_000                  # declared width x height of one image
    max_side: int = 4096                          # larger images are decoded downscaled
    max_files: int = 16                           # images in one request
    max_queue: int = 256                          # requests in progress before 503
    max_batch: int = 64                           # faces classified together
    batch_window_ms: float = 0.0                  # extra wait of a batch for company
    detect_threads: int = 2                       # face detectors working in parallel
    api_key: str | None = None                    # required on /v1 routes when set
    cors_origins: list[str] = field(default_factory=list)

    @classmethod
    def from_env(cls) -> "ServeConfig":
        """The configuration ``openfer serve --workers N`` hands to each worker process."""
        import json

        data = json.loads(os.environ.get("OPENFER_SERVE_CONFIG", "{}"))
        config = cls(**data)
        config.api_key = config.api_key or os.environ.get(API_KEY_ENV) or None
        return config


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes (a route's own in ``paths``) is
    refused with 413, whether its ``Content-Length`` says so up front or a chunked body grows
    past it while being read."""

    def __init__(self, app, limit: int, paths: dict[str, int] | None = None):
        self.app, self.limit, self.paths = app, limit, paths or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.paths.get(scope.get("path", ""), self.limit)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _send_json(send, UploadError(
                413, "too_large", f"the request body is {int(declared):,} bytes, more than the "
                f"limit of {limit:,}; send a smaller file or fewer files").body(), 413)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge()
            return message

        return await self.app(scope, limited, send)


async def _send_json(send, body: dict, status: int, headers: dict | None = None) -> None:
    import json

    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


class DetectorPool:
    """``size`` face detectors, each used by one thread at a time (OpenCV's are not
    thread-safe)."""

    def __init__(self, first, size: int, make):
        self._free: queue.Queue = queue.Queue()
        self._free.put(first)
        for _ in range(max(1, size) - 1):
            self._free.put(make())

    def detect(self, image: np.ndarray):
        detector = self._free.get()
        try:
            return detector.detect(image)
        finally:
            self._free.put(detector)


def create_app(config: ServeConfig | None = None):
    """The FastAPI application for ``config`` (the model loads at start-up)."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from ..faces.detect import create_detector

    config = config or ServeConfig()
    state: dict[str, Any] = {"in_flight": 0, "requests": 0, "faces": 0, "rejected": 0,
                             "videos": 0, "video_frames": 0, "started": time.time()}

    @asynccontextmanager
    async def lifespan(app):
        options = detector_options(config.detector, config.yunet, config.mtcnn,
                                   config.min_face)
        recognizer = Recognizer(config.model, detector=config.detector, device=config.device,
                                backend=config.backend, precision=config.precision,
                                tta=config.tta, detector_options=options)
        state["recognizer"] = recognizer
        state["detectors"] = DetectorPool(
            recognizer.detector, config.detect_threads,
            lambda: create_detector(config.detector, **options))
        state["plain"] = create_detector("none")
        batcher = MicroBatcher(recognizer.score, max_batch=config.max_batch,
                               window_ms=config.batch_window_ms)
        await batcher.start()
        state["batcher"] = batcher
        state["video_slots"] = asyncio.Semaphore(max(1, config.video_jobs))
        yield
        await batcher.stop()

    app = FastAPI(title="openfer", version=_version(), lifespan=lifespan,
                  summary="Facial expression recognition: photos in, faces and expressions out")
    route_limits = {VIDEO_ROUTE: config.max_video_bytes}
    app.add_middleware(BodyLimit, limit=config.max_upload_bytes, paths=route_limits)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware
        app.add_middleware(CORSMiddleware, allow_origins=config.cors_origins,
                           allow_methods=["GET", "POST"], allow_headers=["*"])

    def error(status: int, code: str, message: str, headers=None) -> JSONResponse:
        return JSONResponse(UploadError(status, code, message).body(), status, headers=headers)

    @app.exception_handler(UploadError)
    async def _upload_error(request, exc: UploadError):
        state["rejected"] += 1
        return JSONResponse(exc.body(), exc.status)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request, exc):
        state["rejected"] += 1
        return error(413, "too_large", f"the request body grew past the limit of "
                     f"{route_limits.get(request.url.path, config.max_upload_bytes):,} bytes; "
                     "send a smaller file or fewer files")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc):
        return error(exc.status_code, "http", str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc):
        return error(400, "invalid_request", str(exc.errors()))

    @app.middleware("http")
    async def guard(request: Request, call_next):
        path = request.url.path
        if path.startswith("/v1/"):
            if config.api_key and not _key_matches(request, config.api_key):
                return error(401, "unauthorized", "missing or wrong API key: send it in the "
                             "X-API-Key header (or Authorization: Bearer KEY)",
                             {"WWW-Authenticate": "Bearer"})
            if request.method == "POST":
                if state["in_flight"] >= config.max_queue:
                    state["rejected"] += 1
                    return error(503, "busy", f"{state['in_flight']} requests are in progress, "
                                 "the most this server queues; retry shortly",
                                 {"Retry-After": "1"})
                state["in_flight"] += 1
                try:
                    return await call_next(request)
                finally:
                    state["in_flight"] -= 1
        return await call_next(request)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(_page())

    @app.get("/healthz", summary="The process is alive")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", summary="The model is loaded and the queue has room")
    async def readyz():
        ready = "batcher" in state and state["in_flight"] < config.max_queue
        body = {"ready": ready, "in_flight": state["in_flight"], "max_queue": config.max_queue}
        return JSONResponse(body, 200 if ready else 503)

    @app.get("/v1/models", summary="Metadata of the model this server runs")
    async def models():
        recognizer: Recognizer = state["recognizer"]
        return {"models": [{"name": config.model, "backend": recognizer.backend,
                            "precision": recognizer.precision, "tta": recognizer.tta,
                            "detector": recognizer.detector.name,
                            **recognizer.meta.to_dict()}]}

    @app.get("/v1/models/card", summary="The model card (Markdown): training, evaluation, "
             "intended use, limitations", response_class=PlainTextResponse)
    async def card():
        if "card" not in state:
            from ..errors import OpenferError
            from ..model_card import model_card

            try:
                state["card"] = await asyncio.to_thread(model_card, config.model)
            except OpenferError as exc:
                return error(404, "no_card", f"{_named(config.model)} carries no model card "
                             f"({exc}); cards are read from openfer's .safetensors weights")
        return PlainTextResponse(state["card"], media_type="text/markdown; charset=utf-8")

    @app.get("/v1/stats", summary="Requests served and how they were batched")
    async def stats():
        return {"requests": state["requests"], "faces": state["faces"],
                "videos": state["videos"], "video_frames": state["video_frames"],
                "rejected": state["rejected"], "in_flight": state["in_flight"],
                "uptime_s": round(time.time() - state["started"], 1),
                "batching": state["batcher"].stats(),
                "limits": {k: v for k, v in asdict(config).items()
                           if k.startswith("max_") or k in ("batch_window_ms", "video_jobs")}}

    @app.post("/v1/predict", summary="Faces and expressions in uploaded images", openapi_extra={
        "requestBody": {"content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "file": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}}}}})
    async def predict(request: Request, detect: bool = True):
        uploads = await _read_uploads(request, config)
        recognizer: Recognizer = state["recognizer"]
        detector = state["detectors"] if detect else state["plain"]
        prepared = await asyncio.gather(*(
            asyncio.to_thread(_prepare, recognizer, detector, name, data, config)
            for name, data in uploads))
        crops = [crop for _, faces in prepared for _, crop in faces]
        probs = await state["batcher"].classify(np.stack(crops)) if crops else []
        records, images, index = [], [], 0
        for result, faces in prepared:
            for detection, _ in faces:
                result.faces.append(recognizer.face_result(detection, probs[index]))
                index += 1
            records.extend(result.records())
            images.append({"file": result.source, "width": result.width,
                           "height": result.height, "faces": len(result.faces)})
        state["requests"] += 1
        state["faces"] += index
        return {"model": config.model, "detector": detector_name(recognizer, detect),
                "images": images, "records": records}

    @app.post(VIDEO_ROUTE, summary="Faces and expressions along an uploaded video, with one "
              "summary per person", openapi_extra={"requestBody": {"content": {
                  "multipart/form-data": {"schema": {"type": "object", "properties": {
                      "file": {"type": "string", "format": "binary"}}}},
                  "video/mp4": {"schema": {"type": "string", "format": "binary"}}}}})
    async def predict_video(request: Request, every: int = 1, smooth: float = 0.0,
                            detect: bool = True):
        if every < 1 or not 0 <= smooth < 3600:
            raise UploadError(400, "invalid_request", f"every={every}, smooth={smooth}: every "
                              "is the step between analysed frames (1 or more), smooth a time "
                              "constant in seconds (0: off)")
        [(name, data)] = await _read_uploads(request, config, max_files=1)
        suffix = check_video_upload(data, name, max_bytes=config.max_video_bytes)
        async with state["video_slots"]:
            answer = await _analyse_video(state, config, name, data, suffix, every, smooth,
                                          state["detectors"] if detect else state["plain"])
        state["requests"] += 1
        state["videos"] += 1
        state["video_frames"] += answer["video"]["frames_analysed"]
        state["faces"] += sum("box" in r for r in answer["records"])
        answer["detector"] = detector_name(state["recognizer"], detect)
        return answer

    return app


async def _analyse_video(state: dict, config: ServeConfig, name: str, data: bytes, suffix: str,
                         every: int, smooth: float, detector) -> dict:
    """Every ``every``-th frame of an uploaded video: faces found (worker threads) and scored
    with the other requests' faces (the micro-batcher), tracked and, on request, smoothed, as
    ``openfer predict VIDEO --json --summary`` gives them."""
    import tempfile
    from pathlib import Path

    from ..errors import OpenferError
    from ..summary import Summary
    from ..video import VideoTracks, open_video, read_frames

    recognizer: Recognizer = state["recognizer"]
    with tempfile.TemporaryDirectory(prefix="openfer-video-") as folder:
        path = Path(folder) / f"upload{suffix}"
        await asyncio.to_thread(path.write_bytes, data)
        try:
            capture, _, fps = await asyncio.to_thread(open_video, path, True)   # local only
        except OpenferError:
            raise UploadError(422, "corrupt", f"the {suffix[1:].upper()} data cannot be opened "
                              "as a video (truncated, corrupt, or a codec OpenCV lacks)",
                              name) from None
        try:
            import cv2

            width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
            height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
            if width * height > config.max_pixels:
                raise UploadError(413, "too_many_pixels", f"the video's frames are {width}x"
                                  f"{height} pixels, more than the limit of "
                                  f"{config.max_pixels:,}; downscale it", name)
            tracks = VideoTracks(name, fps, smooth=smooth, every=every)
            frames = read_frames(capture, every, config.max_video_frames + 1)
            records, summary, analysed, truncated = [], Summary(), 0, False
            while (frame := await asyncio.to_thread(_next_frame, frames, recognizer, detector,
                                                    name, config)) is not None:
                if analysed == config.max_video_frames:       # one frame more than the limit
                    truncated = True
                    break
                index, result, faces = frame
                if faces:
                    probs = await state["batcher"].classify(np.stack([c for _, c in faces]))
                    result.faces = [recognizer.face_result(d, p) for (d, _), p in
                                    zip(faces, probs)]
                tracks.place(result, index)
                summary.add(result)
                records.extend(result.records())
                analysed += 1
            if analysed == 0:
                raise UploadError(422, "corrupt", "no frame of the video could be decoded "
                                  "(empty, truncated or corrupt)", name)
        finally:
            capture.release()
    return {"model": config.model,
            "video": {"file": name, "width": width, "height": height, "fps": round(fps, 3),
                      "every": every, "smooth_s": smooth, "frames_analysed": analysed,
                      "truncated": truncated},
            "records": records, "summaries": summary.rows()}


def _next_frame(frames, recognizer: Recognizer, detector, name: str, config: ServeConfig):
    """The next analysed frame's ``(index, result, [(detection, crop)])`` (worker thread): read,
    bounded to ``max_side``, faces detected and cropped; ``None`` at the end."""
    from ..data.images import fit_long_side

    item = next(frames, None)
    if item is None:
        return None
    index, rgb = item
    height, width = rgb.shape[:2]
    image, factor = fit_long_side(rgb, max(width, height), config.max_side)
    result = ImageResult(name, width=width, height=height,
                         detector=getattr(detector, "name", None))
    return index, result, [(d.scaled(factor), recognizer.crop(image, d))
                           for d in detector.detect(image)]


def _named(model: str | list[str]) -> str:
    return model if isinstance(model, str) else " + ".join(model)


def detector_name(recognizer: Recognizer, detect: bool) -> str:
    return recognizer.detector.name if detect else "none"


def _prepare(recognizer: Recognizer, detector, name: str, data: bytes, config: ServeConfig):
    """Decode, detect and align one upload (runs in a worker thread)."""
    image, factor = decode_upload(data, name, max_bytes=config.max_upload_bytes,
                                  max_pixels=config.max_pixels, max_side=config.max_side)
    height, width = image.shape[:2]
    result = ImageResult(name, width=round(width * factor), height=round(height * factor),
                         detector=getattr(detector, "name", None))
    faces = [(d.scaled(factor), recognizer.crop(image, d)) for d in detector.detect(image)]
    return result, faces


async def _read_uploads(request, config: ServeConfig, max_files: int | None = None
                        ) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` for every file of a multipart request, or the raw body."""
    content_type = request.headers.get("content-type", "")
    max_files = max_files or config.max_files
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=max_files, max_fields=64)
        except BodyTooLarge:
            raise
        except Exception as exc:          # malformed multipart, too many parts
            raise UploadError(400, "bad_multipart", f"the multipart body cannot be read ({exc}); "
                              f"send at most {max_files} files") from None
        files = [value for _, value in form.multi_items() if hasattr(value, "read")]
        if not files:
            raise UploadError(400, "no_file", "the multipart body has no file part; send the "
                              "image as a file field (e.g. curl -F file=@photo.jpg)")
        out = []
        for i, upload in enumerate(files):
            data = await upload.read()
            out.append((upload.filename or f"file{i}", data))
        await form.close()
        return out
    data = await request.body()
    return [("body", data)]


def _key_matches(request, key: str) -> bool:
    given = request.headers.get("x-api-key")
    if given is None:
        auth = request.headers.get("authorization", "")
        given = auth[7:] if auth.lower().startswith("bearer ") else ""
    return hmac.compare_digest(given.encode(), key.encode())


def _page() -> str:
    return resources.files("openfer.serve").joinpath("static/index.html").read_text("utf-8")


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("openfer")
    except Exception:
        return "0"


def create_app_from_env():
    """Factory for uvicorn worker processes (``openfer serve --workers N``)."""
    return create_app(ServeConfig.from_env())
