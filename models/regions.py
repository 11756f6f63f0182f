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
from platesift.thumbs import Chroma

CPU_MODEL_STRIDE = 3
"""`proposer.frame_stride = 0` (auto) on the CPU model: every third frame. Picked on the
tracks bench's tuned scenes (docs/tracks.md): 3 finds, covers and keeps whole every pass
stride 2 does, with a third fewer inferences; 4 splits more passes."""
MARGIN_FRACTION = 0.25
MIN_MARGIN_PX = 16


@dataclass(frozen=True)
class Crop:
    """A copy of part of a frame's luma, and where it sits in the frame (`x`, `y`: even, so
    that `chroma`, the copy of the same part of the 4:2:0 chroma planes when the decoder
    handed them out, lines up with it)."""

    x: int
    y: int
    pixels: np.ndarray = field(repr=False, compare=False)
    chroma: Chroma | None = field(default=None, repr=False, compare=False)

    @property
    def nbytes(self) -> int:
        extra = 0 if self.chroma is None else self.chroma[0].nbytes + self.chroma[1].nbytes
        return int(self.pixels.nbytes) + int(extra)


def _grow(box: Box, width: int, height: int) -> Box:
    """`box` with a margin, its corners moved out to even pixels (the chroma grid)."""
    x1, y1, x2, y2 = box
    mx = max(MIN_MARGIN_PX, round((x2 - x1) * MARGIN_FRACTION))
    my = max(MIN_MARGIN_PX, round((y2 - y1) * MARGIN_FRACTION))
    x1, y1, x2, y2 = max(0, x1 - mx), max(0, y1 - my), min(width, x2 + mx), min(height, y2 + my)
    return (x1 - x1 % 2, y1 - y1 % 2, min(width, x2 + x2 % 2), min(height, y2 + y2 % 2))


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


def crop_regions(
    luma: np.ndarray, rois: Sequence[Box], chroma: Chroma | None = None
) -> tuple[Crop, ...]:
    """Copies of `luma` (and `chroma`) around `rois` (grown by a margin, overlaps merged);
    the whole frame when there is no ROI."""
    height, width = luma.shape[:2]
    boxes = merge_boxes([_grow(b, width, height) for b in rois]) or [(0, 0, width, height)]
    crops = []
    for x1, y1, x2, y2 in boxes:
        part = None
        if chroma is not None:
            cx1, cy1, cx2, cy2 = x1 // 2, y1 // 2, (x2 + 1) // 2, (y2 + 1) // 2
            part = (
                np.ascontiguousarray(chroma[0][cy1:cy2, cx1:cx2]),
                np.ascontiguousarray(chroma[1][cy1:cy2, cx1:cx2]),
            )
        crops.append(Crop(x1, y1, np.ascontiguousarray(luma[y1:y2, x1:x2]), part))
    return tuple(crops)


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


def _edge_shift(old: tuple[int, int], new: tuple[int, int], limit: int) -> float:
    """How far a moving object moved along one axis, from its box's two edges: an edge on the
    frame's border (where the object enters or leaves) says nothing, so only the others count."""
    deltas = [
        n - o
        for o, n, border in ((old[0], new[0], 0), (old[1], new[1], limit))
        if o != border and n != border
    ]
    return sum(deltas) / len(deltas) if deltas else 0.0


def _best_overlap(box: Box, boxes: Sequence[Box]) -> Box | None:
    def area(b: Box) -> int:
        w, h = min(box[2], b[2]) - max(box[0], b[0]), min(box[3], b[3]) - max(box[1], b[1])
        return w * h if w > 0 and h > 0 else 0

    best = max(boxes, key=lambda b: (area(b), b), default=None)
    return best if best is not None and area(best) > 0 else None


def proposal_stride(setting: int, backend: str) -> int:
    """The frame stride of `proposer.frame_stride` for the backend that runs: 0 (auto) means
    CPU_MODEL_STRIDE on the CPU model, where inference costs, and every frame elsewhere (the
    Edge TPU keeps up; the OpenCV proposer is cheap)."""
    if setting > 0:
        return setting
    return CPU_MODEL_STRIDE if backend == "tflite" else 1


def carry_proposals(
    found: Sequence[Proposal],
    rois_then: Sequence[Box],
    rois_now: Sequence[Box],
    crops_now: Sequence[Crop],
    size: tuple[int, int],
    predicted: Sequence[Box | None] = (),
) -> list[tuple[int, Proposal]]:
    """The proposals of an earlier frame moved along to this frame, for frames the proposer
    skips (`proposer.frame_stride`): a box goes where its plate track predicts it
    (`predicted[i]`, when the track has a velocity), else as the motion box it lies in moved
    (judged by the edges off the frame border), and lands in this frame's crop that holds its
    centre. Boxes whose motion is gone, or that leave every crop, are dropped.
    Returns (crop index, proposal in frame pixels), best first."""
    width, height = size
    out = []
    for n, p in enumerate(found):
        then = _best_overlap(p.box, rois_then)
        now = _best_overlap(then, rois_now) if then is not None else None
        if then is None or now is None:
            continue
        guess = predicted[n] if n < len(predicted) else None
        if guess is not None:
            x1, y1, x2, y2 = guess
            box = (max(0, x1), max(0, y1), min(width, x2), min(height, y2))
        else:
            dx = round(_edge_shift((then[0], then[2]), (now[0], now[2]), width))
            dy = round(_edge_shift((then[1], then[3]), (now[1], now[3]), height))
            x1, y1, x2, y2 = p.box
            box = (max(0, x1 + dx), max(0, y1 + dy), min(width, x2 + dx), min(height, y2 + dy))
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        for i, crop in enumerate(crops_now):
            ch, cw = crop.pixels.shape[:2]
            if crop.x <= cx < crop.x + cw and crop.y <= cy < crop.y + ch:
                clipped = (
                    max(box[0], crop.x),
                    max(box[1], crop.y),
                    min(box[2], crop.x + cw),
                    min(box[3], crop.y + ch),
                )
                out.append((i, Proposal(clipped, p.score)))
                break
    out.sort(key=lambda item: (-item[1].score, item[1].box))
    return out


__all__ = [
    "CPU_MODEL_STRIDE",
    "Crop",
    "carry_proposals",
    "crop_regions",
    "merge_boxes",
    "proposal_stride",
    "propose_on_batch",
]
