"""Uploaded images: sniff the content, refuse what is not a bounded, decodable image.

A web service meets every kind of bad upload: nothing, text with a ``.jpg`` name, a truncated
or corrupt file, a huge file, or a tiny file that declares billions of pixels (a decompression
bomb). Each one becomes an :class:`UploadError` with an HTTP status, a machine-readable code and
a message a person can act on; the server itself never decodes more than ``max_pixels``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from ..data.images import draft_jpeg, fit_long_side, open_image, pil_to_array

# Magic numbers of the formats the service decodes (the file name is never trusted).
SIGNATURES: tuple[tuple[str, bytes, int], ...] = (
    ("jpeg", b"\xff\xd8\xff", 0),
    ("png", b"\x89PNG\r\n\x1a\n", 0),
    ("gif", b"GIF87a", 0),
    ("gif", b"GIF89a", 0),
    ("bmp", b"BM", 0),
    ("tiff", b"II*\x00", 0),
    ("tiff", b"MM\x00*", 0),
    ("webp", b"WEBP", 8),
)


@dataclass
class UploadError(Exception):
    """A rejected upload: HTTP ``status``, a stable ``code`` and a message for a person."""

    status: int
    code: str
    message: str
    file: str | None = None

    def __str__(self) -> str:
        return f"{self.file}: {self.message}" if self.file else self.message

    def body(self) -> dict:
        return {"error": {"status": self.status, "code": self.code, "message": str(self),
                          "file": self.file}}


# Video containers the service accepts, by content, and the suffix OpenCV is given for each.
VIDEO_SIGNATURES: tuple[tuple[str, bytes, int], ...] = (
    (".mp4", b"ftyp", 4),                      # MP4, MOV, M4V, 3GP (ISO base media)
    (".mov", b"moov", 4),                      # older QuickTime
    (".mov", b"mdat", 4),
    (".mov", b"wide", 4),
    (".avi", b"AVI ", 8),                      # RIFF....AVI
    (".mkv", b"\x1a\x45\xdf\xa3", 0),          # Matroska, WebM
    (".mpg", b"\x00\x00\x01\xba", 0),          # MPEG program stream
    (".flv", b"FLV\x01", 0),
    (".wmv", b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", 0),   # ASF
)


def _sniffed(signatures, data: bytes, riff: str) -> str | None:
    """The first name in ``signatures`` whose magic bytes ``data`` holds at their offset (the
    ``riff`` entry's only inside a RIFF file), or ``None``."""
    for name, magic, offset in signatures:
        if data[offset:offset + len(magic)] == magic and (name != riff or data[:4] == b"RIFF"):
            return name
    return None


def sniff_video(data: bytes) -> str | None:
    """The file suffix of the video container the bytes start with, or ``None``."""
    if len(data) > 188 and data[0] == data[188] == 0x47:    # MPEG transport stream packets
        return ".ts"
    return _sniffed(VIDEO_SIGNATURES, data, ".avi")


def check_video_upload(data: bytes, name: str, *, max_bytes: int) -> str:
    """The suffix of an uploaded video's container (:func:`sniff_video`); raises
    :class:`UploadError` for an empty, oversized or non-video upload."""
    if not data:
        raise UploadError(400, "empty", "the upload is empty (0 bytes); send a video file", name)
    if len(data) > max_bytes:
        raise UploadError(413, "too_large", f"the video is {len(data):,} bytes, more than the "
                          f"limit of {max_bytes:,}; send a shorter or smaller video", name)
    suffix = sniff_video(data)
    if suffix is None:
        what = "an image: send it to /v1/predict" if sniff(data) else \
            f"not a video container this service reads (it starts with bytes {data[:8].hex(' ')})"
        raise UploadError(415, "not_a_video", f"the content is {what}; MP4/MOV, AVI, MKV/WebM, "
                          "MPEG, FLV and WMV are read (the file name is not trusted, the "
                          "content is)", name)
    return suffix


def sniff(data: bytes) -> str | None:
    """The image format the bytes start with, or ``None``."""
    return _sniffed(SIGNATURES, data, "webp")


def decode_upload(data: bytes, name: str, *, max_bytes: int, max_pixels: int,
                  max_side: int = 4096) -> tuple[np.ndarray, float]:
    """An RGB ``uint8`` array of an uploaded image, its long side at most ``max_side``.

    Returns ``(image, factor)``: original coordinates = ``factor`` x returned coordinates, so
    boxes are reported in the uploaded image's pixels. Raises :class:`UploadError`.
    """
    if not data:
        raise UploadError(400, "empty", "the upload is empty (0 bytes); send an image file",
                          name)
    if len(data) > max_bytes:
        raise UploadError(413, "too_large", f"the upload is {len(data):,} bytes, more than the "
                          f"limit of {max_bytes:,}; send a smaller image", name)
    kind = sniff(data)
    if kind is None:
        head = data[:8].hex(" ")
        raise UploadError(415, "not_an_image", "the content is not a JPEG, PNG, GIF, BMP, TIFF "
                          f"or WebP image (it starts with bytes {head}); the file name is not "
                          "trusted, the content is", name)
    try:
        with open_image(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise UploadError(413, "too_many_pixels", f"the image declares {width}x"
                                  f"{height} pixels, more than the limit of {max_pixels:,} "
                                  "(possible decompression bomb); downscale it", name)
            draft_jpeg(image, max_side)
            image = ImageOps.exif_transpose(image)
            array = pil_to_array(image, 3)
    except UploadError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise UploadError(413, "too_many_pixels", f"decompression bomb refused ({exc})",
                          name) from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as exc:
        raise UploadError(422, "corrupt", f"the {kind.upper()} data cannot be decoded ({exc}); "
                          "the file is truncated or corrupt", name) from None
    if array.size == 0:
        raise UploadError(422, "corrupt", "the image has no pixels", name)
    return fit_long_side(array, max(width, height), max_side)
