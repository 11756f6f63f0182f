"""The shipped plate detector's geometry: every constant that shapes the model, its box
encoding and its decoding, named once and shared by training, export and inference.

The detector is a small CenterNet-style fully convolutional net on one grey channel:

    uint8 luma [1, INPUT_SIZE, INPUT_SIZE, 1]
      -> heat [1, GRID, GRID, 1]   plate-centre probability per STRIDE x STRIDE cell
      -> box  [1, GRID, GRID, 4]   dx, dy (centre offset from the cell centre, in cells),
                                   log(w / STRIDE), log(h / STRIDE)

Decoding (numpy, beside the Edge TPU op): peaks of the heat map (3 x 3 local maxima above
the score threshold), their boxes, then greedy non-maximum suppression. `tile_plan` says at
which scales and windows an image of any size is looked at, so a far 20-pixel plate in a big
crop is never shrunk below what the model was trained to find (MIN_PLATE_PX).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from platesift.tracking import iou

INPUT_SIZE = 256
STRIDE = 4
GRID = INPUT_SIZE // STRIDE
MIN_PLATE_PX = 12
"""Narrowest plate (input pixels) the model is trained to find."""
MAX_PLATE_PX = 240
"""Widest plate (input pixels) the model is trained to find."""
TILE_OVERLAP = 64
"""Input pixels two neighbouring tiles share: a plate up to this wide lies whole in one."""
MAX_LEVEL_RATIO = TILE_OVERLAP / MIN_PLATE_PX
"""Largest step between two pyramid levels: a plate too wide to lie whole in one tile at a
level (wider than TILE_OVERLAP) is still MIN_PLATE_PX wide at the next coarser one."""
CLOSE_UP_SCALE = 0.5
"""The close-up view looks at the whole image at this fraction of the fitting scale, so a
plate that fills a close-up photo is inside the widths the model was trained on."""
CLOSE_UP_MIN_PX = 64.0
"""Detections narrower than this (input pixels) in the close-up view are dropped: the
fitting level, at twice the scale, sees those plates better (picked on the tune split)."""
CLOSE_UP_GAP = 8
"""Black input pixels between the fitting view and a close-up sharing its input."""
NMS_IOU = 0.4
MAX_DETECTIONS = 16


@dataclass(frozen=True)
class Window:
    """One view of an image in a model input: the image scaled by `scale`, the part of it from
    (x, y) that fits, placed at (ox, oy) of the INPUT_SIZE square input (black elsewhere).
    A `shared` window goes into the same input as the window before it, beside that one."""

    scale: float
    x: int
    y: int
    min_width: float = 0.0
    """Detections narrower than this (input pixels) are dropped: a finer level owns them."""
    ox: int = 0
    oy: int = 0
    shared: bool = False


def level_scales(
    height: int,
    width: int,
    min_plate_px: float,
    size: int = INPUT_SIZE,
    model_min: float = MIN_PLATE_PX,
) -> list[float]:
    """Scales at which an image is looked at, coarsest first.

    The coarsest fits the whole image into one input (never enlarged), so big plates are seen
    whole; the finest makes a `min_plate_px`-wide source plate `model_min` wide at the input
    (never enlarged either). Levels in between are at most MAX_LEVEL_RATIO apart.
    """
    fit = min(1.0, size / max(height, width, 1))
    fine = min(1.0, max(fit, model_min / max(min_plate_px, 1.0)))
    if fine <= fit * 1.05:
        return [fit]
    steps = math.ceil(math.log(fine / fit) / math.log(MAX_LEVEL_RATIO) - 1e-9)
    return [fit * (fine / fit) ** (i / steps) for i in range(steps)] + [fine]


def _starts(length: int, size: int) -> list[int]:
    if length <= size:
        return [0]
    overlap = min(TILE_OVERLAP, size // 2)
    count = math.ceil((length - overlap) / (size - overlap))
    last = length - size
    return sorted({min(round(i * last / (count - 1)), last) for i in range(count)})


def tile_plan(
    height: int,
    width: int,
    min_plate_px: float,
    size: int = INPUT_SIZE,
    model_min: float = MIN_PLATE_PX,
    close_up: bool = True,
) -> list[Window]:
    """Every view of one `height` x `width` image the model looks at, coarsest level first.

    With `close_up`, the whole image is also seen at CLOSE_UP_SCALE of the fitting scale, for
    plates too wide for the model there (a close-up photo). It rides in the fitting level's
    input, below or beside the image, when there is room (a wide or tall image); otherwise
    it takes an input of its own."""
    plan: list[Window] = []
    for level, scale in enumerate(level_scales(height, width, min_plate_px, size, model_min)):
        h, w = max(1, round(height * scale)), max(1, round(width * scale))
        plan.extend(Window(scale, x, y) for y in _starts(h, size) for x in _starts(w, size))
        if close_up and level == 0:  # the fitting level: the whole image in one input
            plan.append(_close_up(h, w, scale, size))
    return plan


def _close_up(fit_h: int, fit_w: int, fit: float, size: int) -> Window:
    scale = fit * CLOSE_UP_SCALE
    h, w = max(1, round(fit_h * CLOSE_UP_SCALE)), max(1, round(fit_w * CLOSE_UP_SCALE))
    if fit_h + CLOSE_UP_GAP + h <= size:
        return Window(scale, 0, 0, CLOSE_UP_MIN_PX, 0, size - h, shared=True)
    if fit_w + CLOSE_UP_GAP + w <= size:
        return Window(scale, 0, 0, CLOSE_UP_MIN_PX, size - w, 0, shared=True)
    return Window(scale, 0, 0, CLOSE_UP_MIN_PX)


def inputs(plan: list[Window]) -> list[list[Window]]:
    """`plan` grouped into model inputs (a shared window joins the one before it)."""
    grouped: list[list[Window]] = []
    for window in plan:
        if window.shared and grouped:
            grouped[-1].append(window)
        else:
            grouped.append([window])
    return grouped


def shrink(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` resized to `width` x `height` (not larger than it): halved by 2 x 2 averaging
    while a half is still at least the target size, then bilinear for the last step (at
    most 2x, so it does not alias), mapped exactly onto the original's pixel grid. A tenth
    of the cost of INTER_AREA at most ratios, and bilinear is what the training warps use."""
    full_h, full_w = image.shape[:2]
    factor = 1
    while image.shape[1] >= 2 * width and image.shape[0] >= 2 * height:
        h2, w2 = image.shape[0] // 2, image.shape[1] // 2
        image = cv2.resize(image[: 2 * h2, : 2 * w2], (w2, h2), interpolation=cv2.INTER_AREA)
        factor *= 2
    if factor == 1:
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    # Output pixel x samples the halved image at x * a + (a - 1) / 2, a = W / (width * factor):
    # the same point of the original image as a plain resize would.
    a, b = full_w / (width * factor), full_h / (height * factor)
    m = np.array([[a, 0.0, (a - 1) / 2], [0.0, b, (b - 1) / 2]])
    return cv2.warpAffine(
        image,
        m,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def encode_box(w: float, h: float) -> tuple[float, float]:
    """The box head's size channels for a plate `w` x `h` input pixels (what `decode` undoes)."""
    return math.log(max(w, 1.0) / STRIDE), math.log(max(h, 1.0) / STRIDE)


def decode(
    heat: np.ndarray,
    box: np.ndarray,
    threshold: float,
    limit: int = MAX_DETECTIONS,
    stride: int = STRIDE,
) -> list[tuple[float, float, float, float, float]]:
    """Detections `(x1, y1, x2, y2, score)` in input pixels from one input's head outputs
    (`heat` G x G, `box` G x G x 4, both dequantised), best first, before NMS."""
    peaks = (heat >= cv2.dilate(heat, np.ones((3, 3), np.uint8))) & (heat >= threshold)
    ys, xs = np.nonzero(peaks)
    if len(ys) == 0:
        return []
    scores = heat[ys, xs]
    order = np.lexsort((xs, ys, -scores))[:limit]
    found = []
    for i in order:
        y, x = int(ys[i]), int(xs[i])
        dx, dy, lw, lh = (float(v) for v in box[y, x])
        cx, cy = (x + 0.5 + dx) * stride, (y + 0.5 + dy) * stride
        w, h = math.exp(min(lw, 6.0)) * stride, math.exp(min(lh, 6.0)) * stride
        found.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, float(scores[i])))
    return found


def suppress(
    boxes: list[tuple[float, float, float, float, float]], limit: int, threshold: float = NMS_IOU
) -> list[tuple[float, float, float, float, float]]:
    """Greedy non-maximum suppression, best score first (ties by position), at most `limit`."""
    kept: list[tuple[float, float, float, float, float]] = []
    for b in sorted(boxes, key=lambda b: (-b[4], b[0], b[1], b[2], b[3])):
        if len(kept) >= limit:
            break
        if all(iou(b, k) < threshold for k in kept):
            kept.append(b)
    return kept


__all__ = [
    "CLOSE_UP_GAP",
    "CLOSE_UP_MIN_PX",
    "CLOSE_UP_SCALE",
    "GRID",
    "INPUT_SIZE",
    "MAX_DETECTIONS",
    "MAX_LEVEL_RATIO",
    "MAX_PLATE_PX",
    "MIN_PLATE_PX",
    "STRIDE",
    "TILE_OVERLAP",
    "Window",
    "decode",
    "encode_box",
    "inputs",
    "iou",
    "level_scales",
    "shrink",
    "suppress",
    "tile_plan",
]
