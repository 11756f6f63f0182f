"""Regions worth looking at: crops of the source-resolution luma around the motion, and
proposing on them.

Kept frames hand the proposer copies of these crops, not the whole frame, so the frame's
buffer is released at once and a backlog of frames waiting for the proposer costs little
memory; the decoder keeps decoding meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from models.proposer import Box, Proposal, Proposer, shifted

MARGIN_FRACTION = 0.25
MIN_MARGIN_PX = 16


@dataclass(frozen=True)
class Crop:
    """A copy of part of a frame's luma, and where it sits in the frame."""

    x: int
    y: int
    pixels: np.ndarray = field(repr=False, compare=False)

    @property
    def nbytes(self) -> int:
        return int(self.pixels.nbytes)


def _grow(box: Box, width: int, height: int) -> Box:
    x1, y1, x2, y2 = box
    mx = max(MIN_MARGIN_PX, round((x2 - x1) * MARGIN_FRACTION))
    my = max(MIN_MARGIN_PX, round((y2 - y1) * MARGIN_FRACTION))
    return (max(0, x1 - mx), max(0, y1 - my), min(width, x2 + mx), min(height, y2 + my))


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def merge_boxes(boxes: Sequence[Box]) -> list[Box]:
    """Union overlapping boxes until none overlap; sorted, so the result is deterministic."""
    merged = [b for b in boxes if b[2] > b[0] and b[3] > b[1]]
    changed = True
    while changed:
        changed = False
        out: list[Box] = []
        for box in merged:
            for i, other in enumerate(out):
                if _overlap(box, other):
                    out[i] = (
                        min(box[0], other[0]),
                        min(box[1], other[1]),
                        max(box[2], other[2]),
                        max(box[3], other[3]),
                    )
                    changed = True
                    break
            else:
                out.append(box)
        merged = out
    return sorted(merged)


def crop_regions(luma: np.ndarray, rois: Sequence[Box]) -> tuple[Crop, ...]:
    """Copies of `luma` around `rois` (grown by a margin, overlaps merged); the whole frame
    when there is no ROI."""
    height, width = luma.shape[:2]
    boxes = merge_boxes([_grow(b, width, height) for b in rois]) or [(0, 0, width, height)]
    return tuple(Crop(x1, y1, np.ascontiguousarray(luma[y1:y2, x1:x2])) for x1, y1, x2, y2 in boxes)


def propose_on_batch(
    proposer: Proposer, batch: Sequence[Sequence[Crop]], max_regions: int
) -> list[list[tuple[int, Proposal]]]:
    """For each frame: (crop index, proposal in frame pixels), best first, at most
    `max_regions`; the crops of all the frames go to the proposer in ONE call (a device or a
    child process pays its round trip once per batch)."""
    images = [crop.pixels for crops in batch for crop in crops]
    answers = iter(proposer.propose_many(images))
    out = []
    for crops in batch:
        found: list[tuple[int, Proposal]] = []
        for i, crop in enumerate(crops):
            found += [(i, shifted(p, crop.x, crop.y)) for p in next(answers)]
        found.sort(key=lambda item: (-item[1].score, item[1].box))
        out.append(found[:max_regions])
    return out


__all__ = ["Crop", "crop_regions", "merge_boxes", "propose_on_batch"]
