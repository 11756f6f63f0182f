"""The frame filter: turns each decoded frame into a verdict (kept, or a rejection reason).

It runs in its own thread, and makes every reduced image itself (the small motion image of
each frame, the analysis image around motion), so the decoder's thread only decodes.

Order of the tests, cheapest first: `static` (nothing moves against the background), then on
the moving region only: `dark`, `flat` (no meaningful structure), `blurry`.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pykka
from pykka.typing import ActorMemberMixin, proxy_method

from actors.messages import Chunk, Verdict, VideoInfo
from models.proposer import Box
from platesift.config import AnalysisSettings, MotionSettings, QualitySettings, Settings
from platesift.downscale import motion_image, motion_size, shrink
from platesift.masks import Polygon, parse_masks, raster
from platesift.motion import MotionDetector
from platesift.priority import lower_this_thread
from platesift.quality import measure


class FrameFilter:
    """Judges the frames of one video, chunk after chunk, in order.

    Every frame gets the motion test on its small image (`motion_image`). Only a frame
    that moved is looked at again: the analysis-resolution image of the region around its
    motion is made from the full frame (exact box averaging, on a grid aligned with the
    whole-frame analysis image, so it is the same pixels), and its quality measured there.
    """

    def __init__(
        self, analysis: AnalysisSettings, motion: MotionSettings, quality: QualitySettings
    ) -> None:
        self._analysis = analysis
        self._motion = motion
        self._quality = quality
        self._detector = MotionDetector(motion)
        self._masks: tuple[Polygon, ...] = ()
        self._info: VideoInfo | None = None
        self._grid = (1, 1)
        self._motion_size = (1, 1)

    def start_video(self, info: VideoInfo, settings: Settings | None = None) -> None:
        """Forget the previous video (and take its settings); the next chunk seeds a new
        background."""
        if settings is not None:
            self._analysis = settings.analysis
            self._motion = settings.motion
            self._quality = settings.quality
            self._masks = parse_masks(settings.camera.masks)
        self._info = info
        # Analysis pixels on multiples of the grid start on whole source pixels.
        aw, ah = info.analysis_width, info.analysis_height
        self._grid = (aw // math.gcd(aw, info.width), ah // math.gcd(ah, info.height))
        self._motion_size = motion_size(info.width, info.height, aw, self._analysis.motion_width)
        ignore = raster(self._masks, (info.width, info.height), self._motion_size)
        self._detector = MotionDetector(self._motion, ignore)

    def judge(self, chunk: Chunk) -> tuple[Verdict, ...]:
        if self._info is None:
            raise RuntimeError("FrameFilter.judge() called before start_video()")
        if not chunk.frames:
            return ()
        info = self._info
        smalls = [motion_image(frame.full, self._motion_size) for frame in chunk.frames]
        if not self._detector.ready:
            self._detector.bootstrap(smalls)
        mw, mh = self._motion_size
        sx, sy = info.width / mw, info.height / mh
        q = self._quality
        verdicts = []
        for frame, small in zip(chunk.frames, smalls):
            result = self._detector.detect(small)
            if not result.moving:
                verdicts.append(
                    Verdict(index=frame.index, reason="static", lighting=0.0, blur=0.0, motion=0.0)
                )
                continue
            region, mask = self._analysis_region(frame.full, result.mask)
            quality = measure(region, mask, q.max_edge_width)
            if quality.lighting < q.dark_level:
                reason: str | None = "dark"
            elif quality.contrast < q.flat_contrast:
                reason = "flat"
            elif quality.edge_width > q.max_edge_width:
                reason = "blurry"
            else:
                reason = None
            rois = tuple(_scale_box(b, sx, sy, info.width, info.height) for b in result.boxes)
            verdicts.append(
                Verdict(
                    index=frame.index,
                    reason=reason,
                    lighting=quality.lighting,
                    blur=quality.clarity,
                    motion=result.score,
                    rois=rois,
                )
            )
        return tuple(verdicts)

    def _analysis_region(
        self, full: np.ndarray, motion_mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The analysis-resolution image around the moving pixels, and the motion mask
        upsampled (nearest neighbour) onto it."""
        info = self._info
        assert info is not None
        aw, ah = info.analysis_width, info.analysis_height
        mh, mw = motion_mask.shape
        gx, gy = self._grid
        x, y, w, h = cv2.boundingRect(motion_mask)
        # Analysis pixel a shows motion pixel floor(a * m / a_size): the range covering the
        # box, widened to the grid.
        ax1 = x * aw // mw // gx * gx
        ax2 = min(aw, _ceil_div(_ceil_div((x + w) * aw, mw), gx) * gx)
        ay1 = y * ah // mh // gy * gy
        ay2 = min(ah, _ceil_div(_ceil_div((y + h) * ah, mh), gy) * gy)
        src = full[
            ay1 * info.height // ah : ay2 * info.height // ah,
            ax1 * info.width // aw : ax2 * info.width // aw,
        ]
        region = shrink(src, (ax2 - ax1, ay2 - ay1))
        rows = np.arange(ay1, ay2) * mh // ah
        cols = np.arange(ax1, ax2) * mw // aw
        return region, motion_mask[rows[:, None], cols]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _scale_box(
    box: tuple[int, int, int, int], sx: float, sy: float, width: int, height: int
) -> Box:
    x1, y1, x2, y2 = box
    return (
        max(0, math.floor(x1 * sx)),
        max(0, math.floor(y1 * sy)),
        min(width, math.ceil(x2 * sx)),
        min(height, math.ceil(y2 * sy)),
    )


class MotionActor(pykka.ThreadingActor, FrameFilter):
    """A `FrameFilter` in its own thread (at `resources.filter_nice` below decoding), called
    through a `MotionProxy`."""

    def __init__(
        self,
        analysis: AnalysisSettings,
        motion: MotionSettings,
        quality: QualitySettings,
        nice: int = 0,
    ) -> None:
        pykka.ThreadingActor.__init__(self)
        FrameFilter.__init__(self, analysis, motion, quality)
        self._nice = nice

    def on_start(self) -> None:
        lower_this_thread(self._nice)


class MotionProxy(ActorMemberMixin, pykka.ActorProxy[MotionActor]):
    """Typed proxy of a `MotionActor`: `cast(MotionProxy, ref.proxy())`."""

    start_video = proxy_method(MotionActor.start_video)
    judge = proxy_method(MotionActor.judge)


__all__ = ["FrameFilter", "MotionActor", "MotionProxy"]
