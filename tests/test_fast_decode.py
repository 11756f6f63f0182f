"""The opt-in fast decoding (`analysis.fast_decode = skip-deblock`) keeps plate-frame recall.

Measured like tests/test_targets.py (the real worker, numbers read back from the artifacts),
on synthetic scenes encoded as H.264, the codec whose in-loop deblocking filter it skips.
`make bench` prints the same comparison for every scene, with the speed-up.
"""

from __future__ import annotations

import pytest

from platesift.app.bench_clips import FAST_MODE, scene_recall

pytestmark = pytest.mark.slow  # `make check` leaves it out; `make test` runs it

SCENES = ("street", "night", "shake")  # day, night (lit plates in the dark), camera shake


@pytest.fixture(scope="module")
def recall(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, dict]]:
    data = tmp_path_factory.mktemp("scenes")
    return {
        mode: scene_recall(SCENES, data, mode, tmp_path_factory.mktemp(mode))
        for mode in ("off", FAST_MODE)
    }


@pytest.mark.parametrize("name", SCENES)
def test_fast_decode_keeps_plate_frames(recall: dict[str, dict[str, dict]], name: str) -> None:
    exact, fast = recall["off"][name], recall[FAST_MODE][name]
    assert exact["recall"] >= 0.99
    assert fast["recall"] >= 0.99, f"{name}: {FAST_MODE} recall {fast['recall']:.3f}"
    assert fast["kept"] <= 1.2 * fast["moving"]
    assert abs(fast["kept"] - exact["kept"]) <= 0.05 * exact["kept"]
