"""The Coral actor: hosts whichever plate-region proposer backend runs (Edge TPU, TFLite,
OpenCV or none) and proposes regions for the kept frames of a chunk.

The backend is created in `on_start` (devices are opened in the actor's own thread) and
closed on stop or crash.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import pykka
from pykka.typing import ActorMemberMixin, proxy_method

from models.backends import MODEL_BACKENDS
from models.proposer import Proposal, Proposer
from models.regions import Crop, propose_on_batch
from models.tflite_runtime import installed_versions

logger = logging.getLogger(__name__)

ProposerFactory = Callable[[], Proposer]


class RegionProposals:
    """Plain logic: run a proposer over the region crops of a batch of frames."""

    def __init__(self, proposer: Proposer, max_regions: int = 4) -> None:
        self.proposer = proposer
        self.max_regions = max_regions

    def describe(self) -> dict[str, str | None]:
        """The backend and model that run, and for a model backend the runtime (and for the
        Edge TPU libedgetpu) package versions installed: the manifest records them."""
        described: dict[str, str | None] = {
            "backend": self.proposer.backend,
            "model": self.proposer.model,
        }
        if self.proposer.backend in MODEL_BACKENDS:
            versions = installed_versions()
            described["runtime"] = versions["runtime"] or None
            if self.proposer.backend != "tflite":
                described["libedgetpu"] = versions["libedgetpu"] or None
        return described

    def propose(
        self, batch: Sequence[tuple[Crop, ...]]
    ) -> tuple[tuple[tuple[int, Proposal], ...], ...]:
        """For each frame: (crop index, proposal in frame pixels), best first."""
        return tuple(
            tuple(found) for found in propose_on_batch(self.proposer, batch, self.max_regions)
        )

    def ensure_ready(self) -> dict[str, str | None]:
        """(Re)open the device if it is down; ProposerUnavailableError while it cannot be."""
        self.proposer.ensure_ready()
        return self.describe()

    def close(self) -> None:
        self.proposer.close()


class CoralActor(pykka.ThreadingActor):
    """Owns the proposer backend; one batch at a time."""

    def __init__(self, factory: ProposerFactory, max_regions: int = 4) -> None:
        super().__init__()
        self._factory = factory
        self._max_regions = max_regions
        self._logic: RegionProposals | None = None

    def load(self) -> dict[str, str | None]:
        """Create the backend in this actor's thread and open it; errors reach the caller's
        future (a transient one leaves the backend created, to be opened again later)."""
        if self._logic is None:
            self._logic = RegionProposals(self._factory(), self._max_regions)
        return self._logic.ensure_ready()

    def ensure_ready(self) -> dict[str, str | None]:
        assert self._logic is not None
        return self._logic.ensure_ready()

    def describe(self) -> dict[str, str | None]:
        assert self._logic is not None
        return self._logic.describe()

    def propose(
        self, batch: Sequence[tuple[Crop, ...]]
    ) -> tuple[tuple[tuple[int, Proposal], ...], ...]:
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


class CoralProxy(ActorMemberMixin, pykka.ActorProxy[CoralActor]):
    """Typed proxy of a `CoralActor`: `cast(CoralProxy, ref.proxy())`."""

    load = proxy_method(CoralActor.load)
    ensure_ready = proxy_method(CoralActor.ensure_ready)
    describe = proxy_method(CoralActor.describe)
    propose = proxy_method(CoralActor.propose)


__all__ = ["CoralActor", "CoralProxy", "ProposerFactory", "RegionProposals"]
