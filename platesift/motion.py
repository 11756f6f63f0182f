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

from dataclasses import dataclass

import cv2
import numpy as np

from platesift.config import MotionSettings

_PEDESTAL = 16.0  # keeps the gain ratio sane in near-black scenes
_GAIN_LIMITS = (0.25, 4.0)
_RENORMALISE = (0.8, 1.25)  # beyond this gain the reference exposure is reset
_FLAT_RANGE = 6.0  # background pixels whose neighbourhood varies less are 'flat'
_STEP = 3  # global statistics (gain, noise) are read on every 3rd pixel in each direction


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

    def __init__(self, settings: MotionSettings) -> None:
        self._s = settings
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
        """Compare one frame with the background, then update the background."""
        if self._bg is None:
            self.bootstrap([small])
        bg = self._bg
        assert bg is not None
        frame = small.astype(np.float32)
        s = self._s

        # The background is kept at a reference exposure; `gain` maps it to this frame's.
        ratio = (frame[::_STEP, ::_STEP] + _PEDESTAL) / (bg[::_STEP, ::_STEP] + _PEDESTAL)
        gain = float(np.clip(np.median(ratio), *_GAIN_LIMITS))
        expected = gain * (bg + _PEDESTAL) - _PEDESTAL

        if s.shake_px > 0:
            low = cv2.erode(expected, self._shake_kernel)
            high = cv2.dilate(expected, self._shake_kernel)
        else:
            low = high = expected
        diff = np.maximum(np.maximum(frame - high, low - frame), 0.0)

        # Noise is measured where the background is flat, so shake and texture do not count.
        residual = np.abs(frame[::_STEP, ::_STEP] - expected[::_STEP, ::_STEP])
        flat = (high[::_STEP, ::_STEP] - low[::_STEP, ::_STEP]) < _FLAT_RANGE
        sample = residual[flat] if np.count_nonzero(flat) > residual.size // 20 else residual
        noise = 1.4826 * float(np.median(sample))
        threshold = max(s.threshold, s.noise_factor * noise)

        mask = (diff > threshold).astype(np.uint8) * 255
        boxes: list[tuple[int, int, int, int]] = []
        moving: np.ndarray | None = None
        # Most frames are static: with nothing above threshold there is nothing to clean up,
        # label or protect, and the background learns at one rate everywhere (same result).
        if cv2.countNonZero(mask):
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._open_kernel)
            mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._close_kernel)
            count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            min_area = max(4.0, s.min_area * mask.size)
            keep = np.zeros(count, dtype=bool)
            for label in range(1, count):
                x, y, w, h, area = (int(v) for v in stats[label])
                if area >= min_area:
                    keep[label] = True
                    boxes.append((x, y, x + w, y + h))
            if boxes:
                moving = keep[labels].astype(np.uint8) * 255
        if moving is None:
            moving = np.zeros(mask.shape, np.uint8)
            area_fraction = 0.0
        else:
            area_fraction = float(cv2.countNonZero(moving)) / moving.size

        # Learn (in reference exposure): quickly where nothing moves, slowly under moving
        # objects, so an exposure change never leaves a stale strip where an object was.
        normalised = (frame + _PEDESTAL) / gain - _PEDESTAL
        if boxes:
            under = cv2.dilate(moving, self._grow_kernel) > 0
            rate = np.where(under, np.float32(s.foreground_rate), np.float32(s.background_rate))
            bg += rate * (normalised - bg)
        else:
            bg += np.float32(s.background_rate) * (normalised - bg)
        if not _RENORMALISE[0] < gain < _RENORMALISE[1]:
            # The scene's exposure has moved for good: make it the new reference.
            bg[:] = gain * (bg + _PEDESTAL) - _PEDESTAL

        boxes.sort()
        return MotionResult(score=area_fraction, boxes=tuple(boxes), mask=moving)


__all__ = ["MotionDetector", "MotionResult"]
