"""Classical OpenCV plate-region proposer: no model file, works offline, about 1 ms per call.

Dark characters on a light plate (day, or a lit plate at night) are found with a black-hat
transform (thin dark strokes on a locally lighter background), joined into text lines with a
horizontal closing and by grouping aligned pieces, and each line is scored on character-like
structure: ink fill, stroke crossings, rows that differ (characters, not bars or windows),
vertical runs, few solid columns (grilles), ink contrast and light margins above and below.
Each region of interest is grown, clipped, merged with overlapping ones, cropped, downscaled
to at most `work_max_width` on its longer side, and searched at scales 1 and 1/2 (plates of
about 8-40 source pixels); boxes are mapped back to source pixels and merged by NMS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from models.proposer import Box, Proposal, Proposer

#: Each crop is searched at these scales: text lines 3-16 px tall at scale 1 are plates of about
#: 8-34 px, and the half-scale pass covers plates of about 16-70 px.
_PASS_SCALES = (1.0, 0.5)
#: Margin added around each region of interest: a fraction of its size, and at least this many px.
_ROI_MARGIN_FRACTION = 0.15
_ROI_MARGIN_MIN_PX = 4
#: Non-maximum suppression: of candidates overlapping with IoU above this, only the best is
#: kept; so is a candidate lying mostly (this fraction of its area) inside a better one.
_NMS_IOU = 0.3
_NMS_INSIDE = 0.7
#: Text line to plate: the text of a plate is roughly 0.5-0.7 of its height.
_PLATE_FROM_TEXT_H = 2.2
_PLATE_FROM_TEXT_PAD_X = 1.1
#: Ink: black-hat response at least this many grey levels (raised to this multiple of the mean
#: response in noisy images), this fraction of the local background level, and this fraction
#: of the strongest response nearby.
_INK_ABS = 22
_INK_NOISE = 2.5
_INK_REL = 0.22
_INK_PEAK = 0.45
#: Text lines examined per pass at most (largest first), to bound the time spent scoring.
_MAX_LINES_PER_PASS = 24
#: Tallest text line (work pixels) a pass looks at; taller text is found at the next scale.
_MAX_TEXT_H = 16
#: Pieces of a text line are joined when their vertical extents overlap by this fraction of the
#: shorter one, their heights differ by at most this ratio, and the gap is at most this many
#: line heights.
_GROUP_OVERLAP = 0.6
_GROUP_HEIGHT_RATIO = 1.6
_GROUP_GAP = 1.6
#: Ink within this many line heights of a line's end still belongs to it.
_EXTEND_GAP = 0.6


def _integer(name: str, value: object, minimum: int) -> int:
    """`value` as an int >= `minimum`, or ValueError (bools and non-integers are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _ramp(value: float, lo: float, hi: float) -> float:
    """0 below `lo`, 1 above `hi`, linear in between."""
    if value <= lo:
        return 0.0
    if value >= hi:
        return 1.0
    return (value - lo) / (hi - lo)


def _area(box: Box) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def _suppressed(cand: Box, kept: Box) -> bool:
    """Whether `cand` is the same region as the better `kept` box: IoU above the NMS
    threshold, or `cand` lying mostly inside `kept` (a piece of the same plate)."""
    ix = min(cand[2], kept[2]) - max(cand[0], kept[0])
    iy = min(cand[3], kept[3]) - max(cand[1], kept[1])
    if ix <= 0 or iy <= 0:
        return False
    inter = ix * iy
    area_c = _area(cand)
    return inter > _NMS_IOU * (area_c + _area(kept) - inter) or inter >= _NMS_INSIDE * area_c


def _grow_and_merge(rois: Sequence[Box], width: int, height: int) -> list[Box]:
    """Grow every ROI by a margin, clip to the frame, and merge those that overlap."""
    boxes: list[Box] = []
    for roi in rois:
        x1, y1, x2, y2 = (int(v) for v in roi)
        if x2 <= x1 or y2 <= y1:
            continue
        mx = max(_ROI_MARGIN_MIN_PX, math.ceil(_ROI_MARGIN_FRACTION * (x2 - x1)))
        my = max(_ROI_MARGIN_MIN_PX, math.ceil(_ROI_MARGIN_FRACTION * (y2 - y1)))
        box = (max(0, x1 - mx), max(0, y1 - my), min(width, x2 + mx), min(height, y2 + my))
        if box[2] > box[0] and box[3] > box[1]:
            boxes.append(box)
    merged = True
    while merged:
        merged = False
        out: list[Box] = []
        for box in boxes:
            for i, other in enumerate(out):
                if (
                    box[0] < other[2]
                    and other[0] < box[2]
                    and box[1] < other[3]
                    and other[1] < box[3]
                ):
                    out[i] = (
                        min(box[0], other[0]),
                        min(box[1], other[1]),
                        max(box[2], other[2]),
                        max(box[3], other[3]),
                    )
                    merged = True
                    break
            else:
                out.append(box)
        boxes = out
    return sorted(boxes)


def _extend_line(ink: np.ndarray, line: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """Widen a text line over ink just beyond its ends (thin character ends lost to opening)."""
    x, y, w, h = line
    reach = max(1, round(_EXTEND_GAP * h))
    x0 = max(0, x - 2 * h)
    x1 = min(ink.shape[1], x + w + 2 * h)
    cols = np.flatnonzero(ink[y : y + h, x0:x1].any(axis=0)) + x0
    left, right = x, x + w
    for c in cols[cols >= right]:
        if c - right > reach:
            break
        right = int(c) + 1
    for c in cols[cols < left][::-1]:
        if left - 1 - c > reach:
            break
        left = int(c)
    return left, y, right - left, h


def _group_pieces(rects: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Text lines (x, y, w, h) from pieces: aligned neighbours joined, largest lines first.

    Pieces that were joined are also kept on their own when they already look like a line, in
    case the join took in something that is not part of the plate.
    """
    if rects.shape[0] == 0:
        return []
    areas = rects[:, 2] * rects[:, 3]
    order = np.lexsort((rects[:, 1], rects[:, 0], -areas))[: 2 * _MAX_LINES_PER_PASS]
    pieces = sorted((int(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rects[order])
    max_gap = _GROUP_GAP * max(p[3] for p in pieces)
    groups: list[list[int]] = []  # [x1, y1, x2, y2, number of pieces], in order of x1
    active: list[list[int]] = []  # groups that a later piece may still reach
    for x, y, w, h in pieces:
        x2, y2 = x + w, y + h
        active = [g for g in active if x - g[2] <= max_gap]
        for g in active:
            gh = g[3] - g[1]
            lo, hi = (h, gh) if h <= gh else (gh, h)
            overlap = min(y2, g[3]) - max(y, g[1])
            if (
                overlap >= _GROUP_OVERLAP * lo
                and hi <= _GROUP_HEIGHT_RATIO * lo
                and x - g[2] <= _GROUP_GAP * hi
            ):
                g[:] = [min(g[0], x), min(g[1], y), max(g[2], x2), max(g[3], y2), g[4] + 1]
                break
        else:
            group = [x, y, x2, y2, 1]
            groups.append(group)
            active.append(group)
    out = {(g[0], g[1], g[2] - g[0], g[3] - g[1]) for g in groups}
    if any(g[4] > 1 for g in groups):
        out.update(pieces)
    lines = [r for r in out if r[2] >= 2 * r[3]]
    return sorted(lines, key=lambda r: (-r[2] * r[3], r))[:_MAX_LINES_PER_PASS]


class OpenCVPlateProposer(Proposer):
    """Classical plate candidates from edge/stroke structure; the default, model-free backend."""

    backend = "opencv"
    model = None

    def __init__(
        self,
        min_score: float = 0.35,
        max_regions: int = 4,
        work_max_width: int = 640,
        min_plate_height: int = 8,
        aspect_range: tuple[float, float] = (2.0, 7.0),
    ) -> None:
        if isinstance(min_score, bool) or not isinstance(min_score, (int, float)):
            raise ValueError(f"min_score must be a number in [0, 1], got {min_score!r}")
        if not 0.0 <= float(min_score) <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {min_score!r}")
        max_regions = _integer("max_regions", max_regions, 1)
        work_max_width = _integer("work_max_width", work_max_width, 64)
        min_plate_height = _integer("min_plate_height", min_plate_height, 4)
        try:
            lo, hi = (float(v) for v in aspect_range)
        except (TypeError, ValueError):
            raise ValueError(f"aspect_range must be (min, max), got {aspect_range!r}") from None
        if not 0.5 <= lo < hi <= 20.0:
            raise ValueError(f"aspect_range must have 0.5 <= min < max <= 20, got {aspect_range!r}")
        self.min_score = float(min_score)
        self.max_regions = max_regions
        self.work_max_width = work_max_width
        self.min_plate_height = min_plate_height
        self.aspect_range = (lo, hi)
        self._k_blackhat = cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5))
        self._k_join = cv2.getStructuringElement(cv2.MORPH_RECT, (11, 1))
        self._k_open = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))

    # -- public API ---------------------------------------------------------------------------

    def propose(self, luma: np.ndarray, rois: Sequence[Box]) -> list[Proposal]:
        """Plate boxes in source pixels, best first; see `Proposer.propose`."""
        if luma.ndim != 2:
            raise ValueError(f"luma must be a 2-D plane, got shape {luma.shape}")
        if luma.dtype != np.uint8:
            raise ValueError(f"luma must be uint8, got {luma.dtype}")
        height, width = luma.shape
        if width == 0 or height == 0:
            return []
        crops = _grow_and_merge(rois, width, height) if len(rois) else [(0, 0, width, height)]
        candidates: list[Proposal] = []
        for crop in crops:
            candidates.extend(self._propose_crop(luma, crop))
        # NMS; among equal scores the larger box wins (a whole text line over one of its pieces).
        kept: list[Proposal] = []
        for cand in sorted(candidates, key=lambda p: (-p.score, -_area(p.box), p.box)):
            if cand.score < self.min_score:
                break
            if not any(_suppressed(cand.box, k.box) for k in kept):
                kept.append(cand)
        return sorted(kept, key=lambda p: (-p.score, p.box))[: self.max_regions]

    # -- internals ----------------------------------------------------------------------------

    def _propose_crop(self, luma: np.ndarray, crop: Box) -> list[Proposal]:
        """Scored candidates (source pixels) in one crop, from every pass."""
        x1, y1, x2, y2 = crop
        patch = luma[y1:y2, x1:x2]
        ch, cw = patch.shape
        scale = min(1.0, self.work_max_width / max(cw, ch))
        if scale < 1.0:
            size = (max(1, round(cw * scale)), max(1, round(ch * scale)))
            patch = cv2.resize(patch, size, interpolation=cv2.INTER_AREA)
        frame_h, frame_w = luma.shape
        out: list[Proposal] = []
        image = np.ascontiguousarray(patch)
        total = scale
        for i, pass_scale in enumerate(_PASS_SCALES):
            if i > 0:
                ratio = pass_scale / _PASS_SCALES[i - 1]
                size = (round(image.shape[1] * ratio), round(image.shape[0] * ratio))
                if min(size) < 8:
                    break
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
                total = scale * pass_scale
            fx = image.shape[1] / cw
            fy = image.shape[0] / ch
            for (bx1, by1, bx2, by2), score in self._candidates(image, total):
                sx1 = x1 + math.floor(bx1 / fx)
                sy1 = y1 + math.floor(by1 / fy)
                sx2 = x1 + math.ceil(bx2 / fx)
                sy2 = y1 + math.ceil(by2 / fy)
                box = (max(0, sx1), max(0, sy1), min(frame_w, sx2), min(frame_h, sy2))
                if box[2] - box[0] < 2 or box[3] - box[1] < 2:
                    continue
                out.append(Proposal(box=box, score=score))
        return out

    def _candidates(
        self, gray: np.ndarray, total_scale: float
    ) -> list[tuple[tuple[float, float, float, float], float]]:
        """Scored plate boxes (work pixels, float) in one work image."""
        h, w = gray.shape
        closed = cv2.morphologyEx(gray, cv2.MORPH_CLOSE, self._k_blackhat)
        blackhat = cv2.subtract(closed, gray)
        rel = cv2.divide(blackhat, closed, scale=255.0)
        # The absolute floor rises with the noise: the mean black-hat response is mostly noise.
        floor = max(float(_INK_ABS), _INK_NOISE * cv2.mean(blackhat)[0])
        _, ink_abs = cv2.threshold(blackhat, math.ceil(floor) - 1, 255, cv2.THRESH_BINARY)
        _, ink_rel = cv2.threshold(rel, int(_INK_REL * 255), 255, cv2.THRESH_BINARY)
        ink = cv2.bitwise_and(ink_abs, ink_rel)
        # Strokes only: at least a fraction of the strongest response nearby (thins blurred ink).
        peak = cv2.dilate(blackhat, self._k_blackhat)
        strong = cv2.addWeighted(blackhat, 1.0, peak, -_INK_PEAK, 0.0)
        _, strong = cv2.threshold(strong, 0, 255, cv2.THRESH_BINARY)
        ink = cv2.bitwise_and(ink, strong)
        # Text lines: strokes joined along rows; specks and thin lines (1-2 px) opened away.
        line_mask = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, self._k_join)
        line_mask = cv2.morphologyEx(line_mask, cv2.MORPH_OPEN, self._k_open)
        contours, _ = cv2.findContours(line_mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            return []
        rects = np.array([cv2.boundingRect(c) for c in contours], np.int64).reshape(-1, 4)
        min_text_h = max(3.0, 0.35 * self.min_plate_height * total_scale)
        rw, rh = rects[:, 2], rects[:, 3]
        rects = rects[(rh >= min_text_h) & (rh <= _MAX_TEXT_H) & (rw >= 0.6 * rh)].reshape(-1, 4)
        lo, hi = self.aspect_range
        out: list[tuple[tuple[float, float, float, float], float]] = []
        for line in _group_pieces(rects):
            lx, ly, lw, lh = _extend_line(ink, line)
            px1 = lx - _PLATE_FROM_TEXT_PAD_X * lh
            px2 = lx + lw + _PLATE_FROM_TEXT_PAD_X * lh
            cy = ly + lh / 2.0
            ph = lh * _PLATE_FROM_TEXT_H
            aspect = (px2 - px1) / ph
            if not lo <= aspect <= hi:
                continue
            score = _line_score(gray, ink, lx, ly, lw, lh)
            if score <= 0.0:
                continue
            top, bottom = max(0.0, cy - ph / 2), min(float(h), cy + ph / 2)
            out.append(((max(0.0, px1), top, min(float(w), px2), bottom), score))
        return out


def _line_score(gray: np.ndarray, ink: np.ndarray, x: int, y: int, w: int, h: int) -> float:
    """Plate-likeness in [0, 1] of the text line at (x, y, w, h) of a work image.

    A product of soft gates on character-like structure, cheapest first so that most non-text
    lines are rejected after a few array operations.
    """
    band_i = ink[y : y + h, x : x + w] > 0
    # Ink fill: text covers roughly a third to a half of its line.
    fill = float(np.count_nonzero(band_i)) / (w * h)
    score = _ramp(fill, 0.2, 0.35) * (1.0 - _ramp(fill, 0.68, 0.8))
    if score == 0.0:
        return 0.0
    # Stroke crossings along three rows through the line: several per character-sized step
    # (not a blob, not a dense mesh).
    rows = band_i[[h // 4, h // 2, (3 * h) // 4], :]
    crossings = float(np.count_nonzero(np.diff(rows.view(np.int8), axis=1) == 1)) / 3.0
    per_char = crossings / max(w / h, 1.0)
    score *= _ramp(crossings, 2.0, 4.0) * (1.0 - _ramp(crossings, 22.0, 30.0))
    score *= _ramp(per_char, 0.45, 1.0) * (1.0 - _ramp(per_char, 2.2, 3.0))
    # Rows that disagree: characters have horizontal strokes, bars and windows do not.
    any_row = rows.any(axis=0)
    n_any = int(np.count_nonzero(any_row))
    disagree = float(np.count_nonzero(any_row & ~rows.all(axis=0))) / max(1, n_any)
    score *= _ramp(disagree, 0.2, 0.5)
    if score == 0.0:
        return 0.0
    # Contrast of the ink against the light plate background between the strokes.
    band_g = gray[y : y + h, x : x + w]
    ink_level = float(band_g[band_i].mean())
    bg_level = max(float(band_g[~band_i].mean()), 1.0)
    score *= _ramp((bg_level - ink_level) / bg_level, 0.25, 0.6)
    # The margins just above and below the text are plate background too: about as light as
    # the background between the strokes (not much darker, not much lighter).
    m = max(1, round(0.25 * h))
    for part in (gray[max(0, y - m) : y, x : x + w], gray[y + h : y + h + m, x : x + w]):
        level = float(part.mean()) / bg_level if part.size else 0.0
        score *= _ramp(level, 0.45, 0.75) * (1.0 - _ramp(level, 1.3, 1.6))
    if score == 0.0:
        return 0.0
    # Vertical ink runs per inked column: 1 through bars, often 2-3 through characters, many
    # through a mesh; and few columns solid from top to bottom (grille slats).
    col = band_i.view(np.int8)
    starts = np.count_nonzero(np.diff(col, axis=0) == 1, axis=0) + col[0]
    inked = starts > 0
    n_inked = max(1, int(np.count_nonzero(inked)))
    runs = float(starts.sum()) / n_inked
    score *= (0.5 + 0.5 * _ramp(runs, 1.0, 1.3)) * (1.0 - _ramp(runs, 1.95, 2.4))
    solid = float(np.count_nonzero(col.sum(axis=0) > 0.9 * h)) / n_inked
    score *= 1.0 - _ramp(solid, 0.55, 0.85)
    return round(math.sqrt(score), 4)


__all__ = ["OpenCVPlateProposer"]
