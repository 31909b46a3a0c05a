"""Shared fixtures: the real data in ../shared, and small files in the owners' exact formats."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

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
