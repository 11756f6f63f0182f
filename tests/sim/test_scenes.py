"""Tests for sim.scenes: determinism, rendering, ground truth, presets, nuisances."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from sim.plates import plate_size, render_plate
from sim.scenes import (
    PRESETS,
    FrameTruth,
    GroundTruth,
    SceneSpec,
    Vehicle,
    frame_count,
    ground_truth,
    iter_frames,
    preset,
    render,
    render_frame,
)

EXPECTED_PRESETS = {
    "street",
    "noise",
    "rain",
    "flicker",
    "shake",
    "creeping",
    "night",
    "night_unlit",
    "everything",
    "blurred",
    "empty",
    "demo",
}


def clean(spec: SceneSpec) -> SceneSpec:
    """The same scene with every nuisance turned off (night stays as it is)."""
    return dataclasses.replace(
        spec, noise_sigma=0.0, rain=0.0, flicker=0.0, auto_exposure=0.0, shake_px=0.0
    )


def frames_hash(spec: SceneSpec) -> str:
    digest = hashlib.sha256()
    for image, _ in iter_frames(spec):
        assert image.dtype == np.uint8 and image.shape == (spec.height, spec.width, 3)
        digest.update(image.tobytes())
    return digest.hexdigest()


def naive_motion(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels whose value changed by more than 15 levels: a naive detector."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2)
    return float((diff > 15).mean())


# --------------------------------------------------------------------------- determinism


NUISANCE_SPEC = SceneSpec(
    seconds=1.0,
    seed=7,
    rain=12.0,
    flicker=0.1,
    auto_exposure=0.2,
    shake_px=2.0,
    noise_sigma=3.0,
    vehicles=(Vehicle(-1.5, 200.0), Vehicle(-1.0, 150.0, -1, lane_y=0.92, blur_px=10)),
)


def test_same_spec_gives_identical_frames() -> None:
    first = frames_hash(NUISANCE_SPEC)
    assert frames_hash(NUISANCE_SPEC) == first
    assert frames_hash(dataclasses.replace(NUISANCE_SPEC, seed=8)) != first


@pytest.mark.parametrize("name", ["rain", "shake", "night"])
def test_render_frame_is_the_frame_iter_frames_yields(name: str) -> None:
    spec = preset(name, seconds=0.6)
    for index, (image, truth) in enumerate(iter_frames(spec)):
        if index in (0, 7, 14):
            alone, alone_truth = render_frame(spec, index)
            assert np.array_equal(alone, image) and alone_truth == truth


def test_frames_change_from_frame_to_frame_under_noise() -> None:
    images = [image for image, _ in iter_frames(preset("empty", seconds=0.2))]
    assert len(images) == 5
    assert all(not np.array_equal(a, b) for a, b in itertools.pairwise(images))


def test_frame_count() -> None:
    assert frame_count(SceneSpec(seconds=8.0, fps=25.0)) == 200
    assert frame_count(SceneSpec(seconds=1.0, fps=29.97)) == 30
    assert frame_count(SceneSpec(seconds=0.0)) == 0


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("name", sorted(EXPECTED_PRESETS))
def test_every_preset_renders_and_reopens(name: str, tmp_path: Path) -> None:
    spec = preset(name, seconds=0.4)
    path = tmp_path / f"{name}.mp4"
    truth = render(spec, path)
    assert len(truth.frames) == frame_count(spec) == 10
    assert truth == ground_truth(spec)
    cap = cv2.VideoCapture(str(path))
    try:
        assert cap.isOpened()
        ok, image = cap.read()
        assert ok and image.shape == (spec.height, spec.width, 3)
    finally:
        cap.release()


def test_full_preset_video_has_right_size_fps_and_frame_count(tmp_path: Path) -> None:
    spec = preset("street")
    path = tmp_path / "street.mp4"
    truth = render(spec, path)
    assert len(truth.frames) == frame_count(spec) == 300
    cap = cv2.VideoCapture(str(path))
    try:
        assert cap.isOpened()
        assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == spec.width
        assert int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == spec.height
        assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(spec.fps, abs=0.01)
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 300
        decoded = 0
        while True:
            ok, image = cap.read()
            if not ok:
                break
            assert image.shape == (spec.height, spec.width, 3)
            decoded += 1
        assert decoded == 300
    finally:
        cap.release()


def test_mjpg_avi_round_trip(tmp_path: Path) -> None:
    spec = preset("night", seconds=0.4, fourcc="MJPG")
    path = tmp_path / "night.avi"
    render(spec, path)
    cap = cv2.VideoCapture(str(path))
    try:
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 10
        assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0, abs=0.01)
    finally:
        cap.release()


def test_render_raises_a_clear_error_when_the_writer_cannot_open(tmp_path: Path) -> None:
    spec = preset("street", seconds=0.2)
    with pytest.raises(RuntimeError, match="cannot open a video writer"):
        render(spec, tmp_path / "no-such-dir" / "x.mp4")


# --------------------------------------------------------------------------- ground truth


@pytest.mark.parametrize("name", sorted(EXPECTED_PRESETS))
def test_preset_ground_truth_is_consistent(name: str) -> None:
    spec = preset(name)
    gt = ground_truth(spec)
    assert len(gt.frames) == frame_count(spec)
    assert 8.0 <= spec.seconds <= 20.0
    sizes = {plate_size(v.plate_height_px) for v in spec.vehicles}
    for v in spec.vehicles:
        assert 16 <= v.plate_height_px <= 30
    in_view_without_plate = 0
    for i, frame in enumerate(gt.frames):
        assert frame.index == i and frame.t == pytest.approx(i / spec.fps)
        if not frame.plates and frame.moving:
            in_view_without_plate += 1
        for p in frame.plates:
            x1, y1, x2, y2 = p.box
            assert 0 <= x1 < x2 <= spec.width and 0 <= y1 < y2 <= spec.height
            touches_border = x1 == 0 or y1 == 0 or x2 == spec.width or y2 == spec.height
            if p.fully_visible:
                assert (x2 - x1, y2 - y1) in sizes
            else:
                assert touches_border and (x2 - x1, y2 - y1) not in sizes
            assert not p.readable or p.fully_visible
            # Every plate belongs to a vehicle in view; all presets' vehicles never stop.
            assert frame.moving
    # Every preset has many truly static frames, and plates are not always on screen.
    static = len(gt.frames) - len(gt.moving_frames())
    if name == "empty":
        assert static == len(gt.frames)
    else:
        # `everything`'s first car enters at 1 s: the street is static only at the start.
        assert static >= (0.08 if name == "everything" else 0.15) * len(gt.frames)
        assert 0 < len(gt.readable_plate_frames()) < len(gt.moving_frames()) or name == "blurred"


def test_blurred_preset_shows_plates_but_none_readable() -> None:
    gt = ground_truth(preset("blurred"))
    assert any(f.plates for f in gt.frames)
    assert gt.readable_plate_frames() == set()
    assert len(gt.moving_frames()) > 50


def test_empty_preset_has_nothing_moving_yet_fools_frame_differencing() -> None:
    spec = preset("empty")
    gt = ground_truth(spec)
    assert gt.moving_frames() == set() and gt.readable_plate_frames() == set()
    assert all(not f.plates for f in gt.frames)
    images = [image for image, _ in iter_frames(dataclasses.replace(spec, seconds=2.0))]
    fired = [naive_motion(a, b) > 0.005 for a, b in itertools.pairwise(images)]
    assert sum(fired) >= 0.9 * len(fired)
    means = [float(image.mean()) for image in images]
    assert max(means) / min(means) > 1.1  # flicker moves the global brightness


@pytest.mark.parametrize("name", ["noise", "rain", "flicker", "shake"])
def test_nuisances_fool_a_naive_detector_on_static_frames(name: str) -> None:
    spec = preset(name, seconds=2.0)
    previous = None
    fired = []
    for image, truth in iter_frames(spec):
        if previous is not None and not truth.moving:
            fired.append(naive_motion(previous, image) > 0.005)
        previous = image
    assert len(fired) >= 20
    assert sum(fired) >= 0.5 * len(fired)
    # Without the nuisances the same static frames are identical.
    images = [image for image, truth in iter_frames(clean(preset(name, seconds=0.4)))]
    assert all(np.array_equal(images[0], image) for image in images[1:])


@pytest.mark.parametrize("name", ["street", "blurred", "night", "creeping"])
def test_moving_is_true_exactly_when_a_vehicle_shows_in_the_pixels(name: str) -> None:
    spec = clean(preset(name))
    if name == "creeping":
        spec = dataclasses.replace(spec, seconds=8.0)
    background = dataclasses.replace(spec, vehicles=())
    saw_both = set()
    for (image, truth), (empty, _) in zip(iter_frames(spec), iter_frames(background)):
        shows_vehicle = not np.array_equal(image, empty)
        assert truth.moving == shows_vehicle, truth.index
        saw_both.add(shows_vehicle)
    assert saw_both == {True, False}


def test_plate_box_matches_the_rendered_plate_exactly() -> None:
    spec = clean(preset("street"))
    checked = 0
    for image, truth in iter_frames(spec):
        for p in truth.plates:
            if not p.readable or truth.index % 10:
                continue
            x1, y1, x2, y2 = p.box
            expected = render_plate(p.text, y2 - y1)
            assert np.array_equal(image[y1:y2, x1:x2], expected)
            checked += 1
    assert checked >= 10


def test_blur_destroys_plate_detail() -> None:
    sharp_v = Vehicle(-430 / 450, 450.0, plate_text="AB 123 CD")  # centred at t = 0
    blurred_v = dataclasses.replace(sharp_v, blur_px=30)

    def plate_detail(v: Vehicle) -> tuple[float, bool]:
        spec = SceneSpec(seconds=0.04, noise_sigma=0.0, vehicles=(v,))
        image, truth = next(iter_frames(spec))
        (p,) = truth.plates
        x1, y1, x2, y2 = p.box
        crop = cv2.cvtColor(image[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY).astype(np.float64)
        return float(np.abs(np.diff(crop, axis=1)).mean()), p.readable  # horizontal detail

    sharp, sharp_readable = plate_detail(sharp_v)
    blurred, blurred_readable = plate_detail(blurred_v)
    assert sharp_readable and not blurred_readable
    assert blurred < 0.2 * sharp


def test_night_unlit_vehicle_plates_are_dark_and_unreadable() -> None:
    spec = preset("night_unlit")
    gt = ground_truth(spec)
    unlit = next(v for v in spec.vehicles if not v.lit)
    lit = next(v for v in spec.vehicles if v.lit)
    assert not unlit.lit and lit.lit
    by_text: dict[str, list[bool]] = {}
    for f in gt.frames:
        for p in f.plates:
            by_text.setdefault(p.text, []).append(p.readable)
    assert len(by_text) == 2
    unlit_text = next(text for text, r in by_text.items() if not any(r))
    lit_text = next(text for text, r in by_text.items() if sum(r) > 25)
    # Pixels: the unlit plate is as dark as the scene, the lit one near day brightness.
    brightness: dict[str, float] = {}
    for image, truth in iter_frames(spec):
        for p in truth.plates:
            if p.readable or (p.text == unlit_text and p.fully_visible):
                x1, y1, x2, y2 = p.box
                brightness.setdefault(p.text, float(image[y1:y2, x1:x2].mean()))
                assert float(image.mean()) < 45  # a naive "too dark" filter would drop it
        if len(brightness) == 2:
            break
    assert brightness[unlit_text] < 50 and brightness[lit_text] > 130


def test_stopped_vehicle_is_in_view_but_not_moving() -> None:
    v = Vehicle(0.0, 400.0, stop_s=0.6, plate_text="ST 000 OP")
    spec = SceneSpec(seconds=3.2, noise_sigma=0.0, vehicles=(v,))
    frames = list(iter_frames(spec))
    stopped = [i for i, (_, t) in enumerate(frames) if t.plates and not t.moving]
    assert len(stopped) == pytest.approx(0.6 * spec.fps, abs=1)
    assert stopped == list(range(stopped[0], stopped[-1] + 1))
    assert all(frames[i][1].plates[0].readable for i in stopped)
    assert all(np.array_equal(frames[stopped[0]][0], frames[i][0]) for i in stopped)
    assert frames[stopped[0] - 1][1].moving and frames[stopped[-1] + 1][1].moving
    # The vehicle drives on and leaves the frame before the clip ends.
    assert not frames[-1][1].moving and not frames[-1][1].plates


def test_a_nearer_vehicle_hides_a_plate() -> None:
    far = Vehicle(-1.0, 200.0, lane_y=0.70, plate_text="FA 111 RR")
    near = Vehicle(-1.0, 200.0, -1, lane_y=0.92, length_px=240, height_px=120)
    gt = ground_truth(SceneSpec(seconds=4.0, vehicles=(far, near)))
    far_plates = [p for f in gt.frames for p in f.plates if p.text == "FA 111 RR"]
    assert any(p.fully_visible and not p.readable for p in far_plates)
    assert any(p.readable for p in far_plates)


# --------------------------------------------------------------------------- json, presets


def test_ground_truth_json_round_trip() -> None:
    gt = ground_truth(preset("street"))
    text = gt.to_json()
    again = GroundTruth.from_json(text)
    assert again == gt
    assert again.to_json() == text
    assert json.dumps(json.loads(text), sort_keys=True, separators=(",", ":")) == text
    assert isinstance(again.spec.vehicles[0].color, tuple)
    assert isinstance(again.frames[0], FrameTruth)
    assert again.moving_frames() == gt.moving_frames()
    assert again.readable_plate_frames() == gt.readable_plate_frames()


def test_presets() -> None:
    assert set(PRESETS) == EXPECTED_PRESETS
    assert preset("street", seconds=2.0, seed=5).seconds == 2.0
    assert preset("demo").width == 960 and preset("demo").height == 540
    assert preset("night").night and preset("blurred").vehicles[0].blur_px >= 25
    with pytest.raises(ValueError, match="unknown preset"):
        preset("nope")


def test_invalid_specs_are_rejected() -> None:
    with pytest.raises(ValueError):
        Vehicle(0.0, 0.0)
    with pytest.raises(ValueError):
        Vehicle(0.0, 10.0, direction=0)
    with pytest.raises(ValueError):
        Vehicle(0.0, 10.0, plate_height_px=60)
    with pytest.raises(ValueError):
        SceneSpec(flicker=1.5)
