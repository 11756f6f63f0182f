"""The decoder: turns a source video into chunks of luma frames, and does nothing else.

The cheap path is the normal path: the decoder's own luma plane is used as it is (a zero-copy
view with PyAV, one copy with OpenCV's capture), never a full-size colour conversion. Its
thread only keeps the decoding library fed; every reduction (the small motion image of each
frame, the analysis image around motion) is made by the frame filter, in its own thread
(`actors/motion.py`, `platesift/downscale.py`). Sources whose raw frames are not planar
YUV/grey fall back to decoding in colour and converting (logged once, much slower). See
`actors/video_sources.py`.

Chunks are sized by a memory budget, so memory stays bounded whatever the video's length.

Each frame's `t` is its presentation time from the container, counted from the first frame
(`FrameClock`): variable frame rates and recording gaps give honest times, not index / fps.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pykka
from pykka.typing import ActorMemberMixin, proxy_method

from actors.messages import Chunk, Frame, VideoInfo
from actors.source_facts import SourceInfo, VideoSource, frame_bytes
from actors.video_sources import check_backend, open_source
from platesift.config import AnalysisSettings, ResourceSettings
from platesift.downscale import analysis_size
from platesift.errors import NasUnavailableError, VideoError
from platesift.thumbs import Chroma

logger = logging.getLogger(__name__)

MIN_FPS, MAX_FPS = 0.1, 1000.0
MAX_DURATION_S = 7 * 24 * 3600.0  # a week of video in one file is absurd
TRUNCATION_TOLERANCE = 0.05  # fewer than 95% of the declared frames decodable = truncated
MIN_CHUNK_FRAMES = 2
TS_PACKET, TS_SYNC = 188, 0x47  # MPEG transport stream: fixed-size packets, each with a sync byte
MAX_CHUNK_FRAMES = 64


class FrameClock:
    """Seconds since the first frame, from each frame's presentation timestamp. A frame with no
    timestamp, or one that does not move past the last (a duplicate, a broken or wrapped
    clock), is placed one nominal frame period after the previous frame; `t` never decreases."""

    def __init__(self, fps: float) -> None:
        self._period = 1.0 / fps
        self._origin: float | None = None
        self._last_pts: float | None = None
        self._last_t: float | None = None
        self.estimated = 0  # frames whose time came from the frame rate

    def time(self, index: int, pts_s: float | None) -> float:
        if (
            pts_s is not None
            and math.isfinite(pts_s)
            and (self._last_pts is None or pts_s > self._last_pts)
        ):
            if self._origin is None:
                self._origin = pts_s - index * self._period
            t = pts_s - self._origin
            self._last_pts = pts_s
        else:
            self.estimated += 1
            t = index * self._period if self._last_t is None else self._last_t + self._period
        if self._last_t is not None:
            t = max(t, self._last_t)
        self._last_t = t
        return t


class Decoder:
    """Opens one source at a time and hands out chunks of consecutive frames."""

    def __init__(
        self, settings: AnalysisSettings, resources: ResourceSettings | None = None
    ) -> None:
        check_backend(settings.decoder)  # a decoder that is not installed fails at start
        self._settings = settings
        self._resources = resources or ResourceSettings()
        self._source: VideoSource | None = None
        self._info: VideoInfo | None = None
        self._next_index = 0
        self._pending: np.ndarray | None = None
        self._pending_chroma: Chroma | None = None
        self._chunk_frames = MIN_CHUNK_FRAMES
        self._ended = False
        self._clock = FrameClock(25.0)
        self._first_time: float | None = None
        self._damage = ""

    # --- lifecycle ----------------------------------------------------------------------------

    def open(self, path: str, size: int, settings: AnalysisSettings | None = None) -> VideoInfo:
        """Open `path` (already checked to exist on the NAS) and validate its metadata."""
        self.close()
        if settings is not None:
            self._settings = settings
        s = self._settings
        try:
            r = self._resources
            source = open_source(path, s.decoder, s.fast_decode, r.decode_threads, r.decode_mb)
        except VideoError:
            self._raise_if_gone(path, size)
            raise
        try:
            info = self._validate(path, source.info)
            first = source.read()
            if first is None:
                self._raise_if_gone(path, size)
                raise VideoError(f"{path} has no decodable frames")
            first_time = source.time_s
        except BaseException:
            source.close()
            raise
        if not source.info.luma_path:
            logger.warning("%s: no raw luma plane available, decoding in colour (slower)", path)
        aw, ah = analysis_size(info.width, info.height, self._settings.width)
        budget = self._resources.chunk_mb * 1024 * 1024
        per_chunk = budget // frame_bytes(info.width, info.height)
        self._chunk_frames = max(MIN_CHUNK_FRAMES, min(MAX_CHUNK_FRAMES, per_chunk))
        self._source = source
        self._pending, self._pending_chroma = first, source.chroma
        self._first_time = first_time
        self._clock = FrameClock(info.fps)
        self._next_index = 0
        self._ended = False
        self._damage = ""
        self._info = VideoInfo(
            path=path,
            size=size,
            width=info.width,
            height=info.height,
            fps=info.fps,
            declared_frames=int(info.declared_frames),
            analysis_width=aw,
            analysis_height=ah,
            luma_path=info.luma_path,
            rotation=source.rotation,
            decoder=source.info.backend,
        )
        return self._info

    @staticmethod
    def _validate(path: str, info: SourceInfo) -> SourceInfo:
        fps, declared = info.fps, info.declared_frames
        if info.width <= 0 or info.height <= 0:
            raise VideoError(f"{path} has no video stream with a frame size")
        if not math.isfinite(fps) or fps < MIN_FPS or fps > MAX_FPS:
            raise VideoError(f"{path} declares an absurd frame rate ({fps:g} fps)")
        if not math.isfinite(declared) or declared < 0 or declared / fps > MAX_DURATION_S:
            raise VideoError(f"{path} declares an absurd frame count ({declared:g})")
        return info

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
        self._source = None
        self._info = None
        self._pending = self._pending_chroma = None

    @property
    def chunk_frames(self) -> int:
        return self._chunk_frames

    # --- decoding -----------------------------------------------------------------------------

    def next_chunk(self, min_frames: int = 0) -> Chunk:
        """The next frames of the open video (at least `min_frames` if the video has them:
        the first chunk carries every frame that seeds the background, whatever the memory
        budget); an empty chunk at the end."""
        if self._source is None or self._info is None:
            raise RuntimeError("Decoder.next_chunk() called with no video open")
        frames: list[Frame] = []
        count = max(self._chunk_frames, min_frames)
        while len(frames) < count and not self._ended:
            full: np.ndarray | None
            if self._pending is not None:
                full, self._pending = self._pending, None
                chroma, self._pending_chroma = self._pending_chroma, None
                pts = self._first_time
            else:
                full = self._source.read()
                chroma, pts = self._source.chroma, self._source.time_s
            if full is None:
                self._ended = True
                self._check_complete()
                break
            index = self._next_index
            t = self._clock.time(index, pts)
            frames.append(Frame(index=index, t=t, full=full, chroma=chroma))
            self._next_index += 1
        if not frames and self._ended:
            return Chunk(frames=(), damage=self._damage)
        return Chunk(frames=tuple(frames))

    def _check_complete(self) -> None:
        info = self._info
        assert info is not None
        decoded = self._next_index
        if self._clock.estimated:
            logger.info(
                "%s: %d of %d frames had no usable timestamp; timed by the frame rate",
                info.path,
                self._clock.estimated,
                decoded,
            )
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
        self._damage = self._damage_seen(info.path, decoded)

    def _damage_seen(self, path: str, decoded: int) -> str:
        """Why a source whose frames decoded still looks damaged, or "": the decoder stopped on
        an error, or a transport stream ends inside a packet (a recording cut off, e.g. by a
        power loss: TS declares no frame count to compare against)."""
        if getattr(self._source, "corrupt", False):
            return f"decoding stopped on an error after {decoded} frames"
        try:
            with open(path, "rb") as stream:
                head = stream.read(TS_PACKET + 1)
        except OSError:
            return ""
        is_ts = len(head) > TS_PACKET and head[0] == head[TS_PACKET] == TS_SYNC
        if is_ts and self._info is not None and self._info.size % TS_PACKET:
            return (
                f"the transport stream ends inside a packet ({self._info.size % TS_PACKET} of "
                f"{TS_PACKET} bytes): the recording was cut off; {decoded} frames decoded"
            )
        return ""

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


class DecoderActor(pykka.ThreadingActor, Decoder):
    """A `Decoder` in its own thread, so decoding overlaps with analysis: its methods are the
    actor's, called through a `DecoderProxy`."""

    def __init__(
        self, settings: AnalysisSettings, resources: ResourceSettings | None = None
    ) -> None:
        pykka.ThreadingActor.__init__(self)
        Decoder.__init__(self, settings, resources)

    def on_stop(self) -> None:
        self.close()

    def on_failure(self, *args: object) -> None:
        self.close()


class DecoderProxy(ActorMemberMixin, pykka.ActorProxy[DecoderActor]):
    """Typed proxy of a `DecoderActor`: `cast(DecoderProxy, ref.proxy())`."""

    open = proxy_method(DecoderActor.open)
    next_chunk = proxy_method(DecoderActor.next_chunk)
    close = proxy_method(DecoderActor.close)


__all__ = ["Decoder", "DecoderActor", "DecoderProxy", "FrameClock"]
