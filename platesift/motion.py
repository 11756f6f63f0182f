"""Motion detection against a background model, robust to what real cameras do.

Per frame, on a small luma image (a few hundred pixels wide):
- global gain compensation: the median ratio frame/background absorbs flicker and
  auto-exposure (robust while moving objects cover less than half of the frame);
- shake-tolerant difference: a pixel only counts as changed if it differs from EVERY
  background pixel within `shake_px` (background eroded/dilated), so a camera that jitters by
  a pixel or two does not light up every edge;
- a noise-adaptive threshold (at least `noise_factor` x the robust noise level, at least
  `threshold`), then a morphological opening that removes thin streaks (rain, noise specks),
  then blobs smaller than `min_area` are ignored;
- the background follows the scene quickly where nothing moves and very slowly under moving
  objects, so slow creeping traffic is not absorbed while a parked car eventually is.

The background is seeded with the per-pixel median of the first frames, so an object that is
already moving at the start of the video is not mistaken for background.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from platesift.config import MotionSettings

_PEDESTAL = 16.0  # keeps the gain ratio sane in near-black scenes
_GAIN_LIMITS = (0.25, 4.0)
_RENORMALISE = (0.8, 1.25)  # beyond this gain the reference exposure is reset
_BLOB_MARGIN = 6  # > what the 3x3 opening and 5x5 closing reach (1 + 2 + 2 px)
_FLAT_RANGE = 6.0  # background pixels whose neighbourhood varies less are 'flat'
_STEP = 3  # the noise level is read on every 3rd pixel in each direction
_GAIN_STEP = 4  # the gain on every 4th (about 2000 pixels at 240x135: plenty for a median)


@dataclass(frozen=True)
class MotionResult:
    """What moved in one frame, in motion-frame pixels."""

    score: float  # fraction of the frame covered by moving blobs
    boxes: tuple[tuple[int, int, int, int], ...]  # (x1, y1, x2, y2), exclusive ends
    mask: np.ndarray  # uint8 0/255, moving blobs only

    @property
    def moving(self) -> bool:
        return bool(self.boxes)


class MotionDetector:
    """Background model and motion test for one video."""

    def __init__(self, settings: MotionSettings, ignore: np.ndarray | None = None) -> None:
        """`ignore`: 255 where motion does not count (camera masks), at the motion image's
        size, or None."""
        self._s = settings
        self._keep = None if ignore is None else cv2.bitwise_not(ignore)
        self._bg: np.ndarray | None = None
        r = settings.shake_px
        self._shake_kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * r + 1, 2 * r + 1))
        self._open_kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
        self._close_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        self._grow_kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (7, 7))

    @property
    def ready(self) -> bool:
        return self._bg is not None

    def bootstrap(self, frames: list[np.ndarray]) -> None:
        """Seed the background with the per-pixel median of the first frames."""
        if not frames:
            raise ValueError("bootstrap needs at least one frame")
        stack = np.stack(frames[: self._s.bootstrap_frames]).astype(np.float32)
        self._bg = np.median(stack, axis=0).astype(np.float32)

    def detect(self, small: np.ndarray) -> MotionResult:
        """Compare one frame with the background, then update the background.

        The comparison is made in the background's reference exposure (the frame divided by
        the gain), on 8-bit images: a pixel differs by more than `t` from every background
        pixel within `shake_px` iff it is above the dilated background + t or below the
        eroded background - t. Most frames are static, and for them this is the whole cost:
        the gain, one normalised frame, 8-bit morphology of the background, one difference
        and one count (the noise level is only needed when something passes the base
        threshold), then the background update in place."""
        if self._bg is None:
            self.bootstrap([small])
        bg = self._bg
        assert bg is not None
        s = self._s

        # The background is kept at a reference exposure; `gain` maps it to this frame's.
        sample = small[::_GAIN_STEP, ::_GAIN_STEP].astype(np.float32)
        sample += _PEDESTAL
        sample /= bg[::_GAIN_STEP, ::_GAIN_STEP] + _PEDESTAL
        gain = min(max(_median(sample), _GAIN_LIMITS[0]), _GAIN_LIMITS[1])

        # This frame in reference exposure (float, for learning; never below black, so the
        # background is never either), and both as 8 bits.
        norm = small.astype(np.float32)
        norm *= np.float32(1.0 / gain)
        norm += np.float32(_PEDESTAL / gain - _PEDESTAL)
        np.maximum(norm, 0.0, out=norm)
        norm8 = cv2.convertScaleAbs(norm)
        bg8 = cv2.convertScaleAbs(bg)
        if s.shake_px > 0:
            low = cv2.erode(bg8, self._shake_kernel)
            high = cv2.dilate(bg8, self._shake_kernel)
        else:
            low = high = bg8
        diff = cv2.max(cv2.subtract(norm8, high), cv2.subtract(low, norm8))
        if self._keep is not None:
            diff = cv2.bitwise_and(diff, self._keep)

        # Below the base threshold everywhere: static, whatever the noise level.
        boxes: list[tuple[int, int, int, int]] = []
        moving: np.ndarray | None = None
        if cv2.countNonZero(_above(diff, s.threshold / gain)):
            threshold = max(s.threshold, s.noise_factor * self._noise(norm, bg, low, high, gain))
            mask = _above(diff, threshold / gain)
            if cv2.countNonZero(mask):
                moving = self._blobs(mask, boxes)
        if moving is None:
            moving = np.zeros(small.shape, np.uint8)
            area_fraction = 0.0
        else:
            area_fraction = float(cv2.countNonZero(moving)) / moving.size

        # Learn (in reference exposure): quickly where nothing moves, slowly under moving
        # objects, so an exposure change never leaves a stale strip where an object was.
        if boxes:
            under = cv2.dilate(moving, self._grow_kernel)
            cv2.accumulateWeighted(norm, bg, s.foreground_rate, mask=under)
            cv2.accumulateWeighted(norm, bg, s.background_rate, mask=cv2.bitwise_not(under))
        else:
            cv2.accumulateWeighted(norm, bg, s.background_rate)
        if not _RENORMALISE[0] < gain < _RENORMALISE[1]:
            # The scene's exposure has moved for good: make it the new reference.
            bg += _PEDESTAL
            bg *= np.float32(gain)
            bg -= _PEDESTAL
            np.maximum(bg, 0.0, out=bg)

        boxes.sort()
        return MotionResult(score=area_fraction, boxes=tuple(boxes), mask=moving)

    def _noise(
        self, norm: np.ndarray, bg: np.ndarray, low: np.ndarray, high: np.ndarray, gain: float
    ) -> float:
        """Robust noise level (frame luma), measured where the background is flat, so shake
        and texture do not count."""
        residual = np.abs(norm[::_STEP, ::_STEP] - bg[::_STEP, ::_STEP])
        spread = cv2.subtract(high[::_STEP, ::_STEP], low[::_STEP, ::_STEP])
        flat = spread < _FLAT_RANGE / gain
        if np.count_nonzero(flat) > residual.size // 20:
            residual = residual[flat]
        return 1.4826 * gain * _median(residual)

    def _blobs(self, mask: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> np.ndarray | None:
        """Clean the thresholded mask (opening: thin streaks and specks; closing: holes),
        keep blobs of at least `min_area`; append their boxes, return their mask or None.

        Only the part of the mask around its pixels is processed: with a margin wider than
        the opening and closing can reach, the result is the same as on the whole mask."""
        height, width = mask.shape
        x, y, w, h = cv2.boundingRect(mask)
        x1, y1 = max(0, x - _BLOB_MARGIN), max(0, y - _BLOB_MARGIN)
        x2, y2 = min(width, x + w + _BLOB_MARGIN), min(height, y + h + _BLOB_MARGIN)
        part = cv2.morphologyEx(mask[y1:y2, x1:x2], cv2.MORPH_OPEN, self._open_kernel)
        part = cv2.morphologyEx(part, cv2.MORPH_CLOSE, self._close_kernel)
        # 16-bit labels are much faster, and enough unless the image is huge.
        ltype = cv2.CV_16U if (y2 - y1 + 1) // 2 * ((x2 - x1 + 1) // 2) < 65535 else cv2.CV_32S
        count, labels, stats, _ = cv2.connectedComponentsWithStats(
            part, connectivity=8, ltype=ltype
        )
        min_area = max(4.0, self._s.min_area * mask.size)
        keep = stats[:, cv2.CC_STAT_AREA] >= min_area
        keep[0] = False
        for label in np.flatnonzero(keep):
            bx, by, bw, bh = (int(v) for v in stats[label, :4])
            boxes.append((x1 + bx, y1 + by, x1 + bx + bw, y1 + by + bh))
        if not boxes:
            return None
        moving = np.zeros(mask.shape, np.uint8)
        # Every blob big enough (the usual case): the cleaned mask is the moving mask.
        moving[y1:y2, x1:x2] = part if len(boxes) == count - 1 else keep[labels] * np.uint8(255)
        return moving


def _median(values: np.ndarray) -> float:
    """np.median of a scratch array (partitioned in place: no copy, no NaN checks)."""
    flat = values.reshape(-1)
    n = flat.size
    k = n // 2
    if n % 2:
        flat.partition(k)
        return float(flat[k])
    flat.partition((k - 1, k))
    return (float(flat[k - 1]) + float(flat[k])) / 2


def _above(diff: np.ndarray, threshold: float) -> np.ndarray:
    """0/255 mask of the 8-bit `diff` strictly above `threshold`."""
    return cv2.threshold(diff, math.floor(threshold), 255, cv2.THRESH_BINARY)[1]


__all__ = ["MotionDetector", "MotionResult"]
