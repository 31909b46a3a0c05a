"""A generated corpus of malformed inputs for every fuzz target (nothing binary is committed).

For each target, valid seeds in the owners' exact formats are built here, then mutated
deterministically: truncations, bit flips, byte insertions and deletions, non-UTF-8 bytes, NUL
bytes, wrong field counts, numbers replaced by huge, negative, NaN and inf values, wrong types,
and, for images, headers that declare huge dimensions. ``corpus(n_per_target)`` yields
``(target, name, bytes)``.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from typing import Iterator

import numpy as np

# -- seeds ---------------------------------------------------------------------------------


def _jpeg(width=96, height=80, mode="RGB") -> bytes:
    from PIL import Image
    rng = np.random.default_rng(width * height)
    shape = (height, width, 3) if mode == "RGB" else (height, width)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, shape, np.uint8), mode).save(buffer, "JPEG")
    return buffer.getvalue()


def _png(width=48, height=48) -> bytes:
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width), 90, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                             0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


def _gif_declaring(width: int, height: int) -> bytes:
    return (b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00"
            + b"\x2c\x00\x00\x00\x00" + struct.pack("<HH", width, height)
            + b"\x00\x02\x02\x44\x01\x00\x3b")


def _bmp_declaring(width: int, height: int) -> bytes:
    header = b"BM" + struct.pack("<IHHI", 54, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return header + info


def _fer2013_csv() -> bytes:
    rng = np.random.default_rng(1)
    rows = ["emotion,pixels,Usage"]
    for usage in ("Training", "PublicTest", "PrivateTest"):
        for _ in range(2):
            rows.append(f"{rng.integers(7)},{' '.join(map(str, rng.integers(0, 256, 2304)))},"
                        f"{usage}")
    return ("\n".join(rows) + "\n").encode()


def _rafdb_labels() -> bytes:
    return b"".join(f"train_{i:05d}.jpg {1 + i % 7}\n".encode() for i in range(1, 6)) + \
        b"test_0001.jpg 3\ntest_0002.jpg 7\n"


def _rafdb_compound_labels() -> bytes:
    return b"".join(f"train_{i:04d}.jpg {1 + i % 11}\n".encode() for i in range(1, 13)) + \
        b"test_0001.jpg 11\n"


def _expw_labels() -> bytes:
    lines = ["afraid_african_214.jpg 0 106 191 296 401 57.73 2",
             "afraid_african_214.jpg 1 38 43 104 109 11.9 6",
             "angry_actor_104.jpg 0 28 113 226 311 74.95 0",
             "angry_actor_104.jpg 0 28 113 226 311 74.95 0"]
    return ("\n".join(lines) + "\n").encode()


def _rafdb_attributes() -> bytes:
    lines = [f"{30.5 + 10 * k}\t{40.25 + 5 * k}" for k in range(5)] + ["1", "0", "2"]
    return ("\n".join(lines) + "\n").encode()


def _affectnet_csv() -> bytes:
    header = ("subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,"
              "expression,valence,arousal")
    landmarks = ";".join(f"{v:.2f}" for v in np.linspace(10, 200, 136))
    rows = [header, f'689/737db2483489148d783ef278f43f486c0a97e140fc4b6b61b84363ca.jpg,134,134,'
            f'899,899,{landmarks},1,0.785714,-0.055556',
            '392/c4db2f9b7e4b422d14b6e038f0cdc3ecee239b55326e9181ee4520f9.jpg,20,20,180,180,'
            ',0,-0.017253,0.004313']
    return ("\n".join(rows) + "\n").encode()


def _affwild2_expr() -> bytes:
    return b"Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n" + \
        b"".join(f"{v}\n".encode() for v in (0, 0, 4, 4, -1, 7, 2))


def _affwild2_va() -> bytes:
    return b"valence,arousal\n" + b"".join(f"{v:.3f},{-v / 2:.3f}\n".encode()
                                            for v in np.linspace(-0.9, 0.9, 6)) + b"-5,-5\n"


def _ckplus_emotion() -> bytes:
    return b"   3.0000000e+00\n"


def _jaffe_ratings() -> bytes:
    return (b"N,HAP,SAD,SUR,ANG,DIS,FEA,PIC\n1,2.87,2.52,2.10,1.97,1.97,2.06,KM-NE1\n"
            b"2,1.23,2.90,1.77,4.81,3.06,2.00,KA-AN1\n")


def _mmi_index() -> bytes:
    return (b"session,video,label,subject,apex\n100,Sessions/100/S001-100.avi,happiness,1,\n"
            b"101,Sessions/101/S001-101.avi,surprise,1,32\n")


def _mmi_aus() -> bytes:
    return (b'<?xml version="1.0" encoding="utf-8"?>\n<ActionUnits>\n'
            b'  <ActionUnit Number="12"><Marker Frame="3" Type="1" /><Marker Frame="6" Type="2" />'
            b'<Marker Frame="9" Type="3" /></ActionUnit>\n'
            b'  <ActionUnit Number="6"><Marker Frame="4" /><Marker Frame="8" /></ActionUnit>\n'
            b'</ActionUnits>\n')


def _ferplus_votes() -> bytes:
    return (b"Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,"
            b"unknown,NF\nTraining,fer0000000.png,4,0,0,1,3,2,0,0,0,0\n"
            b"PublicTest,,0,0,0,0,0,0,0,0,0,10\nPrivateTest,fer0000002.png,0,10,0,0,0,0,0,0,0,0\n")


def _ferplus_label_csv() -> bytes:
    return (b"fer0000000.png,4,0,0,1,3,2,0,0,0,0\n"
            b'fer0028638.png,"(0, 0, 48, 48)",4,0,0,0,1,0,0,4,1,0\n')


def _fmpn_labels() -> bytes:
    import pickle
    return pickle.dumps({"S005_001": 3.0, "S010_002": -1, "S011_001": 7.0}, protocol=2)


def _fmpn_list() -> bytes:
    return b"S005_001_00000009.png\nS005_001_00000010.png\nS005_001_00000011.png\n"


def _recipe() -> bytes:
    from openfer.engine.recipe import builtin_recipes
    return builtin_recipes()["deep_emotion_fer2013"].read_bytes()


def _checkpoint() -> bytes:
    import tempfile
    from pathlib import Path

    import torch

    from openfer.engine.checkpointing import write_checkpoint
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.ckpt"
        write_checkpoint({"epoch": 1, "global_step": 10, "state_dict": {
            "model.w": torch.arange(6.0).reshape(2, 3)}}, path)
        return path.read_bytes()


def _weights() -> bytes:
    import tempfile
    from pathlib import Path

    import openfer
    from openfer.checkpoint import save_weights
    with tempfile.TemporaryDirectory() as tmp:
        path = save_weights(openfer.create_model("deep_emotion"), Path(tmp) / "w.safetensors")
        return path.read_bytes()


SEEDS = {
    "image": lambda: [_jpeg(), _jpeg(40, 300, "L"), _png(120, 90)],
    "image_gray": lambda: [_png(), _jpeg(48, 48, "L")],
    "upload": lambda: [_jpeg(), _png()],
    "predict": lambda: [_jpeg(160, 120)],
    "fer2013_csv": lambda: [_fer2013_csv()],
    "rafdb_labels": lambda: [_rafdb_labels()],
    "rafdb_compound_labels": lambda: [_rafdb_compound_labels()],
    "rafdb_attributes": lambda: [_rafdb_attributes()],
    "expw_labels": lambda: [_expw_labels()],
    "affectnet_csv": lambda: [_affectnet_csv()],
    "affwild2_expr": lambda: [_affwild2_expr()],
    "affwild2_va": lambda: [_affwild2_va()],
    "ckplus_emotion": lambda: [_ckplus_emotion()],
    "jaffe_ratings": lambda: [_jaffe_ratings()],
    "mmi_index": lambda: [_mmi_index()],
    "mmi_aus": lambda: [_mmi_aus()],
    "ferplus_votes": lambda: [_ferplus_votes()],
    "ferplus_label_csv": lambda: [_ferplus_label_csv()],
    "fmpn_labels": lambda: [_fmpn_labels()],
    "fmpn_list": lambda: [_fmpn_list()],
    "recipe": lambda: [_recipe()],
    "checkpoint": lambda: [_checkpoint()],
    "weights": lambda: [_weights()],
}

IMAGE_TARGETS = {"image", "image_gray", "upload", "predict"}
TEXT_TARGETS = {"fer2013_csv", "rafdb_labels", "rafdb_compound_labels", "rafdb_attributes",
                "expw_labels", "affectnet_csv", "affwild2_expr", "affwild2_va", "recipe",
                "ckplus_emotion", "fmpn_list", "jaffe_ratings", "ferplus_votes",
                "ferplus_label_csv", "mmi_index", "mmi_aus"}

# -- mutations ---------------------------------------------------------------------------------

NUMBERS = [b"nan", b"NaN", b"inf", b"-inf", b"1e309", b"-1", b"99999999999999999999", b"7",
           b"-0", b"0x10", b"", b"1.5", b"\xff\xfe", b"None", b"[]"]


def _mutate(data: bytes, rng: random.Random, text: bool, image: bool) -> tuple[str, bytes]:
    choices = ["truncate", "flip", "insert", "delete", "splice", "empty", "repeat"]
    if text:
        choices += ["number", "number", "non_utf8", "nul", "fields", "lines", "yaml"]
    if image:
        choices += ["huge_png", "huge_gif", "huge_bmp", "zero_png", "header_only"]
    kind = rng.choice(choices)
    buf = bytearray(data)
    if not buf:                      # an earlier mutation emptied it: grow it back
        return "insert", bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    if kind == "truncate":
        return kind, bytes(buf[:rng.randrange(0, max(1, len(buf)))])
    if kind == "flip":
        for _ in range(rng.randint(1, 16)):
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        return kind, bytes(buf)
    if kind == "insert":
        i = rng.randrange(len(buf) + 1)
        return kind, bytes(buf[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
                           + buf[i:])
    if kind == "delete":
        i = rng.randrange(len(buf))
        return kind, bytes(buf[:i] + buf[i + rng.randint(1, 64):])
    if kind == "splice":
        i, j = sorted(rng.randrange(len(buf)) for _ in range(2))
        return kind, bytes(buf[:i] + buf[j:] + buf[i:j])
    if kind == "empty":
        return kind, rng.choice([b"", b"\n", b" ", b"\r\n\r\n", b"\x00"])
    if kind == "repeat":
        return kind, bytes(buf) * rng.randint(2, 4)
    if kind == "number":
        text_value = bytes(buf)
        tokens = [m for m in _number_spans(text_value)]
        if not tokens:
            return kind, text_value + rng.choice(NUMBERS)
        for _ in range(rng.randint(1, 3)):
            start, end = rng.choice(tokens)
            text_value = text_value[:start] + rng.choice(NUMBERS) + text_value[end:]
            tokens = _number_spans(text_value) or [(0, 0)]
        return kind, text_value
    if kind == "non_utf8":
        i = rng.randrange(len(buf) + 1)
        return kind, bytes(buf[:i]) + rng.choice([b"\xff\xfe\xfd", b"\xc3\x28", b"\xed\xa0\x80",
                                                  b"\x80"]) + bytes(buf[i:])
    if kind == "nul":
        i = rng.randrange(len(buf) + 1)
        return kind, bytes(buf[:i]) + b"\x00" * rng.randint(1, 8) + bytes(buf[i:])
    if kind == "fields":
        lines = bytes(buf).split(b"\n")
        k = rng.randrange(len(lines))
        lines[k] = lines[k] + rng.choice([b",", b",,,", b"\t", b" extra", b",1,2,3"]) \
            if rng.random() < 0.5 else lines[k][:len(lines[k]) // 2]
        return kind, b"\n".join(lines)
    if kind == "lines":
        lines = bytes(buf).split(b"\n")
        rng.shuffle(lines)
        return kind, b"\n".join(lines[:rng.randint(0, len(lines))])
    if kind == "yaml":
        return kind, rng.choice([b"- a\n- b\n", b"name: [unclosed\n", b"!!python/object:os.system"
                                 b" {}\n", b"a: &x [*x]\n", b"model: 3\n", b"trainer: {max_epochs"
                                 b": -5}\n", b"\t- tab\n", b"{" * 200, b"name: x\nmethod: nope\n"])
    side = rng.choice([70_000, 100_000, 2**31 - 1, 0, 65_535])
    if kind == "huge_png":
        return kind, _png_declaring(side, rng.choice([side, 1, 50_000]))
    if kind == "huge_gif":
        return kind, _gif_declaring(min(side, 65_535), min(side, 65_535))
    if kind == "huge_bmp":
        return kind, _bmp_declaring(side if side < 2**31 else 2**31 - 1, -side // 2)
    if kind == "zero_png":
        return kind, _png_declaring(0, 0)
    return kind, bytes(buf[:rng.choice([2, 3, 8, 16, 30])])   # header only


def _number_spans(data: bytes) -> list[tuple[int, int]]:
    import re
    return [m.span() for m in re.finditer(rb"-?\d+(\.\d+)?", data)][:2000]


def corpus(n_per_target: int = 100, seed: int = 0,
           targets: list[str] | None = None) -> Iterator[tuple[str, str, bytes]]:
    """``(target, name, data)`` for ``n_per_target`` malformed inputs of each target (the
    first few are the valid seeds themselves)."""
    for target in targets or list(SEEDS):
        rng = random.Random(f"{seed}:{target}")
        seeds = SEEDS[target]()
        for i, data in enumerate(seeds):
            yield target, f"{target}-seed{i}", data
        for i in range(n_per_target - len(seeds)):
            data = rng.choice(seeds)
            for _ in range(rng.choice([1, 1, 1, 2, 3])):
                kind, data = _mutate(data, rng, target in TEXT_TARGETS, target in IMAGE_TARGETS)
            yield target, f"{target}-{i:04d}-{kind}", data
