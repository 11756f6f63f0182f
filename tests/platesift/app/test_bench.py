"""The bench's arithmetic: paired per-round ratios, the proposer bound, the verdicts."""

from __future__ import annotations

from typing import Any

import pytest

from platesift.app.bench import _ratios, _summary, format_table


def sample(seconds: float, frames: int = 1500, rss_mb: float = 200, **extra: Any) -> dict:
    return {
        "frames": frames,
        "seconds": seconds,
        "peak_rss_bytes": int(rss_mb * 2**20),
        "peak_scratch_bytes": 1000,
        "thumb_bytes": 0,
        "kept": 400,
        **extra,
    }


def results(decode: list[float], none: list[float], fake: list[float], inferences: int) -> dict:
    modes = {}
    for label, scale in (("1x", 1), ("4x", 4)):
        modes[f"{label} decode"] = _summary("decode", [sample(s * scale) for s in decode])
        modes[f"{label} none"] = _summary("none", [sample(s * scale) for s in none])
        modes[f"{label} tflite"] = _summary("cpu", [sample(s * scale) for s in none])
        modes[f"{label} fake:0.01"] = _summary(
            "fake",
            [sample(s * scale, inferences=inferences * scale) for s in fake],
        )
    return {"modes": modes}


def test_ratios_pair_each_run_with_the_plain_decoding_of_its_own_round() -> None:
    # The machine runs at half speed during round 2's pipeline run, and during all of round 3.
    r = results(decode=[5.0, 5.0, 10.0], none=[5.5, 11.0, 11.0], fake=[6, 11, 6], inferences=500)
    _ratios(r)
    none = r["modes"]["1x none"]
    assert none["round_ratios"] == pytest.approx([1 / 1.1, 5 / 11, 1 / 1.1])
    assert none["ratio"] == pytest.approx(1 / 1.1)
    # Unpaired medians would compare 11 s with 5 s.
    assert none["fps"] / r["modes"]["1x decode"]["fps"] == pytest.approx(5 / 11)
    assert r["targets"]["none >= 0.9x decode"]


def test_the_fake_proposer_bound_is_per_round() -> None:
    # 500 inferences x 10 ms = 5 s; decoding takes 4 s, then 8 s in the slow round.
    r = results(decode=[4.0, 8.0, 4.0], none=[4.2, 8.4, 4.2], fake=[5.4, 8.5, 5.6], inferences=500)
    _ratios(r)
    fake = r["modes"]["1x fake:0.01"]
    assert fake["round_overlap_ratios"] == pytest.approx([5.4 / 5, 8.5 / 8, 5.6 / 5])
    assert fake["overlap_ratio"] == pytest.approx(1.08)
    assert r["targets"]["fake proposer <= 1.1x max(decode, N x L)"]
    table = format_table(r)
    assert "[ok] fake proposer" in table and "[MISS]" not in table


def test_a_missed_target_is_reported() -> None:
    r = results(decode=[5.0] * 3, none=[6.0] * 3, fake=[6.0] * 3, inferences=500)
    _ratios(r)
    assert not r["targets"]["none >= 0.9x decode"]
    assert "[MISS] none >= 0.9x decode" in format_table(r)


def test_same_backend_ratios_and_the_stricter_proposer_bound() -> None:
    r = results(decode=[5.0] * 3, none=[5.0] * 3, fake=[5.4] * 3, inferences=400)
    # Plain PyAV decoding is faster than grab here: 4.5 s.
    for label, scale in (("1x", 1), ("4x", 4)):
        r["modes"][f"{label} decode-pyav"] = _summary("pyav", [sample(4.5 * scale)] * 3)
    _ratios(r)
    none = r["modes"]["1x none"]
    assert none["ratio"] == pytest.approx(1.0) and none["ratio_pyav"] == pytest.approx(0.9)
    fake = r["modes"]["1x fake:0.01"]
    # max(faster decoding 4.5 s, 400 x 10 ms) = 4.5 s, not grab's 5 s.
    assert fake["overlap_bound_s"] == pytest.approx(4.5)
    assert fake["overlap_ratio"] == pytest.approx(1.2)
    assert "[MISS] fake proposer" in format_table(r)
