"""Tests for the classical OpenCV plate proposer on synthetic road scenes with known plates."""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from models.opencv_plates import OpenCVPlateProposer
from models.proposer import Box, Proposal
from sim.plates import plate_size, random_plate_text, render_plate

# -- synthetic scenes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    """One luma frame, the plate box in it (or None), and the car box around it (or None)."""

    luma: np.ndarray
    plate: Box | None
    car: Box | None


def _road(rng: np.random.Generator, w: int, h: int, level: float) -> np.ndarray:
    """Textured grey asphalt with lane markings, BGR float32 in [0, 255]."""
    seeds = rng.normal(0.0, 1.0, (h // 8 + 1, w // 8 + 1)).astype(np.float32)
    coarse = cv2.resize(seeds, (w, h), interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.normal(0.0, 1.0, (h, w)).astype(np.float32), (0, 0), 0.8)
    grey = level + 10.0 * coarse + 14.0 * fine
    img = np.repeat(grey[:, :, None], 3, axis=2)
    # Lane markings: dashed light lines converging towards the horizon.
    for _ in range(int(rng.integers(1, 4))):
        x_bot = float(rng.uniform(-0.2, 1.2) * w)
        x_top = float(rng.uniform(0.3, 0.7) * w)
        colour = (210.0, 210.0, 215.0) if rng.random() < 0.7 else (40.0, 190.0, 220.0)
        thickness = int(rng.integers(2, 7))
        n_dash = 8
        for k in range(n_dash):
            if k % 2:
                continue
            t0, t1 = k / n_dash, (k + 1) / n_dash
            p0 = (round(x_top + (x_bot - x_top) * t0), round(h * 0.3 + h * 0.7 * t0))
            p1 = (round(x_top + (x_bot - x_top) * t1), round(h * 0.3 + h * 0.7 * t1))
            cv2.line(img, p0, p1, colour, thickness, cv2.LINE_AA)
    return img


def _car(
    rng: np.random.Generator, img: np.ndarray, box: Box, colour: tuple[float, float, float]
) -> None:
    """A car seen from behind: body, rear window, bumper, tail lights, optional grille."""
    x1, y1, x2, y2 = box
    cw, ch = x2 - x1, y2 - y1
    cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), colour, -1)
    # Rear window: a dark trapezoid in the upper part, with a lighter frame line.
    wy1, wy2 = y1 + round(0.08 * ch), y1 + round(0.42 * ch)
    pts = np.array(
        [
            (x1 + round(0.18 * cw), wy1),
            (x2 - round(0.18 * cw), wy1),
            (x2 - round(0.08 * cw), wy2),
            (x1 + round(0.08 * cw), wy2),
        ],
        np.int32,
    )
    glass = float(rng.uniform(15, 60))
    cv2.fillPoly(img, [pts], (glass, glass, glass * 1.1), cv2.LINE_AA)
    cv2.polylines(img, [pts], True, (25.0, 25.0, 25.0), max(1, cw // 150), cv2.LINE_AA)
    # Tail lights.
    ly1, ly2 = y1 + round(0.48 * ch), y1 + round(0.6 * ch)
    cv2.rectangle(img, (x1 + round(0.03 * cw), ly1), (x1 + round(0.2 * cw), ly2), (30, 30, 200), -1)
    cv2.rectangle(img, (x2 - round(0.2 * cw), ly1), (x2 - round(0.03 * cw), ly2), (30, 30, 200), -1)
    # Bumper: a darker band at the bottom with a crease line above it.
    by = y1 + round(0.86 * ch)
    dark = tuple(0.45 * c for c in colour)
    cv2.rectangle(img, (x1, by), (x2 - 1, y2 - 1), dark, -1)
    cv2.line(img, (x1, by - 3), (x2 - 1, by - 3), dark, 1, cv2.LINE_AA)


def _grille(rng: np.random.Generator, img: np.ndarray, box: Box) -> None:
    """A dark slatted grille (horizontal or vertical bars, or a mesh) over `box`."""
    x1, y1, x2, y2 = box
    pitch = int(rng.integers(3, 8))
    bar = max(1, pitch // 2)
    kind = int(rng.integers(0, 3))
    ink = (30.0, 30.0, 30.0)
    if kind in (0, 2):
        for y in range(y1, y2, pitch):
            cv2.rectangle(img, (x1, y), (x2 - 1, min(y2 - 1, y + bar - 1)), ink, -1)
    if kind in (1, 2):
        for x in range(x1, x2, pitch):
            cv2.rectangle(img, (x, y1), (min(x2 - 1, x + bar - 1), y2 - 1), ink, -1)


def _to_luma(rng: np.random.Generator, img: np.ndarray, noise: float) -> np.ndarray:
    gray = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY)
    noisy = gray.astype(np.float32) + rng.normal(0.0, noise, gray.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def make_scene(
    seed: int,
    *,
    size: tuple[int, int] = (640, 360),
    with_plate: bool = True,
    night: bool | None = None,
    plate_height: int | None = None,
    grille: bool | None = None,
) -> Scene:
    """A road with one car seen from behind; the plate (if any) sits on its lower middle."""
    rng = np.random.default_rng(seed)
    w, h = size
    if night is None:
        night = bool(rng.random() < 0.2)
    if plate_height is None:
        plate_height = int(rng.integers(10, 37))
    pw, ph = plate_size(plate_height)
    img = _road(rng, w, h, float(rng.uniform(70, 150)))
    # Car: wide enough for the plate, at a random place in the frame.
    car_w = min(w - 4, round(pw * rng.uniform(2.6, 4.2)))
    car_h = min(h - 4, round(car_w * rng.uniform(0.55, 0.8)))
    cx1 = int(rng.integers(2, w - car_w - 1))
    cy1 = int(rng.integers(2, h - car_h - 1))
    car = (cx1, cy1, cx1 + car_w, cy1 + car_h)
    hue = rng.uniform(0, 255, 3)
    if rng.random() < 0.3:  # white, silver, black cars are common
        hue = np.full(3, rng.choice([235.0, 170.0, 35.0]))
    _car(rng, img, car, (float(hue[0]), float(hue[1]), float(hue[2])))
    px = cx1 + (car_w - pw) // 2 + int(rng.integers(-car_w // 20, car_w // 20 + 1))
    py = cy1 + round(0.7 * car_h) - ph // 2 + int(rng.integers(-2, 3))
    py = min(py, cy1 + car_h - ph - 1)
    if grille if grille is not None else rng.random() < 0.3:
        gy = cy1 + round(0.62 * car_h) - ph
        gbox = (cx1 + round(0.3 * car_w), gy, cx1 + round(0.7 * car_w), gy + ph)
        if with_plate:  # keep the grille above the plate
            gbox = (gbox[0], py - ph - 3, gbox[2], py - 3)
        _grille(rng, img, gbox)
    plate: Box | None = None
    if with_plate:
        plate_img = render_plate(random_plate_text(rng), plate_height).astype(np.float32)
        plate_img *= float(rng.uniform(0.75, 1.0))  # dirt, shade
        img[py : py + ph, px : px + pw] = plate_img
        plate = (px, py, px + pw, py + ph)
    if night:
        # Everything dark except the lit plate.
        dim = float(rng.uniform(0.06, 0.18))
        keep = img[py : py + ph, px : px + pw].copy() if plate else None
        img *= dim
        if keep is not None:
            img[py : py + ph, px : px + pw] = keep * float(rng.uniform(0.8, 1.0))
    else:
        img *= float(rng.uniform(0.55, 1.1))
    luma = _to_luma(rng, img, float(rng.uniform(1.0, 5.0)))
    return Scene(luma=luma, plate=plate, car=car)


def make_windows_scene(seed: int, size: tuple[int, int] = (640, 360)) -> Scene:
    """A building facade: light wall with a grid of dark framed windows."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = np.full((h, w, 3), float(rng.uniform(120, 220)), np.float32)
    win_w, win_h = int(rng.integers(8, 40)), int(rng.integers(6, 30))
    gap_x, gap_y = int(rng.integers(4, 20)), int(rng.integers(4, 20))
    for y in range(int(rng.integers(0, 10)), h, win_h + gap_y):
        for x in range(int(rng.integers(0, 10)), w, win_w + gap_x):
            v = float(rng.uniform(10, 90))
            cv2.rectangle(img, (x, y), (x + win_w - 1, y + win_h - 1), (v, v, v), -1)
            if rng.random() < 0.5:  # mullion
                cv2.line(img, (x + win_w // 2, y), (x + win_w // 2, y + win_h - 1), (200,) * 3, 1)
    return Scene(luma=_to_luma(rng, img, float(rng.uniform(1.0, 4.0))), plate=None, car=None)


def make_road_scene(seed: int, size: tuple[int, int] = (640, 360)) -> Scene:
    """Empty textured road with lane markings."""
    rng = np.random.default_rng(seed)
    img = _road(rng, size[0], size[1], float(rng.uniform(60, 160)))
    return Scene(luma=_to_luma(rng, img, float(rng.uniform(1.0, 5.0))), plate=None, car=None)


def covers(box: Box, plate: Box) -> bool:
    """`box` covers most of `plate` and is not absurdly larger than it."""
    ix = min(box[2], plate[2]) - max(box[0], plate[0])
    iy = min(box[3], plate[3]) - max(box[1], plate[1])
    if ix <= 0 or iy <= 0:
        return False
    plate_area = (plate[2] - plate[0]) * (plate[3] - plate[1])
    box_area = (box[2] - box[0]) * (box[3] - box[1])
    return ix * iy >= 0.7 * plate_area and box_area <= 6 * plate_area


def _area(box: Box) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def _intersects(a: Box, b: Box) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _check_well_formed(
    props: list[Proposal], luma: np.ndarray, proposer: OpenCVPlateProposer
) -> None:
    """Integer boxes inside the frame, scores in [min_score, 1], sorted by (-score, box)."""
    h, w = luma.shape
    assert len(props) <= proposer.max_regions
    for p in props:
        assert all(type(v) is int for v in p.box)
        x1, y1, x2, y2 = p.box
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert proposer.min_score <= p.score <= 1.0
    assert props == sorted(props, key=lambda p: (-p.score, p.box))


@pytest.fixture(scope="module")
def proposer() -> OpenCVPlateProposer:
    return OpenCVPlateProposer()


# -- construction ------------------------------------------------------------------------------


def test_defaults_and_identity(proposer: OpenCVPlateProposer) -> None:
    assert proposer.backend == "opencv"
    assert proposer.model is None
    assert proposer.min_score == 0.35
    assert proposer.max_regions == 4
    assert proposer.work_max_width == 640
    assert proposer.min_plate_height == 8
    assert proposer.aspect_range == (2.0, 7.0)
    proposer.close()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_score": -0.1},
        {"min_score": 1.5},
        {"min_score": float("nan")},
        {"min_score": "high"},
        {"max_regions": 0},
        {"max_regions": 2.5},
        {"max_regions": True},
        {"work_max_width": 10},
        {"work_max_width": "640"},
        {"min_plate_height": 2},
        {"aspect_range": (7.0, 2.0)},
        {"aspect_range": (0.0, 5.0)},
        {"aspect_range": (2.0,)},
        {"aspect_range": "wide"},
    ],
)
def test_constructor_rejects_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        OpenCVPlateProposer(**kwargs)  # type: ignore[arg-type]


def test_bad_luma_is_refused(proposer: OpenCVPlateProposer) -> None:
    with pytest.raises(ValueError):
        proposer.propose(np.zeros((36, 64, 3), np.uint8), [])
    with pytest.raises(ValueError):
        proposer.propose(np.zeros((36, 64), np.float32), [])


# -- recall and false positives ----------------------------------------------------------------


def test_finds_plates_in_varied_scenes(proposer: OpenCVPlateProposer) -> None:
    n = 80
    hits = 0
    top_hits = 0
    for i in range(n):
        scene = make_scene(
            100 + i,
            plate_height=10 + (i * 7) % 27,  # 10..36 px, all sizes visited
            night=i % 5 == 0,
        )
        assert scene.plate is not None and scene.car is not None
        rois = [scene.car] if i % 2 else []
        props = proposer.propose(scene.luma, rois)
        _check_well_formed(props, scene.luma, proposer)
        hits += any(covers(p.box, scene.plate) for p in props)
        top_hits += bool(props) and covers(props[0].box, scene.plate)
    print(f"recall {hits / n:.3f}, plate ranked first {top_hits / n:.3f} over {n} scenes")
    assert hits >= 0.95 * n
    assert top_hits >= 0.9 * n


def test_finds_lit_plates_at_night(proposer: OpenCVPlateProposer) -> None:
    n = 12
    hits = 0
    for i in range(n):
        scene = make_scene(300 + i, night=True)
        assert scene.plate is not None and scene.car is not None
        assert float(scene.luma.mean()) < 40.0  # really a dark frame
        props = proposer.propose(scene.luma, [scene.car] if i % 2 else [])
        hits += any(covers(p.box, scene.plate) for p in props)
    assert hits >= n - 1


def test_plates_outscore_grilles(proposer: OpenCVPlateProposer) -> None:
    n = 12
    top_hits = 0
    for i in range(n):
        scene = make_scene(400 + i, grille=True)
        assert scene.plate is not None and scene.car is not None
        props = proposer.propose(scene.luma, [scene.car])
        top_hits += bool(props) and covers(props[0].box, scene.plate)
    assert top_hits >= n - 1


def test_few_proposals_without_plates(proposer: OpenCVPlateProposer) -> None:
    scenes: list[Scene] = []
    for i in range(12):
        scenes.append(make_scene(500 + i, with_plate=False, grille=i % 2 == 0))
        scenes.append(make_windows_scene(600 + i))
        scenes.append(make_road_scene(700 + i))
    counts = []
    for i, scene in enumerate(scenes):
        rois = [scene.car] if scene.car is not None and i % 2 else []
        props = proposer.propose(scene.luma, rois)
        _check_well_formed(props, scene.luma, proposer)
        counts.append(sum(p.score >= proposer.min_score for p in props))
    mean = float(np.mean(counts))
    print(f"false proposals per plate-free frame: {mean:.3f} over {len(scenes)} frames")
    assert mean < 0.5


# -- regions of interest -----------------------------------------------------------------------


def test_plate_outside_rois_is_not_returned(proposer: OpenCVPlateProposer) -> None:
    for seed in range(800, 806):
        scene = make_scene(seed, plate_height=12)
        assert scene.plate is not None and scene.car is not None
        w = scene.luma.shape[1]
        cx1, _, cx2, _ = scene.car
        # A tall region beside the car, clear of it even after the proposer's margin.
        roi = (0, 0, cx1 - 60, 360) if cx1 >= w - cx2 else (cx2 + 60, 0, w, 360)
        assert roi[2] - roi[0] >= 60
        props = proposer.propose(scene.luma, [roi])
        assert not any(_intersects(p.box, scene.plate) for p in props)
        assert any(covers(p.box, scene.plate) for p in proposer.propose(scene.luma, [scene.car]))


def test_boxes_are_in_source_coordinates_in_a_big_frame(proposer: OpenCVPlateProposer) -> None:
    rng = np.random.default_rng(900)
    canvas = _to_luma(rng, _road(rng, 1920, 1080, 110.0), 2.0)
    for k, (dx, dy) in enumerate([(1180, 650), (40, 700), (1250, 20)]):
        scene = make_scene(910 + k, plate_height=14 + 6 * k)
        assert scene.plate is not None and scene.car is not None
        frame = canvas.copy()
        frame[dy : dy + 360, dx : dx + 640] = scene.luma
        plate = (scene.plate[0] + dx, scene.plate[1] + dy, scene.plate[2] + dx, scene.plate[3] + dy)
        car = (scene.car[0] + dx, scene.car[1] + dy, scene.car[2] + dx, scene.car[3] + dy)
        props = proposer.propose(frame, [car])
        _check_well_formed(props, frame, proposer)
        assert any(covers(p.box, plate) for p in props)
        # Everything returned lies within the ROI grown by its margin.
        cw, ch = car[2] - car[0], car[3] - car[1]
        for p in props:
            assert p.box[0] >= car[0] - 0.2 * cw - 5 and p.box[2] <= car[2] + 0.2 * cw + 5
            assert p.box[1] >= car[1] - 0.2 * ch - 5 and p.box[3] <= car[3] + 0.2 * ch + 5


def test_wide_rois_are_downscaled_and_mapped_back() -> None:
    scene = make_scene(950, plate_height=32)
    assert scene.plate is not None and scene.car is not None
    small = OpenCVPlateProposer(work_max_width=320)
    for rois in ([], [scene.car]):
        props = small.propose(scene.luma, rois)
        _check_well_formed(props, scene.luma, small)
        assert any(covers(p.box, scene.plate) for p in props)
    big = make_scene(951, size=(1920, 1080), plate_height=36)
    assert big.plate is not None and big.car is not None
    assert big.car[2] - big.car[0] > 640 / 1.3  # the grown ROI is wider than the work width
    props = OpenCVPlateProposer().propose(big.luma, [big.car])
    assert any(covers(p.box, big.plate) for p in props)


def test_overlapping_rois_are_merged_and_odd_rois_tolerated(
    proposer: OpenCVPlateProposer,
) -> None:
    scene = make_scene(960, plate_height=20)
    assert scene.plate is not None and scene.car is not None
    x1, y1, x2, y2 = scene.car
    mid = (x1 + x2) // 2
    halves = [(x1, y1, mid + 10, y2), (mid - 10, y1, x2, y2)]
    props = proposer.propose(scene.luma, halves)
    assert sum(covers(p.box, scene.plate) for p in props) == 1  # found once, not per ROI
    # ROIs reaching outside the frame are clipped; empty or inverted ones are ignored.
    h, w = scene.luma.shape
    props = proposer.propose(scene.luma, [(-50, -50, w + 50, h + 50), (10, 10, 10, 40)])
    _check_well_formed(props, scene.luma, proposer)
    assert any(covers(p.box, scene.plate) for p in props)
    assert proposer.propose(scene.luma, [(30, 30, 20, 40), (w + 10, 0, w + 90, h)]) == []


# -- output contract ---------------------------------------------------------------------------


def _plate_wall(seed: int, n_plates: int) -> tuple[np.ndarray, list[Box]]:
    """A plain wall with `n_plates` plates on it, spaced apart."""
    rng = np.random.default_rng(seed)
    img = np.full((360, 640, 3), 90.0, np.float32)
    plates: list[Box] = []
    for k in range(n_plates):
        ph = 14 + 2 * k
        pw, _ = plate_size(ph)
        x, y = 20 + (k % 3) * 210, 40 + (k // 3) * 150
        img[y : y + ph, x : x + pw] = render_plate(random_plate_text(rng), ph)
        plates.append((x, y, x + pw, y + ph))
    return _to_luma(rng, img, 2.0), plates


def test_max_regions_and_min_score_are_respected() -> None:
    luma, plates = _plate_wall(970, 6)
    everything = OpenCVPlateProposer(max_regions=10).propose(luma, [])
    assert all(any(covers(p.box, plate) for p in everything) for plate in plates)
    assert len(everything) == len(plates)  # one box per plate: no duplicates survive NMS
    for k in (1, 2, 4):
        props = OpenCVPlateProposer(max_regions=k).propose(luma, [])
        assert len(props) == k
        assert props == everything[:k]
    strict = OpenCVPlateProposer(min_score=0.99, max_regions=10).propose(luma, [])
    assert all(p.score >= 0.99 for p in strict)
    assert strict == [p for p in everything if p.score >= 0.99]


def test_deterministic_and_sorted(proposer: OpenCVPlateProposer) -> None:
    luma, _ = _plate_wall(980, 5)
    scene = make_scene(981)
    assert scene.car is not None
    for frame, rois in ((luma, []), (scene.luma, [scene.car]), (scene.luma, [])):
        first = proposer.propose(frame, rois)
        again = OpenCVPlateProposer().propose(frame.copy(), list(rois))
        assert first == again
        _check_well_formed(first, frame, proposer)


def test_per_call_time_is_reported(proposer: OpenCVPlateProposer) -> None:
    """Measured, not asserted: the time per call on 640x360 frames with one or two ROIs."""
    scenes = [make_scene(990 + i) for i in range(10)]
    times = []
    for scene in scenes:
        assert scene.car is not None
        x1, y1, x2, y2 = scene.car
        for rois in ([scene.car], [scene.car, (0, 0, 160, 120)], [(x1, y1, x2, (y1 + y2) // 2)]):
            for _ in range(3):
                start = time.perf_counter()
                proposer.propose(scene.luma, rois)
                times.append(time.perf_counter() - start)
    ms = np.array(times) * 1000.0
    print(f"OpenCVPlateProposer 640x360: median {np.median(ms):.2f} ms, max {ms.max():.2f} ms")
