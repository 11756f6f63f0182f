"""The `Proposer` interface: every plate-region backend (OpenCV, TFLite, Edge TPU) fits it.

A proposer looks at the full-resolution luma plane of one frame, restricted to regions worth
looking at (around the motion), and returns candidate plate boxes in SOURCE-video pixels.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from platesift.records import Box


@dataclass(frozen=True)
class Proposal:
    """One candidate plate region."""

    box: Box
    score: float


class Proposer(abc.ABC):
    """A plate-region proposer backend."""

    #: backend name recorded in the manifest ("opencv", "tflite", "edgetpu", "none")
    backend: str = "abstract"
    #: model identifier recorded in the manifest (file name and digest), or None
    model: str | None = None

    @abc.abstractmethod
    def propose(self, luma: np.ndarray, rois: Sequence[Box]) -> list[Proposal]:
        """Candidate plate boxes in `luma` (H x W uint8, source resolution).

        `rois` are the regions worth looking at, in the same pixels; an empty sequence means
        the whole frame. Results are sorted by descending score, then by box, so that output is
        deterministic.
        """

    def propose_many(self, images: Sequence[np.ndarray]) -> list[list[Proposal]]:
        """`propose(image, ())` for each image; backends that batch (a child process, a
        device) override this to pay their round trip once per batch."""
        return [self.propose(image, ()) for image in images]

    def watch_inferences(self, hook: Callable[[], None]) -> None:  # noqa: B027 - optional hook
        """Call `hook` after every model inference (a tiled image takes several): the inference
        process ticks the parent's per-inference deadline with it. Backends without a model
        ignore it."""

    def ensure_ready(self) -> None:  # noqa: B027 - optional hook
        """Open (or reopen after a fault) the device; ProposerUnavailableError if it cannot
        be used right now. Backends without a device are always ready."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release any resources (devices, child processes)."""


class NullProposer(Proposer):
    """Proposes nothing: filtering only (`--proposer none`)."""

    backend = "none"

    def propose(self, luma: np.ndarray, rois: Sequence[Box]) -> list[Proposal]:
        return []


def shifted(proposal: Proposal, dx: int, dy: int) -> Proposal:
    """`proposal` moved by (dx, dy): from crop pixels to frame pixels."""
    x1, y1, x2, y2 = proposal.box
    return Proposal((x1 + dx, y1 + dy, x2 + dx, y2 + dy), proposal.score)


def best_first(proposals: Sequence[Proposal]) -> list[Proposal]:
    """The deterministic order of every proposer's answer: by descending score, then box."""
    return sorted(proposals, key=lambda p: (-p.score, p.box))


def propose_in_rois(
    detect_many: Callable[[Sequence[np.ndarray]], list[list[Proposal]]],
    luma: np.ndarray,
    rois: Sequence[Box],
) -> list[Proposal]:
    """`Proposer.propose` for a backend that detects on whole images: the whole frame, or
    each ROI's crop in one `detect_many` call, with the boxes moved back to frame pixels."""
    if not rois:
        return best_first(detect_many([luma])[0])
    crops = [luma[y1:y2, x1:x2] for x1, y1, x2, y2 in rois]
    answers = detect_many(crops)
    return best_first(
        [shifted(p, x1, y1) for (x1, y1, _, _), found in zip(rois, answers) for p in found]
    )


__all__ = [
    "Box",
    "NullProposer",
    "Proposal",
    "Proposer",
    "best_first",
    "propose_in_rois",
    "shifted",
]
