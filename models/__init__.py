"""Plate-region proposers behind one interface, and the registry that picks a backend."""

from models.proposer import Box, NullProposer, Proposal, Proposer

__all__ = ["Box", "NullProposer", "Proposal", "Proposer"]
