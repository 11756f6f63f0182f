"""Messages passed between actors: frozen dataclasses, nothing else.

Frames carry numpy arrays by reference (actors share one process), so passing a chunk between
actors copies nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from platesift.config import Settings
from platesift.records import Box
from platesift.thumbs import Chroma


@dataclass(frozen=True)
class VideoInfo:
    """What the decoder learned about a source when it opened it."""

    path: str
    size: int
    width: int
    height: int
    fps: float
    declared_frames: int  # from the container; 0 when unknown
    analysis_width: int
    analysis_height: int
    luma_path: bool  # True when frames come straight from the decoder's luma plane
    rotation: int = 0  # the container's display rotation, degrees clockwise; frames are as stored
    decoder: str = ""  # the decoder that runs: gstreamer, pyav or opencv (never auto)


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its source-size luma (`full`, often a zero-copy view of the
    decoder's buffer). The filter reads it once, for the small motion image every frame
    needs, and again only if the frame moved. `chroma`: the 4:2:0 U and V planes (half width
    and height, views too) where the decoder hands them out, for colour thumbnails; None
    otherwise."""

    index: int
    t: float  # presentation time, seconds since the first frame
    full: np.ndarray = field(repr=False, compare=False)
    chroma: Chroma | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Chunk:
    """Consecutive frames decoded together; `frames` is empty at the end of the video, where
    `damage` says (or is "") why the source looks damaged although its frames decoded."""

    frames: tuple[Frame, ...]
    damage: str = ""

    @property
    def end(self) -> bool:
        return not self.frames


@dataclass(frozen=True)
class Verdict:
    """The filter's judgement of one frame, and the heuristics measured on the way."""

    index: int
    reason: str | None  # None when kept, else one of platesift.records.REJECTION_REASONS
    lighting: float
    blur: float
    motion: float
    rois: tuple[Box, ...] = ()  # moving regions, source pixels

    @property
    def kept(self) -> bool:
        return self.reason is None


__all__ = [
    "Chunk",
    "Frame",
    "TaskOutcome",
    "TaskSpec",
    "Verdict",
    "VideoInfo",
]


@dataclass(frozen=True)
class TaskSpec:
    """One unit of work: a source video in, an artifact directory out."""

    task_id: str
    source: str  # absolute path, already confined to the NAS root by whoever built the spec
    source_name: str  # the path as the task named it (recorded in the manifest)
    dest: str  # artifact directory
    attempt: int = 1
    dest_name: str = ""  # the artifact directory as the downstream task names it (NAS-relative)
    metadata: dict[str, object] = field(default_factory=dict)  # sidecar `<video>.json`
    heavy_task_type: str = "HEAVY_PROCESS"
    settings: Settings | None = None  # the task's own settings; None = the worker's


@dataclass(frozen=True)
class TaskOutcome:
    """How a task ended. `outcome` is `done`, `rejected` (permanent) or `failed` (transient);
    `fatal` when it failed because the service itself is broken (credentials, model): the
    service stops rather than pull more."""

    task_id: str
    outcome: str
    detail: str = ""
    error_kind: str = ""
    counts: dict[str, object] = field(default_factory=dict)
    manifest_sha256: str = ""
    heavy_task: dict[str, object] = field(default_factory=dict)
    dest: str = ""
    seconds: float = 0.0
    fatal: bool = False
