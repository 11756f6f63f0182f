"""Thumbnails: JPEG crops of proposed regions, cut from the source-resolution luma plane
(`thumb_pixels`, a small copy a track can hold until it knows its best crops), then encoded
(`encode_jpeg`).

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


def thumb_pixels(luma: np.ndarray, box: Box, *, margin: float, max_width: int) -> np.ndarray:
    """A copy of one region's thumbnail pixels: the region with its margin, at most
    `max_width` wide."""
    crop = crop_with_margin(luma, box, margin)
    if crop.size == 0:
        raise ValueError(f"region {box} is outside the frame")
    if crop.shape[1] > max_width:
        height = max(1, round(crop.shape[0] * max_width / crop.shape[1]))
        return cv2.resize(crop, (max_width, height), interpolation=cv2.INTER_AREA)
    return np.array(crop, copy=True)


def encode_jpeg(pixels: np.ndarray, quality: int) -> bytes:
    """Deterministic JPEG bytes of thumbnail pixels."""
    ok, data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"could not encode a {pixels.shape} thumbnail")
    return data.tobytes()


def encode_thumb(
    luma: np.ndarray, box: Box, *, margin: float, max_width: int, quality: int
) -> bytes:
    """Deterministic JPEG bytes of one region's thumbnail."""
    return encode_jpeg(thumb_pixels(luma, box, margin=margin, max_width=max_width), quality)


__all__ = ["crop_with_margin", "encode_jpeg", "encode_thumb", "thumb_pixels"]
