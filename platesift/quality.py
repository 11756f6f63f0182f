"""Frame quality where it matters: lighting, contrast and sharpness of the moving region.

A dark night frame with a lit plate on a moving car is not dark, because lighting is the
bright end (p99) of the moving region, where a lit plate shows, not the frame's mean.
Sharpness is the width of the sharpest edges, measured separately along x and y, so motion
blur (which widens edges along the direction of travel only) is caught even though edges
across it stay crisp.
"""

from __future__ import annotations

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
        x1, y1, x2, y2 = 0, 0, analysis.shape[1], analysis.shape[0]
        region_mask = np.full(analysis.shape, True)
    else:
        x1, y1, w, h = cv2.boundingRect(mask)
        if w == 0 or h == 0:
            return Quality(lighting=0.0, contrast=0.0, edge_width=float("inf"))
        x2, y2 = x1 + w, y1 + h
        region_mask = mask[y1:y2, x1:x2] > 0
    crop = analysis[y1:y2, x1:x2]
    values = crop[region_mask]
    p5, p95, p99 = np.percentile(values, (5, 95, 99))
    contrast = float(p95 - p5)
    width = max(
        _edge_width(crop, region_mask, axis=0, contrast=contrast, max_width=max_width),
        _edge_width(crop, region_mask, axis=1, contrast=contrast, max_width=max_width),
    )
    return Quality(lighting=float(p99), contrast=contrast, edge_width=width)


def _edge_width(
    crop: np.ndarray, region: np.ndarray, axis: int, contrast: float, max_width: float
) -> float:
    """Typical width of the steepest edges along one axis (0 = along x, 1 = along y)."""
    reach = int(np.ceil(3 * max_width)) + 1
    if axis == 0:
        slope = np.abs(cv2.Sobel(crop, cv2.CV_32F, 1, 0, ksize=3)) / 8.0
        kernel = np.ones((1, 2 * reach + 1), np.uint8)
    else:
        slope = np.abs(cv2.Sobel(crop, cv2.CV_32F, 0, 1, ksize=3)) / 8.0
        kernel = np.ones((2 * reach + 1, 1), np.uint8)
    step = (cv2.dilate(crop, kernel) - cv2.erode(crop, kernel)).astype(np.float32)
    valid = region & (step >= max(_MIN_EDGE_RANGE, 0.35 * contrast))
    if not np.any(valid):
        return float(2 * reach + 1)  # no usable edge along this axis at all
    s = slope[valid]
    r = step[valid]
    n = max(8, int(len(s) * _STRONGEST))
    top = np.argpartition(s, -min(n, len(s)))[-min(n, len(s)) :]
    width = np.median(r[top] / np.maximum(s[top], 1e-3))
    return float(min(width, 2 * reach + 1))


__all__ = ["Quality", "measure"]
