"""Shared fixtures: the real data in ../shared, and small files in the owners' exact formats."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from torch import nn

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
FER2013_CSV = SHARED / "data" / "fer2013" / "fer2013.csv.gz"


@pytest.fixture(scope="session")
def fer2013_csv() -> Path:
    if not FER2013_CSV.is_file():
        pytest.skip(f"real FER2013 not found at {FER2013_CSV} (../shared is not beside the repo)")
    return FER2013_CSV


@pytest.fixture(scope="session")
def fer2013_subset(fer2013_csv, tmp_path_factory) -> Path:
    """Real FER2013 faces, small: the first 1,200 Training and 300 PublicTest rows of the
    official file, in its format (for tests that train several times and must not parse the
    whole 85 MB archive each time)."""
    wanted = {"Training": 1200, "PublicTest": 300}
    path = tmp_path_factory.mktemp("fer2013") / "fer2013_subset.csv"
    with gzip.open(fer2013_csv, "rt", encoding="utf-8") as source, \
            open(path, "w", encoding="utf-8") as target:
        target.write(next(source))
        for line in source:
            usage = line.rstrip().rsplit(",", 1)[-1]
            if wanted.get(usage, 0) > 0:
                wanted[usage] -= 1
                target.write(line)
            if not any(wanted.values()):
                break
    return path


def pixels_text(seed: int) -> str:
    values = np.random.default_rng(seed).integers(0, 256, 48 * 48)
    return " ".join(str(v) for v in values)


def write_fer2013_csv(path: Path, rows: list[tuple[int, str]], *, header="emotion,pixels,Usage",
                      compress: bool = False) -> Path:
    """Write ``(label, usage)`` rows with generated 48x48 faces in the official format."""
    columns = [c.strip() for c in header.split(",")]
    lines = [header]
    for i, (label, usage) in enumerate(rows):
        fields = {"emotion": str(label), "pixels": pixels_text(i), "Usage": usage}
        lines.append(",".join(fields[c] for c in columns))
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


SIX_ROWS = [(0, "Training"), (3, "Training"), (6, "PublicTest"), (4, "PublicTest"),
            (5, "PrivateTest"), (1, "PrivateTest")]


@pytest.fixture
def small_fer2013(tmp_path) -> Path:
    return write_fer2013_csv(tmp_path / "fer2013.csv", SIX_ROWS)


AFFECTNET_HEADER = ("subDirectory_filePath,face_x,face_y,face_width,face_height,"
                    "facial_landmarks,expression,valence,arousal")


# AffectNet-7 order: neutral, happiness, sadness, surprise, fear, disgust, anger
VA_CENTRES = [(0.0, 0.0), (0.7, 0.3), (-0.6, -0.3), (0.2, 0.7), (-0.5, 0.6), (-0.6, 0.2),
              (-0.5, 0.6)]


def write_synthetic_affectnet(root, n_train=224, n_val=96):
    """AffectNet's CSV release where the expression is where a bright bar sits and valence and
    arousal are the brightness of two bands (so all three are learnable from the image). As in
    real faces, valence and arousal depend on the expression (happiness is pleasant, surprise
    and fear are aroused) and vary within it."""
    from PIL import Image

    rng = np.random.default_rng(0)
    images = root / "Manually_Annotated_Images" / "001"
    images.mkdir(parents=True)
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir()
    for split, n in (("training", n_train), ("validation", n_val)):
        rows = []
        for i in range(n):
            expression = int(rng.integers(7))
            valence, arousal = (np.array(VA_CENTRES[expression]) + rng.uniform(-0.3, 0.3, 2)
                                ).clip(-1, 1)
            image = rng.integers(70, 110, (64, 64)).astype(np.float64)
            image[4:20, 2 + expression * 9:2 + expression * 9 + 6] = 250
            image[26:40, :] = 128 + 120 * valence
            image[46:60, :] = 128 + 120 * arousal
            name = f"{split}_{i:04d}.jpg"
            Image.fromarray(np.repeat(image.clip(0, 255).astype(np.uint8)[:, :, None], 3, 2)
                            ).save(images / name, quality=95)
            rows.append(f"001/{name},0,0,64,64,,{expression},{valence:.4f},{arousal:.4f}")
        (lists / f"{split}.csv").write_text(AFFECTNET_HEADER + "\n" + "\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="session")
def synthetic_affectnet(tmp_path_factory) -> Path:
    """A small learnable AffectNet tree in the CSV release's format (read-only in tests)."""
    return write_synthetic_affectnet(tmp_path_factory.mktemp("affectnet") / "affectnet")



class DataDependent(nn.Module):
    """A model that branches on its input's values: a trace would freeze the branch it took."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, x):
        y = self.conv(x).mean((2, 3))
        return y if bool(x.mean() > 0) else -y


@pytest.fixture
def data_dependent_model():
    """A factory of :class:`DataDependent` models."""
    return DataDependent


def png_declaring(width: int, height: int) -> bytes:
    """A PNG of about 100 bytes whose header declares ``width`` x ``height`` pixels (a
    decompression bomb, when large): readers must refuse it before decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0,
                                                             0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))

