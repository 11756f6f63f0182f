"""Frame quality where it matters: lighting, contrast and sharpness of the moving region.

A dark night frame with a lit plate on a moving car is not dark, because lighting is the
bright end (p99) of the moving region, where a lit plate shows, not the frame's mean.
Sharpness is the width of the sharpest edges, measured separately along x and y, so motion
blur (which widens edges along the direction of travel only) is caught even though edges
across it stay crisp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

_MIN_EDGE_RANGE = 24.0  # an edge must step at least this much to be measured
_STRONGEST = 0.02  # edge width is read on the 2% steepest pixels
_SHARP_WIDTH = 2.0  # edge width of a perfectly sharp step with a 3x3 Sobel


@dataclass(frozen=True)
class Quality:
    """Measurements of one frame's region of interest."""

    lighting: float  # p99 luma of the region, 0-255
    contrast: float  # p95 - p5 luma of the region
    edge_width: float  # width in analysis pixels of the region's sharpest edges (worst axis)

    @property
    def clarity(self) -> float:
        """Sharpness in (0, 1]: 1 for edges as sharp as the analysis resolution allows."""
        return float(min(1.0, _SHARP_WIDTH / max(self.edge_width, 1e-6)))


def measure(analysis: np.ndarray, mask: np.ndarray | None, max_width: float) -> Quality:
    """Measure the region selected by `mask` (same size as `analysis`; None = whole frame)."""
    if mask is None:
        crop = analysis
        crop_mask = np.full(analysis.shape, 255, np.uint8)
    else:
        x1, y1, w, h = cv2.boundingRect(mask)
        if w == 0 or h == 0:
            return Quality(lighting=0.0, contrast=0.0, edge_width=float("inf"))
        crop = analysis[y1 : y1 + h, x1 : x1 + w]
        crop_mask = mask[y1 : y1 + h, x1 : x1 + w]
    p5, p95, p99 = _percentiles(crop, crop_mask, (5.0, 95.0, 99.0))
    contrast = float(p95 - p5)
    region = crop_mask > 0
    width = max(
        _edge_width(crop, region, axis=0, contrast=contrast, max_width=max_width),
        _edge_width(crop, region, axis=1, contrast=contrast, max_width=max_width),
    )
    return Quality(lighting=float(p99), contrast=contrast, edge_width=width)


def _percentiles(img: np.ndarray, mask: np.ndarray, qs: tuple[float, ...]) -> tuple[float, ...]:
    """np.percentile (linear) of the 8-bit pixels under `mask`, from their histogram: the
    same values without gathering or sorting the pixels."""
    hist = cv2.calcHist([img], [0], mask, [256], [0, 256]).ravel()
    cum = np.cumsum(hist, dtype=np.float64)
    n = int(cum[-1])
    positions = [q / 100 * (n - 1) for q in qs]
    ranks = [min(math.floor(pos) + k, n - 1) for pos in positions for k in (0, 1)]
    # The k-th smallest value (0-based) is the first bin whose cumulative count exceeds k.
    values = np.searchsorted(cum, ranks, side="right").tolist()
    out = []
    for i, pos in enumerate(positions):
        a, b = float(values[2 * i]), float(values[2 * i + 1])
        frac = pos - math.floor(pos)
        out.append(a + (b - a) * frac if frac < 0.5 else b - (b - a) * (1 - frac))
    return tuple(out)


def _edge_width(
    crop: np.ndarray, region: np.ndarray, axis: int, contrast: float, max_width: float
) -> float:
    """Typical width of the steepest edges along one axis (0 = along x, 1 = along y)."""
    reach = int(np.ceil(3 * max_width)) + 1
    if axis == 0:
        sobel = cv2.Sobel(crop, cv2.CV_16S, 1, 0, ksize=3)
        kernel = np.ones((1, 2 * reach + 1), np.uint8)
    else:
        sobel = cv2.Sobel(crop, cv2.CV_16S, 0, 1, ksize=3)
        kernel = np.ones((2 * reach + 1, 1), np.uint8)
    step = cv2.subtract(cv2.dilate(crop, kernel), cv2.erode(crop, kernel))
    valid = region & (step >= max(_MIN_EDGE_RANGE, 0.35 * contrast))
    if not np.any(valid):
        return float(2 * reach + 1)  # no usable edge along this axis at all
    # Slope (luma per pixel) and step only where they are needed.
    s = np.abs(sobel[valid]).astype(np.float32) / np.float32(8.0)
    r = step[valid].astype(np.float32)
    n = max(8, int(len(s) * _STRONGEST))
    top = np.argpartition(s, -min(n, len(s)))[-min(n, len(s)) :]
    width = _median32(r[top] / np.maximum(s[top], 1e-3))
    return float(min(width, 2 * reach + 1))


def _median32(values: np.ndarray) -> float:
    """np.median of a small float32 array, without its overhead (same float32 result)."""
    k = len(values) // 2
    if len(values) % 2:
        values.partition(k)
        return float(values[k])
    values.partition((k - 1, k))
    return float((values[k - 1] + values[k]) / np.float32(2))


__all__ = ["Quality", "measure"]
