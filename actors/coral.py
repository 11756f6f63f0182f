"""The Coral actor: hosts whichever plate-region proposer backend runs (Edge TPU, TFLite,
OpenCV or none) and proposes regions for the kept frames of a chunk.

The backend is created in `on_start` (devices are opened in the actor's own thread) and
closed on stop or crash.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import pykka

from models.proposer import Box, Proposal, Proposer

logger = logging.getLogger(__name__)

ProposerFactory = Callable[[], Proposer]


class RegionProposals:
    """Plain logic: run a proposer over a batch of frames."""

    def __init__(self, proposer: Proposer) -> None:
        self.proposer = proposer

    def describe(self) -> dict[str, str | None]:
        return {"backend": self.proposer.backend, "model": self.proposer.model}

    def propose(
        self, batch: Sequence[tuple[np.ndarray, tuple[Box, ...]]]
    ) -> tuple[tuple[Proposal, ...], ...]:
        return tuple(tuple(self.proposer.propose(luma, rois)) for luma, rois in batch)

    def close(self) -> None:
        self.proposer.close()


class CoralActor(pykka.ThreadingActor):
    """Owns the proposer backend; one batch at a time."""

    def __init__(self, factory: ProposerFactory) -> None:
        super().__init__()
        self._factory = factory
        self._logic: RegionProposals | None = None

    def ping(self) -> bool:
        return True

    def load(self) -> dict[str, str | None]:
        """Create the backend in this actor's thread; its errors reach the caller's future."""
        if self._logic is None:
            self._logic = RegionProposals(self._factory())
        return self._logic.describe()

    def describe(self) -> dict[str, str | None]:
        assert self._logic is not None
        return self._logic.describe()

    def propose(
        self, batch: Sequence[tuple[np.ndarray, tuple[Box, ...]]]
    ) -> tuple[tuple[Proposal, ...], ...]:
        assert self._logic is not None
        return self._logic.propose(batch)

    def on_stop(self) -> None:
        self._close()

    def on_failure(self, *args: object) -> None:
        self._close()

    def _close(self) -> None:
        if self._logic is not None:
            try:
                self._logic.close()
            except Exception:  # closing must not mask the original failure
                logger.exception("closing the proposer failed")
            self._logic = None


__all__ = ["CoralActor", "ProposerFactory", "RegionProposals"]
