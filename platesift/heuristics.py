"""Per-frame and per-region heuristics written to frames.jsonl: distance and confidence."""

from __future__ import annotations

from platesift.records import Box


def distance_m(box: Box, focal_length_px: float, plate_width_m: float) -> float | None:
    """Pinhole-model distance to a plate whose image is `box` (source pixels); None if unknown."""
    width_px = box[2] - box[0]
    if focal_length_px <= 0 or width_px <= 0:
        return None
    return round(focal_length_px * plate_width_m / width_px, 2)


def confidence(
    *, lighting: float, dark_level: float, clarity: float, best_score: float | None
) -> float:
    """How likely this frame shows a readable plate, in [0, 1].

    The product of three factors: the best region's score (0.3 when no region was proposed,
    since the proposer can miss), how far the region's light is above the dark level
    (0.5 .. 1), and the square root of its clarity (edge sharpness, 0 .. 1).
    """
    region = 0.3 if best_score is None else max(0.0, min(1.0, best_score))
    light = 0.5 + 0.5 * max(0.0, min(1.0, (lighting - dark_level) / max(dark_level, 1.0)))
    sharp = max(0.0, min(1.0, clarity)) ** 0.5
    return round(region * light * sharp, 4)


__all__ = ["confidence", "distance_m"]
