"""The frame filter: turns each decoded frame into a verdict (kept, or a rejection reason).

Order of the tests, cheapest first: `static` (nothing moves against the background), then on
the moving region only: `dark`, `flat` (no meaningful structure), `blurry`.
"""

from __future__ import annotations

import math

import cv2
import pykka

from actors.decoder import analysis_size, shrink
from actors.messages import Chunk, Verdict, VideoInfo
from models.proposer import Box
from platesift.config import AnalysisSettings, MotionSettings, QualitySettings, Settings
from platesift.motion import MotionDetector
from platesift.quality import measure


class FrameFilter:
    """Judges the frames of one video, chunk after chunk, in order."""

    def __init__(
        self, analysis: AnalysisSettings, motion: MotionSettings, quality: QualitySettings
    ) -> None:
        self._analysis = analysis
        self._motion = motion
        self._quality = quality
        self._detector = MotionDetector(motion)
        self._info: VideoInfo | None = None
        self._motion_size = (0, 0)

    def start_video(self, info: VideoInfo, settings: Settings | None = None) -> None:
        """Forget the previous video (and take its settings); the next chunk seeds a new
        background."""
        if settings is not None:
            self._analysis = settings.analysis
            self._motion = settings.motion
            self._quality = settings.quality
        self._info = info
        self._detector = MotionDetector(self._motion)
        self._motion_size = analysis_size(
            info.analysis_width, info.analysis_height, self._analysis.motion_width
        )

    def judge(self, chunk: Chunk) -> tuple[Verdict, ...]:
        if self._info is None:
            raise RuntimeError("FrameFilter.judge() called before start_video()")
        info = self._info
        small = [shrink(f.analysis, self._motion_size) for f in chunk.frames]
        if not self._detector.ready and small:
            self._detector.bootstrap(small)
        mw, mh = self._motion_size
        sx, sy = info.width / mw, info.height / mh
        q = self._quality
        verdicts = []
        for frame, img in zip(chunk.frames, small):
            result = self._detector.detect(img)
            if not result.moving:
                verdicts.append(
                    Verdict(index=frame.index, reason="static", lighting=0.0, blur=0.0, motion=0.0)
                )
                continue
            mask = cv2.resize(
                result.mask,
                (info.analysis_width, info.analysis_height),
                interpolation=cv2.INTER_NEAREST,
            )
            quality = measure(frame.analysis, mask, q.max_edge_width)
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


class MotionActor(pykka.ThreadingActor):
    """Runs a `FrameFilter` in its own thread."""

    def __init__(
        self, analysis: AnalysisSettings, motion: MotionSettings, quality: QualitySettings
    ) -> None:
        super().__init__()
        self.filter = FrameFilter(analysis, motion, quality)

    def ping(self) -> bool:
        return True

    def start_video(self, info: VideoInfo, settings: Settings | None = None) -> None:
        self.filter.start_video(info, settings)

    def judge(self, chunk: Chunk) -> tuple[Verdict, ...]:
        return self.filter.judge(chunk)


__all__ = ["FrameFilter", "MotionActor"]
