"""Where decoded luma comes from: PyAV (the FFmpeg libraries, zero-copy luma plane) or
OpenCV's FFmpeg capture (luma plane via `CAP_PROP_CONVERT_RGB` off, one copy per frame).

Both hand out the full-resolution luma plane of each frame, in order, or None at the end.
PyAV's is a view into the decoded frame itself (no copy at all), so only kept frames ever
have their full-resolution pixels touched; it is the default when PyAV is installed.

Each source also says, after every `read()`, the frame's presentation time (`time_s`, from the
container's timestamps: variable frame rates and gaps are honest) and, after the first, the
container's display rotation (`rotation`). Frames are handed out as stored, never rotated, by
every decoder alike; a frame whose size differs from the stream's first is a VideoError (a
resolution change mid-stream cannot be analysed as one video).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import cv2
import numpy as np

from actors.source_facts import (
    SourceInfo,
    VideoSource,
    check_size,
    clockwise,
    first_line,
    frame_bytes,
)
from platesift.errors import VideoError
from platesift.thumbs import Chroma

logger = logging.getLogger(__name__)

# Raw pixel formats whose first plane is luma (FourCC of AVPixelFormat as OpenCV reports it).
_CV_LUMA_FORMATS = {
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
}
# PyAV pixel formats whose second and third planes are 4:2:0 U and V (colour thumbnails).
_AV_420_FORMATS = {"yuv420p", "yuvj420p"}
# PyAV pixel formats whose first plane is 8-bit luma.
_AV_LUMA_FORMATS = {
    "yuv420p",
    "yuvj420p",
    "yuv422p",
    "yuvj422p",
    "yuv444p",
    "yuvj444p",
    "nv12",
    "nv21",
    "gray",
    "yuv440p",
    "yuvj440p",
    "yuv411p",
    "yuv410p",
}

try:  # quiet the per-frame "unsupported picture format" warning of OpenCV's raw-plane path
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
except AttributeError:  # pragma: no cover - older OpenCV builds
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")


def pyav_available() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def check_backend(backend: str) -> None:
    """At start: an explicitly chosen decoder that this machine lacks is one ConfigError."""
    if backend == "gstreamer":
        from actors.gstreamer_source import require_gstreamer

        require_gstreamer()


def open_source(
    path: str, backend: str, fast_decode: str = "off", threads: int = 0, thread_mb: int = 0
) -> VideoSource:
    """Open `path` with `backend` (`auto`, `gstreamer`, `pyav` or `opencv`); VideoError if
    undecodable. `auto`: the Jetson's hardware decoder when GStreamer has it (see
    `actors/gstreamer_source.py`), else PyAV if installed, else OpenCV. `fast_decode`
    (`analysis.fast_decode`), `threads` (`resources.decode_threads`) and `thread_mb`
    (`resources.decode_mb`) apply to PyAV only."""
    if backend in ("gstreamer", "auto"):
        from actors.gstreamer_source import open_gstreamer

        hardware = open_gstreamer(path, explicit=backend == "gstreamer")
        if hardware is not None:
            return hardware
    if backend == "pyav" or (backend == "auto" and pyav_available()):
        return PyAVSource(path, fast_decode, threads, thread_mb)
    return OpenCVSource(path)


def decode_thread_count(threads: int, thread_mb: int, width: int, height: int) -> int:
    """`threads` (0: FFmpeg's own choice, one per core plus one), cut so that the frames the
    threads hold (about two whole 4:2:0 frames each, measured) fit in `thread_mb` MiB (0: no
    cut). At least one."""
    wanted = threads or (os.cpu_count() or 1) + 1
    if thread_mb <= 0 or width <= 0 or height <= 0:
        return wanted
    per_thread = 2 * frame_bytes(width, height)
    return max(1, min(wanted, thread_mb * 1024 * 1024 // per_thread))


# `analysis.fast_decode` -> FFmpeg's `skip_loop_filter`: which frames skip the in-loop
# deblocking filter (all but keyframes). Such a frame is blockier, and frames predicted from
# it inherit that until the next keyframe: fine for finding motion, not for the heavy stage,
# which reads the source video itself.
_SKIP_LOOP_FILTER = {"skip-deblock": "nokey"}


class PyAVSource:
    """FFmpeg through PyAV: frame-threaded decoding, luma plane as a zero-copy view."""

    def __init__(
        self, path: str, fast_decode: str = "off", threads: int = 0, thread_mb: int = 0
    ) -> None:
        import av

        self._av: Any = av
        try:
            self._container = av.open(path)
        except (av.FFmpegError, ValueError, UnicodeDecodeError) as exc:
            raise VideoError(f"{path} is not a video FFmpeg can open ({first_line(exc)})") from None
        if not self._container.streams.video:
            self._container.close()
            raise VideoError(f"{path} has no video stream")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        cc = stream.codec_context
        # The output is bit-exact whatever the thread count.
        cc.thread_count = decode_thread_count(
            threads, thread_mb, int(cc.width or 0), int(cc.height or 0)
        )
        if fast_decode in _SKIP_LOOP_FILTER:
            cc.options = {**cc.options, "skip_loop_filter": _SKIP_LOOP_FILTER[fast_decode]}
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        self.info = SourceInfo(
            width=int(cc.width or 0),
            height=int(cc.height or 0),
            fps=fps,
            declared_frames=float(stream.frames or 0),
            luma_path=cc.pix_fmt in _AV_LUMA_FORMATS,
            backend="pyav",
        )
        self._frames = self._container.decode(stream)
        self._path = path
        self._count = 0
        self.corrupt = False
        self.time_s: float | None = None
        self.rotation = 0
        self.chroma: Chroma | None = None

    def read(self) -> np.ndarray | None:
        self.chroma = None
        try:
            frame = next(self._frames)
        except StopIteration:
            return None
        except self._av.FFmpegError as exc:
            logger.warning("decoding stopped: %s", first_line(exc))
            self.corrupt = True
            return None
        check_size(self._path, self._count, self.info, frame.width, frame.height)
        if self._count == 0:
            self.rotation = clockwise(-int(frame.rotation or 0))
        self._count += 1
        self.time_s = frame.time
        if frame.format.name in _AV_LUMA_FORMATS:
            if frame.format.name in _AV_420_FORMATS:
                w2, h2 = (self.info.width + 1) // 2, (self.info.height + 1) // 2
                self.chroma = (_plane(frame.planes[1], h2, w2), _plane(frame.planes[2], h2, w2))
            return _plane(frame.planes[0], self.info.height, self.info.width)
        luma: np.ndarray = frame.to_ndarray(format="gray")
        return luma

    def close(self) -> None:
        self._container.close()


def _plane(plane: Any, height: int, width: int) -> np.ndarray:
    """A zero-copy view of one PyAV plane's `height` x `width` pixels."""
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
    return rows[:height, :width]


class OpenCVSource:
    """OpenCV's FFmpeg capture: the raw luma plane when the pixel format allows, else colour."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._count = 0
        self._raw_shape: tuple[int, ...] | None = None
        self.time_s: float | None = None
        self.rotation = 0
        self.chroma: Chroma | None = None  # OpenCV hands out luma or BGR, never the planes
        # Never rotated (OpenCV would by default): every decoder hands out frames as stored.
        cap = _no_rotation(cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_CONVERT_RGB, 0]))
        if not cap.isOpened():
            raise VideoError(f"{path} is not a video OpenCV/FFmpeg can open")
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        luma = _fourcc(cap.get(cv2.CAP_PROP_CODEC_PIXEL_FORMAT)) in _CV_LUMA_FORMATS
        self._cap = cap
        self.info = SourceInfo(
            width=width,
            height=height,
            fps=float(cap.get(cv2.CAP_PROP_FPS)),
            declared_frames=float(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
            luma_path=luma,
            backend="opencv",
        )
        self.rotation = clockwise(int(cap.get(cv2.CAP_PROP_ORIENTATION_META)))
        self._first = self._read(luma) if width > 0 and height > 0 else None
        if self._first is None and luma:
            # The raw plane was not what we expected: fall back to the colour path.
            cap.release()
            self._cap = _no_rotation(cv2.VideoCapture(path, cv2.CAP_FFMPEG))
            self.info = SourceInfo(
                width,
                height,
                self.info.fps,
                self.info.declared_frames,
                luma_path=False,
                backend="opencv",
            )
            self._first = self._read(False) if self._cap.isOpened() else None
        self.corrupt = False

    def read(self) -> np.ndarray | None:
        if self._first is not None:
            (first, self.time_s), self._first = self._first, None
        else:
            got = self._read(self.info.luma_path)
            if got is None:
                return None
            first, self.time_s = got
        self._count += 1
        return first

    def _read(self, luma: bool) -> tuple[np.ndarray, float | None] | None:
        ok, raw = self._cap.read()
        if not ok or raw is None:
            return None
        w, h = self.info.width, self.info.height
        # POS_MSEC: the presentation time of the frame just read, from the container's start.
        ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        t = ms / 1000.0 if np.isfinite(ms) else None
        if luma:
            if self._raw_shape is None:
                if raw.ndim != 2 or raw.shape[1] != w or raw.shape[0] < h:
                    return None  # not the plane layout we expect: the colour path then
                self._raw_shape = raw.shape
            elif raw.shape != self._raw_shape:  # planes of another frame size
                check_size(self._path, self._count, self.info, raw.shape[1], -1)
            return (raw if raw.shape[0] == h else np.ascontiguousarray(raw[:h])), t
        check_size(self._path, self._count, self.info, raw.shape[1], raw.shape[0])
        if raw.ndim == 2:
            return raw, t
        grey: np.ndarray = cv2.cvtColor(raw, cv2.COLOR_BGR2GRAY)
        return grey, t

    def close(self) -> None:
        self._cap.release()


def _no_rotation(cap: cv2.VideoCapture) -> cv2.VideoCapture:
    if cap.isOpened():
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
    return cap


def _fourcc(value: float) -> bytes:
    v = int(value)
    return bytes((v >> (8 * i)) & 0xFF for i in range(4))


__all__ = [
    "OpenCVSource",
    "PyAVSource",
    "check_backend",
    "decode_thread_count",
    "open_source",
    "pyav_available",
]
