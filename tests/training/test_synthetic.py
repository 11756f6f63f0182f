"""training.synthetic: stills of sim street scenes, deterministic, on seeds of their own."""

from __future__ import annotations

import numpy as np

from sim.scenes import PRESETS, preset
from training.synthetic import SEED_BASE, synthetic_stills


def test_stills_are_deterministic_and_every_plate_lies_in_its_image() -> None:
    first = synthetic_stills(6)
    again = synthetic_stills(6)
    assert [s for s, _ in first] == [s for s, _ in again]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(first, again))
    for sample, image in first:
        assert sample.source == "sim" and sample.split == "train" and sample.plates
        h, w = image.shape
        for x1, y1, x2, y2 in sample.plates:
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            # the box holds a plate: its light background stands out from the body
            patch = image[int(y1) : int(y2), int(x1) : int(x2)]
            assert patch.std() > 5


def test_stills_never_reuse_a_scene_the_tests_measure() -> None:
    assert max(preset(name).seed for name in PRESETS) < SEED_BASE
