"""The records the artifacts are made of, shared by every layer: a box in source pixels, the
rejection reasons, and one kept frame with its regions (a line of frames.jsonl). Their
serialised form is `platesift/artifacts.py`'s."""

from __future__ import annotations

from dataclasses import dataclass

Box = tuple[int, int, int, int]
"""(x1, y1, x2, y2) in integer source pixels; x2 and y2 are exclusive."""

REJECTION_REASONS = ("static", "flat", "dark", "blurry")
"""Why a frame is dropped, cheapest test first; the keys of `counts.rejected`."""


@dataclass(frozen=True)
class Region:
    """A proposed plate region with its per-region heuristics, as written to frames.jsonl."""

    box: Box
    score: float
    distance_m: float | None
    thumb: str | None
    proposed_on: int | None = None  # the frame the proposer ran on (this one, or an earlier
    # one whose box was carried along with the motion: proposer.frame_stride)
    track: int | None = None  # the plate track it belongs to (tracks.jsonl)


@dataclass(frozen=True)
class KeptFrame:
    """One line of frames.jsonl."""

    index: int
    t: float
    lighting: float
    blur: float
    motion: float
    confidence: float
    regions: tuple[Region, ...]


__all__ = ["REJECTION_REASONS", "Box", "KeptFrame", "Region"]
