"""Face alignment: from a detection to the crop a model was trained on.

A model's metadata names its alignment (``ModelMeta.alignment``)::

    {"method": "box", "margin": 0.1, "square": true}
        crop the detector's box, grown by ``margin`` of its size on every side and made square
        around its centre (FER2013-style faces, which were cropped from detector boxes);
    {"method": "five_point", "template": [[x, y] x 5], "template_size": [w, h]}
        similarity transform (rotation, uniform scale, translation; Umeyama 1991) that maps the
        five landmarks onto the template, e.g. the ArcFace 112x112 template (RAF-DB's aligned
        faces are made the same way from eyes and mouth).

Both are one affine warp (``cv2.warpAffine``) straight to the model's input size, with border
replication; without landmarks, ``five_point`` falls back to ``box``. The same functions prepare
training images (readers of data sets with boxes or landmarks) and inference crops.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: ArcFace / insightface five-point template for 112x112 faces.
ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                        [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)

BOX_ALIGNMENT = {"method": "box", "margin": 0.0, "square": True}


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 similarity matrix that best maps ``source`` points onto ``target`` (least squares).

    Umeyama, "Least-squares estimation of transformation parameters between two point patterns",
    TPAMI 1991, without reflection.
    """
    src = np.asarray(source, np.float64)
    dst = np.asarray(target, np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(covariance)
    d = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1, 1] = -1
    rotation = u @ d @ vt
    variance = (src_c ** 2).sum() / len(src)
    scale = np.trace(np.diag(s) @ d) / variance if variance > 0 else 1.0
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def box_transform(box, size: tuple[int, int], margin: float = 0.0, square: bool = True
                  ) -> np.ndarray:
    """The 2x3 matrix mapping a (grown, squared) box onto an output of ``size`` = (h, w)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    width, height = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    if square:
        width = height = max(width, height)
    width *= 1 + 2 * margin
    height *= 1 + 2 * margin
    out_h, out_w = size
    sx, sy = out_w / max(width, 1e-6), out_h / max(height, 1e-6)
    return np.array([[sx, 0, out_w / 2 - sx * cx], [0, sy, out_h / 2 - sy * cy]])


def alignment_transform(alignment: dict[str, Any] | None, size: tuple[int, int], box,
                        landmarks: np.ndarray | None) -> np.ndarray:
    """The affine matrix an alignment recipe prescribes for one detection."""
    alignment = alignment or BOX_ALIGNMENT
    method = alignment.get("method", "box")
    if method == "five_point" and landmarks is not None:
        template = np.asarray(alignment.get("template", ARCFACE_112), np.float64)
        tw, th = alignment.get("template_size", (112, 112))
        out_h, out_w = size
        scaled = template * np.array([out_w / tw, out_h / th])
        return similarity_transform(np.asarray(landmarks, np.float64), scaled)
    if method not in ("box", "five_point"):
        raise ValueError(f"unknown alignment method {method!r}; use box or five_point")
    return box_transform(box, size, float(alignment.get("margin", 0.0)),
                         bool(alignment.get("square", True)))


def warp(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Apply a 2x3 affine matrix, producing an image of ``size`` = (h, w), same channels."""
    import cv2

    out_h, out_w = size
    scale = np.sqrt(abs(np.linalg.det(matrix[:, :2])))
    # Shrinking a lot: area-average first so the crop is not aliased, and only the region the
    # output reads (a large photo's other pixels would cost ~20 ms a face at 18 megapixels).
    if scale < 0.5:
        factor = int(1 / scale)
        x0, y0, x1, y1 = _source_region(matrix, (out_h, out_w), image.shape[:2], factor)
        if x1 > x0 and y1 > y0:
            region = image[y0:y1, x0:x1]
            small = cv2.resize(region, (max(1, region.shape[1] // factor),
                                        max(1, region.shape[0] // factor)),
                               interpolation=cv2.INTER_AREA)
            sx, sy = region.shape[1] / small.shape[1], region.shape[0] / small.shape[0]
            # small pixel i covers region pixels [i * s, (i + 1) * s): its centre is at
            # x0 + i * s + (s - 1) / 2 in the image (pixel centres at integers, as warpAffine)
            matrix = matrix @ np.array([[sx, 0.0, x0 + (sx - 1) / 2],
                                        [0.0, sy, y0 + (sy - 1) / 2], [0.0, 0.0, 1.0]])
            image = small
    out = cv2.warpAffine(image, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    return out[:, :, None] if out.ndim == 2 else out


def _source_region(matrix: np.ndarray, size: tuple[int, int], shape: tuple[int, int],
                   factor: int) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the part of an image of ``shape`` that the output of ``size`` reads
    through ``matrix`` (image -> output), with a margin of two area blocks, on the ``factor``
    grid, clipped to the image."""
    import cv2

    out_h, out_w = size
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[-1, -1], [out_w, -1], [-1, out_h], [out_w, out_h]], np.float64)
    points = corners @ inverse[:, :2].T + inverse[:, 2]
    margin = 2 * factor
    x0 = max(0, int(np.floor(points[:, 0].min())) - margin) // factor * factor
    y0 = max(0, int(np.floor(points[:, 1].min())) - margin) // factor * factor
    x1 = min(shape[1], int(np.ceil(points[:, 0].max())) + margin)
    y1 = min(shape[0], int(np.ceil(points[:, 1].max())) + margin)
    # whole blocks only, so that each area-averaged pixel is the mean of factor x factor pixels
    if x1 - x0 >= factor:
        x1 = x0 + (x1 - x0) // factor * factor
    if y1 - y0 >= factor:
        y1 = y0 + (y1 - y0) // factor * factor
    return x0, y0, x1, y1


def align_face(image: np.ndarray, box, landmarks: np.ndarray | None, alignment: dict | None,
               size: tuple[int, int]) -> np.ndarray:
    """Crop and align one face from ``image`` (H, W, C uint8) to ``size`` = (h, w)."""
    return warp(image, alignment_transform(alignment, size, box, landmarks), size)
