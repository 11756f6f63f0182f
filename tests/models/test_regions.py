"""Carrying proposals along with the motion to frames the proposer skips."""

from __future__ import annotations

import numpy as np

from models.proposer import Proposal
from models.regions import Crop, carry_proposals, proposal_stride

SIZE = (640, 360)


def crop(x: int, y: int, w: int, h: int) -> Crop:
    return Crop(x, y, np.zeros((h, w), np.uint8))


def test_a_box_moves_as_its_motion_box_moved() -> None:
    plate = Proposal((120, 200, 180, 215), 0.8)
    found = carry_proposals(
        [plate], [(100, 150, 260, 260)], [(108, 152, 268, 262)], [crop(80, 130, 220, 150)], SIZE
    )
    assert found == [(0, Proposal((128, 202, 188, 217), 0.8))]


def test_an_edge_on_the_frame_border_does_not_count() -> None:
    # A car entering from the left: its box grows, only the right edge moves with it.
    plate = Proposal((40, 200, 90, 212), 0.7)
    found = carry_proposals(
        [plate], [(0, 150, 120, 260)], [(0, 150, 130, 260)], [crop(0, 130, 160, 150)], SIZE
    )
    assert found == [(0, Proposal((50, 200, 100, 212), 0.7))]


def test_boxes_without_motion_or_crop_are_dropped() -> None:
    plate = Proposal((120, 200, 180, 215), 0.8)
    assert carry_proposals([plate], [(100, 150, 260, 260)], [], [], SIZE) == []
    assert (
        carry_proposals(
            [plate], [(100, 150, 260, 260)], [(400, 0, 500, 100)], [crop(380, 0, 140, 120)], SIZE
        )
        == []
    )


def test_auto_stride_only_on_the_cpu_model() -> None:
    assert proposal_stride(0, "tflite") == 3
    assert [proposal_stride(0, b) for b in ("edgetpu", "opencv", "none", "fake")] == [1] * 4
    assert proposal_stride(5, "edgetpu") == 5
