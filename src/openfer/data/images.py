"""Decoding and resizing of face images (uint8, channels last), shared by readers and inference.

The same functions prepare faces for training and for prediction, so a model sees identically
processed pixels in both.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import DataFormatError
from ..process_state import catching_warnings

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif",
                              ".pgm", ".ppm"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg",
                              ".wmv", ".flv", ".3gp"})

#: Decoding refuses images above this many pixels (decompression bombs); see :func:`read_image`.
MAX_PIXELS = 40_000 * 40_000


def is_image_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS and not Path(path).name.startswith(".")


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def read_image(path: str | Path, channels: int = 3) -> np.ndarray:
    """Decode an image file to ``uint8`` (H, W, channels), EXIF orientation applied.

    ``channels`` is 1 (luma, ITU-R 601 as PIL computes it) or 3 (RGB). 16-bit, palette, CMYK,
    grayscale and RGBA inputs are all converted. A file that cannot be decoded raises
    :class:`DataFormatError` naming it.
    """
    path = Path(path)
    try:
        with open_image(path) as image:
            if image.width * image.height > MAX_PIXELS:
                raise DataFormatError(path, f"image is {image.width}x{image.height} pixels, "
                                      f"more than the limit of {MAX_PIXELS} pixels")
            image = ImageOps.exif_transpose(image)
            array = pil_to_array(image, channels)
    except DataFormatError:
        raise
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise DataFormatError(path, f"cannot decode image ({exc})",
                              hint="the file is corrupt, truncated or not an image") from None
    return array


#: Non-JPEG images above this many pixels are refused by :func:`read_image_bounded` (memory).
MAX_DECODE_PIXELS = 120_000_000


def open_image(source, *, pixel_limit: int | None = None) -> Image.Image:
    """``PIL.Image.open(source)``, which reads the header only (pixels decode later), with PIL's
    decompression-bomb warning raised as an error, or, given ``pixel_limit``, with PIL's own limit
    moved there and its warning silenced, for callers that enforce bounds of their own. Both are
    process-wide settings, so they are changed under :data:`openfer.process_state.LOCK` and only
    for the header: decoding runs outside it, in parallel across threads."""
    with catching_warnings():
        if pixel_limit is None:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(source)
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, pixel_limit
        try:
            return Image.open(source)
        finally:
            Image.MAX_IMAGE_PIXELS = previous


def read_image_bounded(path: str | Path, max_side: int = 4096) -> tuple[np.ndarray, float]:
    """Decode an RGB image whose long side is at most about ``max_side``, in bounded memory.

    Returns ``(image, factor)`` where original coordinates = ``factor`` x returned coordinates.
    JPEGs are decoded directly at a reduced scale (DCT scaling, ``Image.draft``), so a
    20000x20000 photo never takes gigabytes; other formats above :data:`MAX_DECODE_PIXELS` are
    refused with a message.
    """
    path = Path(path)
    try:
        with open_image(path, pixel_limit=MAX_PIXELS // 2) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise DataFormatError(path, f"image is {width}x{height} pixels, more than "
                                      f"the limit of {MAX_PIXELS} pixels")
            if not draft_jpeg(image, max_side) and width * height > MAX_DECODE_PIXELS:
                raise DataFormatError(path, f"image is {width}x{height} pixels; "
                                      f"{image.format or 'this format'} images above "
                                      f"{MAX_DECODE_PIXELS // 1_000_000} megapixels are not "
                                      "decoded (memory); downscale it first")
            image = ImageOps.exif_transpose(image)
            array = pil_to_array(image, 3)
    except DataFormatError:
        raise
    except FileNotFoundError:
        raise DataFormatError(path, "file not found") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataFormatError(path, f"cannot decode image ({exc})",
                              hint="the file is corrupt, truncated or not an image") from None
    return fit_long_side(array, max(width, height), max_side)


def draft_jpeg(image: Image.Image, max_side: int) -> bool:
    """Have PIL decode a JPEG whose long side exceeds ``max_side`` at a reduced scale (DCT
    scaling, ``Image.draft``: at least ``max_side``, at most twice it); True if it will."""
    width, height = image.size
    if image.format != "JPEG" or max(width, height) <= max_side:
        return False
    image.draft("RGB", (max(1, width * max_side // max(width, height)),
                        max(1, height * max_side // max(width, height))))
    return True


def fit_long_side(array: np.ndarray, full_side: int, max_side: int) -> tuple[np.ndarray, float]:
    """``array`` resized (bilinear) so that its long side is at most ``max_side``, and the factor
    from its coordinates to those of the image whose long side is ``full_side``."""
    if max(array.shape[:2]) > max_side:
        scale = max_side / max(array.shape[:2])
        array = np.asarray(Image.fromarray(array).resize(
            (max(1, round(array.shape[1] * scale)), max(1, round(array.shape[0] * scale))),
            Image.BILINEAR, reducing_gap=2.0))
    return np.ascontiguousarray(array), full_side / max(array.shape[:2])


def pil_to_array(image: Image.Image, channels: int = 3) -> np.ndarray:
    """Convert any PIL image mode to ``uint8`` (H, W, channels)."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        data = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or data.max() > 255 else 255.0
        image = Image.fromarray(np.clip(data / peak * 255.0 + 0.5, 0, 255).astype(np.uint8))
    elif image.mode == "F":
        data = np.asarray(image, dtype=np.float64)
        peak = 1.0 if data.max() <= 1.0 else 255.0
        image = Image.fromarray(np.clip(data / peak * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGB", image.size, (0, 0, 0))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        image = background
    image = image.convert("L" if channels == 1 else "RGB")
    array = np.asarray(image, dtype=np.uint8)
    return array[:, :, None] if channels == 1 else array


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Convert a ``uint8`` (H, W[, C]) array to ``channels`` (1 or 3) channels last."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == channels:
        return image
    if channels == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if channels == 1 and image.shape[2] in (3, 4):
        return pil_to_array(Image.fromarray(np.ascontiguousarray(image[:, :, :3])), 1)
    raise ValueError(f"cannot convert a {image.shape[2]}-channel image to {channels} channels")


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a ``uint8`` (H, W, C) image to ``size`` = (height, width), antialiased."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    channels = image.shape[2]
    pil = Image.fromarray(image[:, :, 0] if channels == 1 else image)
    out = np.asarray(pil.resize((width, height), Image.BILINEAR, reducing_gap=None), np.uint8)
    return out[:, :, None] if channels == 1 else out
