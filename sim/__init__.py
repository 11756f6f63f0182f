"""Simulation: synthetic street scenes with ground truth, and (later) the fault harness."""
