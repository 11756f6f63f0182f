"""Thumbnails: JPEG crops of proposed regions, cut from the source-resolution planes
(`thumb_pixels`, a small copy a track can hold until it knows its best crops), then encoded
(`encode_jpeg`).

The analysis path never converts colour (that is what keeps it as fast as plain decoding).
A thumbnail is in colour when the decoder handed out the 4:2:0 chroma planes with the luma:
only its own few thousand pixels are converted (BT.601, video range, as OpenCV's I420
conversion does). Otherwise it is greyscale.
"""

from __future__ import annotations

import cv2
import numpy as np

from platesift.records import Box

Chroma = tuple[np.ndarray, np.ndarray]
"""The U and V planes of a 4:2:0 image: half its width and height (rounded up), pixel (y, x)
of the luma at (y // 2, x // 2)."""


def crop_with_margin(luma: np.ndarray, box: Box, margin: float) -> np.ndarray:
    """The region grown by `margin` x its size on every side, clipped to the frame."""
    x1, y1, x2, y2 = _bounds(luma, box, margin)
    return luma[y1:y2, x1:x2]


def _bounds(luma: np.ndarray, box: Box, margin: float) -> tuple[int, int, int, int]:
    """`box` grown by `margin` x its size on every side, clipped to `luma`."""
    x1, y1, x2, y2 = box
    mx = round((x2 - x1) * margin)
    my = round((y2 - y1) * margin)
    h, w = luma.shape[:2]
    return max(0, x1 - mx), max(0, y1 - my), min(w, x2 + mx), min(h, y2 + my)


def colour_pixels(luma: np.ndarray, chroma: Chroma, box: Box, margin: float) -> np.ndarray | None:
    """The region with its margin in colour (BGR), its corners moved out to even pixels so
    that they fall on the chroma grid; None when that cannot be done (an odd edge)."""
    x1, y1, x2, y2 = _bounds(luma, box, margin)
    h, w = luma.shape[:2]
    x1, y1 = x1 - x1 % 2, y1 - y1 % 2
    x2, y2 = min(w, x2 + x2 % 2), min(h, y2 + y2 % 2)
    if (x2 - x1) % 2 or (y2 - y1) % 2 or x2 <= x1 or y2 <= y1:
        return None
    u = chroma[0][y1 // 2 : y2 // 2, x1 // 2 : x2 // 2]
    v = chroma[1][y1 // 2 : y2 // 2, x1 // 2 : x2 // 2]
    if u.shape != ((y2 - y1) // 2, (x2 - x1) // 2) or v.shape != u.shape:
        return None
    i420 = np.concatenate([luma[y1:y2, x1:x2].ravel(), u.ravel(), v.ravel()])
    bgr: np.ndarray = cv2.cvtColor(
        i420.reshape((y2 - y1) * 3 // 2, x2 - x1), cv2.COLOR_YUV2BGR_I420
    )
    return bgr


def thumb_pixels(
    luma: np.ndarray, box: Box, *, margin: float, max_width: int, chroma: Chroma | None = None
) -> np.ndarray:
    """A copy of one region's thumbnail pixels: the region with its margin, at most
    `max_width` wide; in colour (BGR) when `chroma` is given (and the region's corners allow)."""
    crop = crop_with_margin(luma, box, margin)
    if crop.size == 0:
        raise ValueError(f"region {box} is outside the frame")
    if chroma is not None and (colour := colour_pixels(luma, chroma, box, margin)) is not None:
        crop = colour
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


__all__ = [
    "Chroma",
    "colour_pixels",
    "crop_with_margin",
    "encode_jpeg",
    "encode_thumb",
    "thumb_pixels",
]
