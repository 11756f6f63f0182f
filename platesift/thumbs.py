"""Thumbnails: JPEG crops of proposed regions, cut from the source-resolution luma plane.

They are greyscale because the analysis path never converts colour (that is what keeps it as
fast as plain decoding); the heavy stage reads the source video itself.
"""

from __future__ import annotations

import cv2
import numpy as np

from platesift.records import Box


def crop_with_margin(luma: np.ndarray, box: Box, margin: float) -> np.ndarray:
    """The region grown by `margin` x its size on every side, clipped to the frame."""
    x1, y1, x2, y2 = box
    mx = round((x2 - x1) * margin)
    my = round((y2 - y1) * margin)
    h, w = luma.shape[:2]
    return luma[max(0, y1 - my) : min(h, y2 + my), max(0, x1 - mx) : min(w, x2 + mx)]


def encode_thumb(
    luma: np.ndarray, box: Box, *, margin: float, max_width: int, quality: int
) -> bytes:
    """Deterministic JPEG bytes of one region's thumbnail."""
    crop = crop_with_margin(luma, box, margin)
    if crop.size == 0:
        raise ValueError(f"region {box} is outside the frame")
    if crop.shape[1] > max_width:
        height = max(1, round(crop.shape[0] * max_width / crop.shape[1]))
        crop = cv2.resize(crop, (max_width, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"could not encode the thumbnail of region {box}")
    return data.tobytes()


__all__ = ["crop_with_margin", "encode_thumb"]
