"""Carry FER2013 to a lent GPU machine: the official CSV (85 MB gzip) is over the device tool's
64 MiB limit, so it travels as xz-compressed raw bytes (57 MB) and is written back, on arrival,
as the official CSV (``emotion,pixels,Usage``) that ``openfer`` reads.

    python benchmarks/gpu/fer2013_pack.py pack ../shared/data/fer2013/fer2013.csv.gz .gpu/fer2013.xz
    python benchmarks/gpu/fer2013_pack.py unpack .gpu/fer2013.xz /tmp/fer2013.csv.gz

Round trip checked by ``unpack --check ORIGINAL``: the same rows, labels, usages and pixels.
"""

from __future__ import annotations

import argparse
import gzip
import io
import lzma
import struct
from pathlib import Path

import numpy as np

from openfer.data.fer2013 import USAGES, csv_rows, parse_pixels


def read_csv(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every row of an official FER2013 CSV, in file order, read (and checked) by openfer's
    reader: labels, usages (index into ``USAGES``), pixels (N, 2304)."""
    labels, usages, pixels = [], [], []
    for line, row in csv_rows(Path(path)):
        labels.append(int(row["emotion"]))
        usages.append(USAGES.index(row["Usage"].strip()))
        pixels.append(parse_pixels(row["pixels"], Path(path), line).ravel())
    return np.array(labels, np.uint8), np.array(usages, np.uint8), np.stack(pixels)


def pack(source: str, target: str) -> None:
    labels, usages, pixels = read_csv(source)
    body = struct.pack("<I", len(labels)) + labels.tobytes() + usages.tobytes() + pixels.tobytes()
    with open(target, "wb") as handle:
        handle.write(lzma.compress(body, preset=6))


def unpack(source: str, target: str, check: str | None = None) -> None:
    with open(source, "rb") as handle:
        body = lzma.decompress(handle.read())
    n = struct.unpack("<I", body[:4])[0]
    labels = np.frombuffer(body, np.uint8, n, 4)
    usages = np.frombuffer(body, np.uint8, n, 4 + n)
    pixels = np.frombuffer(body, np.uint8, n * 2304, 4 + 2 * n).reshape(n, 2304)
    if check:
        original = read_csv(check)
        for a, b in zip(original, (labels, usages, pixels)):
            assert np.array_equal(a, b), "round trip differs"
    text = io.StringIO()
    text.write("emotion,pixels,Usage\n")
    for label, usage, row in zip(labels, usages, pixels):
        text.write(f"{label},{' '.join(map(str, row.tolist()))},{USAGES[usage]}\n")
    handle = gzip.open(target, "wt", compresslevel=1, newline="") if target.endswith(".gz") \
        else open(target, "w", newline="")
    with handle:
        handle.write(text.getvalue())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("pack", "unpack"))
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--check", help="(unpack) the original CSV to compare with")
    args = parser.parse_args()
    if args.action == "pack":
        pack(args.source, args.target)
    else:
        unpack(args.source, args.target, args.check)
