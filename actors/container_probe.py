"""What the container says, read with PyAV without decoding the stream (one frame at most):
the size, rate, declared frames, codec and display rotation (`probe_video`), and each frame's
presentation time in display order (`PresentationTimes`). The hardware pipeline hands out bare
pixels, so these facts come from here."""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass
from typing import Any

from actors.source_facts import clockwise, first_line
from platesift.errors import VideoError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Probe:
    width: int
    height: int
    fps: float
    declared_frames: float
    codec: str
    rotation: int = 0  # display rotation, degrees clockwise


def probe_video(path: str) -> Probe:
    """Size, rate, declared frame count, codec and display rotation from the container (PyAV;
    the first frame is decoded for its rotation); the same numbers PyAVSource reports, so
    artifacts do not depend on the decoder."""
    import av

    try:
        container = av.open(path)
    except (av.FFmpegError, ValueError, UnicodeDecodeError) as exc:
        raise VideoError(f"{path} is not a video FFmpeg can open ({first_line(exc)})") from None
    try:
        if not container.streams.video:
            raise VideoError(f"{path} has no video stream")
        stream = container.streams.video[0]
        cc = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        return Probe(
            width=int(cc.width or 0),
            height=int(cc.height or 0),
            fps=float(rate) if rate else 0.0,
            declared_frames=float(stream.frames or 0),
            codec=str(cc.name or ""),
            rotation=_first_frame_rotation(av, container, stream),
        )
    finally:
        container.close()


def _first_frame_rotation(av: Any, container: Any, stream: Any) -> int:
    try:
        for frame in container.decode(stream):
            return clockwise(-int(frame.rotation or 0))
    except (av.FFmpegError, ValueError):
        pass  # undecodable in software: the pipeline's own error says more
    return 0


class PresentationTimes:
    """The presentation times of a video's frames in display order, from its packets alone
    (PyAV demuxing, no decoding). Packets come in decoding order; a small heap puts them in
    display order (a decoder holds back at most 16 frames for reordering, H.264 and HEVC)."""

    REORDER = 32

    def __init__(self, path: str) -> None:
        import av

        self._av: Any = av
        self._heap: list[int] = []
        self._ended = False
        try:
            self._container: Any = av.open(path)
            stream = self._container.streams.video[0]
        except (av.FFmpegError, ValueError, UnicodeDecodeError, IndexError):
            self._container, self._ended = None, True
            return
        self._time_base = stream.time_base
        self._packets = self._container.demux(stream)

    def next(self) -> float | None:
        """The next frame's time in seconds, or None (no timestamp, or no more packets)."""
        while not self._ended and len(self._heap) <= self.REORDER:
            try:
                packet = next(self._packets)
            except (StopIteration, self._av.FFmpegError):
                self._ended = True
                break
            if packet.pts is not None and packet.size:
                heapq.heappush(self._heap, int(packet.pts))
        if not self._heap or self._time_base is None:
            return None
        return float(heapq.heappop(self._heap) * self._time_base)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
        self._ended = True


__all__ = ["PresentationTimes", "Probe", "probe_video"]
