"""What a video source is, whichever decoder is behind it: the facts it reports when opened
(`SourceInfo`), the protocol every source meets (`VideoSource`), and the checks they share
(one frame size per video, the display rotation as a quarter turn)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from platesift.errors import VideoError
from platesift.thumbs import Chroma


@dataclass(frozen=True)
class SourceInfo:
    width: int
    height: int
    fps: float
    declared_frames: float  # from the container; 0 when unknown
    luma_path: bool  # frames come straight from the decoder's luma plane
    backend: str


class VideoSource(Protocol):
    info: SourceInfo
    time_s: float | None  # presentation time of the frame read last; None if it had none
    rotation: int  # display rotation, degrees clockwise (0, 90, 180, 270); known after a read
    chroma: Chroma | None  # the 4:2:0 U and V planes of the frame read last, if handed out

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


def frame_bytes(width: int, height: int) -> int:
    """Bytes of one decoded 4:2:0 frame: what a zero-copy luma view keeps alive."""
    return width * height * 3 // 2


def first_line(exc: BaseException) -> str:
    """An exception's first line (at most 200 characters), for one-line errors."""
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def clockwise(degrees: int) -> int:
    """A display rotation as degrees clockwise, 0 <= d < 360, to the nearest quarter turn."""
    return (round(degrees / 90) * 90) % 360


def check_size(path: str, index: int, info: SourceInfo, width: int, height: int) -> None:
    """VideoError if frame `index` is not the stream's size: a resolution change mid-stream
    would otherwise be analysed (and its regions placed) in the wrong pixels."""
    if (width, height) != (info.width, info.height):
        size = f"{width}x{height}" if height > 0 else "another size"
        raise VideoError(
            f"{path}: the frame size changes mid-stream at frame {index} "
            f"({info.width}x{info.height} -> {size}); platesift analyses one frame size "
            "per video: split the recording where it changes"
        )


__all__ = ["SourceInfo", "VideoSource", "check_size", "clockwise", "first_line", "frame_bytes"]
