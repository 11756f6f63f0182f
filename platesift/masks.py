"""Camera masks: areas of the picture platesift ignores (a burned-in timestamp, a tree, a busy
road nobody wants plates from), given as polygons in source pixels (`camera.masks`).

Text form, as a setting takes it: polygons separated by `;`, corners by spaces, each corner
`x,y`, e.g. `"0,0 640,0 640,40 0,40; 1700,900 1920,900 1920,1080"`. Motion inside a mask is
not motion (the motion image is masked before the threshold), and a proposed plate whose
centre lies inside a mask is dropped.
"""

from __future__ import annotations

import cv2
import numpy as np

Point = tuple[float, float]
Polygon = tuple[Point, ...]
MAX_CORNERS = 256


def parse_masks(text: str) -> tuple[Polygon, ...]:
    """The polygons of a `camera.masks` text; ValueError with a one-line reason if malformed."""
    polygons = []
    for n, part in enumerate((p for p in text.split(";") if p.strip()), start=1):
        corners = []
        for corner in part.split():
            x, sep, y = corner.partition(",")
            try:
                point = (float(x), float(y))
            except ValueError:
                point = None
            if not sep or point is None or not all(0 <= v < 1e6 for v in point):
                raise ValueError(
                    f"mask {n}: corner {corner!r} is not x,y (two numbers >= 0, source pixels)"
                )
            corners.append(point)
        if not 3 <= len(corners) <= MAX_CORNERS:
            raise ValueError(f"mask {n} has {len(corners)} corners (3 to {MAX_CORNERS})")
        polygons.append(tuple(corners))
    return tuple(polygons)


def raster(
    polygons: tuple[Polygon, ...], source: tuple[int, int], size: tuple[int, int]
) -> np.ndarray | None:
    """The masks drawn at `size` (width, height) for a `source` (width, height) picture: 255
    inside a mask, 0 elsewhere; None when there are no masks."""
    if not polygons:
        return None
    (sw, sh), (w, h) = source, size
    image = np.zeros((h, w), np.uint8)
    for polygon in polygons:
        points = np.array([(x * w / sw, y * h / sh) for x, y in polygon], np.float64)
        cv2.fillPoly(image, [np.round(points * 16).astype(np.int32)], 255, cv2.LINE_8, 4)
    return image


def masked(polygons: tuple[Polygon, ...], box: tuple[int, int, int, int]) -> bool:
    """Whether the centre of `box` (source pixels) lies inside one of the masks."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return any(
        cv2.pointPolygonTest(np.array(p, np.float32), (cx, cy), False) >= 0 for p in polygons
    )


__all__ = ["MAX_CORNERS", "Point", "Polygon", "masked", "parse_masks", "raster"]
