"""How readable one plate crop is likely to be: the score that picks a track's best crops.

Each part is in (0, 1] and the quality is their weighted geometric mean, so one bad part
(a plate cut by the frame's edge, a smear) pulls a crop down whatever the others say:

- `size`: the plate's width in source pixels, on a log scale from MIN_WIDTH_PX (barely a
  plate) to FULL_WIDTH_PX (as much as any reader needs);
- `sharpness`: the edge width of the plate's sharpest edges along its worst axis
  (`platesift.quality`, the measure the blur filter uses), so motion blur along the text
  counts;
- `contrast` and `lighting`: the plate's p95 - p5 spread and its p99 level;
- `aspect`: plates are wider than tall; a box much squarer than a plate is seen at an angle
  or is not a plate;
- `score`: the proposer's;
- `edge`: a box touching the frame's border is likely cut off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from platesift.quality import measure

MIN_WIDTH_PX = 12.0
FULL_WIDTH_PX = 160.0
FULL_CONTRAST = 96.0
FULL_LIGHTING = 128.0
MIN_PLATE_ASPECT = 1.8
"""Width over height of the squarest plates (US, 2:1) seen face on, less a margin."""
FLOOR = 0.05
"""No part is below this, so the geometric mean stays defined and ordered."""
WEIGHTS = {
    "size": 0.35,
    "sharpness": 0.25,
    "contrast": 0.1,
    "lighting": 0.05,
    "aspect": 0.1,
    "score": 0.15,
}
EDGE_PENALTY = 0.5
"""Factor for a box touching the frame's border."""
DECIMALS = 4


@dataclass(frozen=True)
class CropQuality:
    """The parts of one crop's quality and their weighted geometric mean (`value`)."""

    size: float
    sharpness: float
    contrast: float
    lighting: float
    aspect: float
    score: float
    edge: float

    @property
    def value(self) -> float:
        log = sum(w * math.log(getattr(self, name)) for name, w in WEIGHTS.items())
        return round(math.exp(log / sum(WEIGHTS.values())) * self.edge, DECIMALS)

    def parts(self) -> dict[str, float]:
        """Every part by name (for tracks.jsonl)."""
        return {name: getattr(self, name) for name in (*WEIGHTS, "edge")}


def _part(value: float) -> float:
    return round(min(1.0, max(FLOOR, value)), DECIMALS)


def crop_quality(
    plate: np.ndarray, score: float, *, touches_edge: bool, max_edge_px: float = 6.0
) -> CropQuality:
    """The quality of `plate`, the luma inside one region's box (source pixels)."""
    height, width = plate.shape[:2]
    if width == 0 or height == 0:
        return CropQuality(FLOOR, FLOOR, FLOOR, FLOOR, FLOOR, FLOOR, EDGE_PENALTY)
    q = measure(np.ascontiguousarray(plate), None, max_edge_px)
    size = math.log(max(width, 1) / MIN_WIDTH_PX) / math.log(FULL_WIDTH_PX / MIN_WIDTH_PX)
    return CropQuality(
        size=_part(size),
        sharpness=_part(q.clarity),
        contrast=_part(q.contrast / FULL_CONTRAST),
        lighting=_part(q.lighting / FULL_LIGHTING),
        aspect=_part(width / max(height, 1) / MIN_PLATE_ASPECT),
        score=_part(score),
        edge=EDGE_PENALTY if touches_edge else 1.0,
    )


__all__ = ["FULL_WIDTH_PX", "MIN_WIDTH_PX", "WEIGHTS", "CropQuality", "crop_quality"]
