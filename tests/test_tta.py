"""Test-time augmentation (openfer.tta): ``flip`` averages a face with its mirror, ``shifts``
also with the face moved by 2 % and 4 % of its side (1 and 2 pixels at 48 px) in the four
directions, borders repeated: 18 views. The Recognizer, ``evaluate`` and both CLI commands take
either mode; on the whole of PublicTest (benchmarks/results/default_publictest_eval_tta_shifts.json)
the default measured 69.94 % plain, 70.21 % with flip and 70.66 % with shifts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import openfer
from openfer.data import load_dataset
from openfer.infer import Recognizer
from openfer.tta import shifted, tta_mode, views


def test_the_modes_and_what_each_argument_means():
    assert [tta_mode(v) for v in (None, False, "none", True, "flip", "shifts")] == \
        [None, None, None, "flip", "flip", "shifts"]
    with pytest.raises(openfer.OpenferError, match="tta must be one of none, flip, shifts"):
        tta_mode("crops")


def test_a_shift_moves_the_face_and_repeats_its_border():
    x = torch.arange(16, dtype=torch.uint8).reshape(1, 1, 4, 4)
    right = shifted(x, 1, 0)                       # moved one column to the right
    assert right.dtype == torch.uint8
    assert right[0, 0].tolist() == [[0, 0, 1, 2], [4, 4, 5, 6], [8, 8, 9, 10], [12, 12, 13, 14]]
    up = shifted(x, 0, -2)                         # moved two rows up
    assert up[0, 0].tolist() == [[8, 9, 10, 11], [12, 13, 14, 15], [12, 13, 14, 15],
                                 [12, 13, 14, 15]]


def test_each_mode_has_its_views_the_face_itself_first():
    x = torch.rand(2, 1, 48, 48)
    for mode, count in ((None, 1), ("flip", 2), ("shifts", 18)):
        seen = list(views(x, mode))
        assert len(seen) == count and torch.equal(seen[0], x)
        assert all(v.shape == x.shape for v in seen)
    seen = list(views(x, "shifts"))
    assert len({v.numpy().tobytes() for v in seen}) == 18            # all different
    assert torch.equal(seen[1], x.flip(-1))
    # 2 % and 4 % of the side: 4 and 9 pixels at 224 px
    big = torch.zeros(1, 1, 224, 224)
    big[..., 100, 100] = 1
    moved = {tuple(torch.nonzero(v[0, 0])[0].tolist()) for v in list(views(big, "shifts"))[2::2]}
    assert moved == {(100, 104), (100, 96), (104, 100), (96, 100),
                     (100, 109), (100, 91), (109, 100), (91, 100)}


def _edge_shift(faces: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``faces`` (N, H, W, C) moved by (dx, dy), borders repeated: numpy's own padding."""
    p = 2
    padded = np.pad(faces, ((0, 0), (p, p), (p, p), (0, 0)), mode="edge")
    h, w = faces.shape[1:3]
    return padded[:, p - dy:p - dy + h, p - dx:p - dx + w]


def test_the_recognizer_averages_its_probabilities_over_the_18_views(fer2013_csv):
    faces = load_dataset("fer2013", fer2013_csv, "PublicTest").images[:40]
    faces = faces.permute(0, 2, 3, 1).numpy()
    plain = Recognizer("default", detector="none", precision="fp32")
    expected = []
    for dx, dy in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1), (2, 0), (-2, 0), (0, 2), (0, -2)):
        view = _edge_shift(faces, dx, dy)
        expected += [plain.classify(view), plain.classify(view[:, :, ::-1].copy())]
    got = Recognizer("default", detector="none", precision="fp32", tta="shifts").classify(faces)
    np.testing.assert_allclose(got, np.mean(expected, axis=0), atol=1e-5)
    flip = Recognizer("default", detector="none", precision="fp32", tta=True).classify(faces)
    np.testing.assert_allclose(flip, np.mean(expected[:2], axis=0), atol=1e-5)


def test_the_command_lines_choices_are_the_libraries_own():
    """The CLI spells its choices out (parsing imports no torch); they are these."""
    from openfer import cli, tta
    from openfer.models.fusion import PRECISIONS

    assert cli.PRECISION_CHOICES == ("auto", *PRECISIONS)
    assert cli.TTA_MODES == tta.MODES


def test_eval_and_predict_take_the_mode_on_the_command_line(fer2013_csv, capsys, tmp_path):
    from openfer.cli import build_parser, main

    parser = build_parser()
    assert parser.parse_args(["predict", "x.jpg", "--tta"]).tta == "flip"
    assert parser.parse_args(["predict", "x.jpg", "--tta", "shifts"]).tta == "shifts"
    assert parser.parse_args(["predict", "x.jpg"]).tta is None
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "--tta", "crops"])
    folder = tmp_path / "faces"
    images = load_dataset("fer2013", fer2013_csv, "PublicTest").images[:12]
    from PIL import Image
    for i, label in enumerate(("happy", "sad")):
        (folder / label).mkdir(parents=True)
        for j in range(6):
            Image.fromarray(images[i * 6 + j, 0].numpy()).save(folder / label / f"{j}.png")
    assert main(["eval", "--model", "default", "--dataset", "folder", "--root", str(folder),
                 "--tta", "shifts", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tta"] == "shifts" and report["tta_flip"] is True and report["n"] == 12
