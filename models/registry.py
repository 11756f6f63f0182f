"""Picks the proposer backend named in the settings, and says which one actually runs."""

from __future__ import annotations

import logging

from models.proposer import NullProposer, Proposer
from platesift.config import ProposerSettings

logger = logging.getLogger(__name__)


def make_proposer(settings: ProposerSettings) -> Proposer:
    """A ready proposer for `settings.backend` (`auto` = the best backend available here)."""
    backend = settings.backend
    if backend == "none":
        return NullProposer()
    if backend in ("auto", "opencv"):
        from models.opencv_plates import OpenCVPlateProposer

        return OpenCVPlateProposer(min_score=settings.min_score, max_regions=settings.max_regions)
    raise ValueError(f"unknown proposer backend {backend!r}")


__all__ = ["make_proposer"]
