"""The decoder: turns a source video into chunks of low-resolution luma frames.

The cheap path is the normal path: OpenCV is asked for the decoder's raw luma plane
(`CAP_PROP_CONVERT_RGB` off), which costs nothing on top of decoding, instead of a full-size
colour conversion. Only sources whose raw frames are not planar YUV/grey fall back to
decoding in colour and converting (logged once, much slower).

Chunks are sized by a memory budget, so memory stays bounded whatever the video's length.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import cv2
import numpy as np
import pykka

from actors.messages import Chunk, Frame, VideoInfo
from platesift.config import AnalysisSettings
from platesift.errors import NasUnavailableError, VideoError

logger = logging.getLogger(__name__)

# Raw pixel formats whose first plane is luma (FourCC of AVPixelFormat as OpenCV reports it).
_LUMA_FORMATS = {
    b"I420",
    b"YV12",
    b"NV12",
    b"NV21",
    b"Y800",
    b"J420",
    b"Y42B",
    b"444P",
    b"J422",
    b"J444",
    b"YUY2",
}
MIN_FPS, MAX_FPS = 0.1, 1000.0
MAX_DURATION_S = 7 * 24 * 3600.0  # a week of video in one file is absurd
TRUNCATION_TOLERANCE = 0.05  # fewer than 95% of the declared frames decodable = truncated
MIN_CHUNK_FRAMES = 4
MAX_CHUNK_FRAMES = 64

try:  # quiet the per-frame "unsupported picture format" warning of the raw-plane path
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
except AttributeError:  # pragma: no cover - older OpenCV builds
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")


def _fourcc(value: float) -> bytes:
    v = int(value)
    return bytes((v >> (8 * i)) & 0xFF for i in range(4))


def analysis_size(width: int, height: int, target_width: int) -> tuple[int, int]:
    """Analysis frame size: at most `target_width` wide (never upscaled), even dimensions."""
    w = min(target_width, width)
    w -= w % 2
    h = max(2, round(height * w / width / 2) * 2)
    return w, h


class Decoder:
    """Opens one source at a time and hands out chunks of consecutive frames."""

    def __init__(self, settings: AnalysisSettings) -> None:
        self._settings = settings
        self._cap: cv2.VideoCapture | None = None
        self._info: VideoInfo | None = None
        self._next_index = 0
        self._pending: np.ndarray | None = None
        self._chunk_frames = MIN_CHUNK_FRAMES
        self._ended = False

    # --- lifecycle ----------------------------------------------------------------------------

    def open(self, path: str, size: int, settings: AnalysisSettings | None = None) -> VideoInfo:
        """Open `path` (already checked to exist on the NAS) and validate its metadata."""
        self.close()
        if settings is not None:
            self._settings = settings
        cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_CONVERT_RGB, 0])
        if not cap.isOpened():
            self._raise_if_gone(path, size)
            raise VideoError(f"{path} is not a video OpenCV/FFmpeg can open")
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        declared = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        if width <= 0 or height <= 0:
            raise VideoError(f"{path} has no video stream with a frame size")
        if not math.isfinite(fps) or fps < MIN_FPS or fps > MAX_FPS:
            raise VideoError(f"{path} declares an absurd frame rate ({fps:g} fps)")
        if not math.isfinite(declared) or declared < 0 or declared / fps > MAX_DURATION_S:
            raise VideoError(f"{path} declares an absurd frame count ({declared:g})")
        luma = _fourcc(cap.get(cv2.CAP_PROP_CODEC_PIXEL_FORMAT)) in _LUMA_FORMATS
        first = self._read_raw(cap, luma, width, height)
        if first is None and luma:
            # The raw plane was not what we expected: fall back to the colour path.
            cap.release()
            cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
            luma = False
            first = self._read_raw(cap, luma, width, height) if cap.isOpened() else None
        if first is None:
            self._raise_if_gone(path, size)
            raise VideoError(f"{path} has no decodable frames")
        if not luma:
            logger.warning("%s: no raw luma plane available, decoding in colour (slower)", path)
        aw, ah = analysis_size(width, height, self._settings.width)
        frame_bytes = width * height + aw * ah
        budget = self._settings.chunk_mb * 1024 * 1024
        self._chunk_frames = max(MIN_CHUNK_FRAMES, min(MAX_CHUNK_FRAMES, budget // frame_bytes))
        self._cap = cap
        self._pending = first
        self._next_index = 0
        self._ended = False
        self._info = VideoInfo(
            path=path,
            size=size,
            width=width,
            height=height,
            fps=fps,
            declared_frames=int(declared),
            analysis_width=aw,
            analysis_height=ah,
            luma_path=luma,
        )
        return self._info

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
        self._cap = None
        self._info = None
        self._pending = None

    @property
    def chunk_frames(self) -> int:
        return self._chunk_frames

    # --- decoding -----------------------------------------------------------------------------

    def next_chunk(self) -> Chunk:
        """The next frames of the open video; an empty chunk at the end."""
        if self._cap is None or self._info is None:
            raise RuntimeError("Decoder.next_chunk() called with no video open")
        info = self._info
        frames: list[Frame] = []
        while len(frames) < self._chunk_frames and not self._ended:
            full: np.ndarray | None
            if self._pending is not None:
                full, self._pending = self._pending, None
            else:
                full = self._read_raw(self._cap, info.luma_path, info.width, info.height)
            if full is None:
                self._ended = True
                self._check_complete()
                break
            analysis = cv2.resize(
                full, (info.analysis_width, info.analysis_height), interpolation=cv2.INTER_AREA
            )
            index = self._next_index
            frames.append(Frame(index=index, t=index / info.fps, analysis=analysis, full=full))
            self._next_index += 1
        return Chunk(frames=tuple(frames))

    @staticmethod
    def _read_raw(cap: cv2.VideoCapture, luma: bool, width: int, height: int) -> np.ndarray | None:
        ok, raw = cap.read()
        if not ok or raw is None:
            return None
        if luma:
            if raw.ndim != 2 or raw.shape[1] != width or raw.shape[0] < height:
                return None
            return raw if raw.shape[0] == height else np.ascontiguousarray(raw[:height])
        if raw.ndim == 2:
            return raw
        return cv2.cvtColor(raw, cv2.COLOR_BGR2GRAY)

    def _check_complete(self) -> None:
        info = self._info
        assert info is not None
        decoded = self._next_index
        self._raise_if_gone(info.path, info.size)
        expected = info.declared_frames
        if (
            expected > 0
            and decoded < expected * (1 - TRUNCATION_TOLERANCE)
            and expected - decoded > 2
        ):
            raise VideoError(
                f"{info.path} is truncated or corrupt: decoded {decoded} of {expected} frames"
            )

    @staticmethod
    def _raise_if_gone(path: str, size: int) -> None:
        """A read that fails because the NAS went away is transient, not a bad video."""
        try:
            st = Path(path).stat()
        except OSError as exc:
            raise NasUnavailableError(f"source {path} became unreadable: {exc.strerror}") from None
        if st.st_size != size:
            raise NasUnavailableError(
                f"source {path} changed size while being read ({size} -> {st.st_size} bytes)"
            )


class DecoderActor(pykka.ThreadingActor):
    """Runs a `Decoder` in its own thread so decoding overlaps with analysis."""

    def __init__(self, settings: AnalysisSettings) -> None:
        super().__init__()
        self.decoder = Decoder(settings)

    def ping(self) -> bool:
        return True

    def open(self, path: str, size: int, settings: AnalysisSettings | None = None) -> VideoInfo:
        return self.decoder.open(path, size, settings)

    def next_chunk(self) -> Chunk:
        return self.decoder.next_chunk()

    def close(self) -> None:
        self.decoder.close()

    def on_stop(self) -> None:
        self.decoder.close()

    def on_failure(self, *args: object) -> None:
        self.decoder.close()


__all__ = ["Decoder", "DecoderActor", "analysis_size"]
