"""The shipped model's geometry: tiling keeps far plates big enough, and decoding undoes
exactly what training encodes."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from models.plate_geometry import (
    CLOSE_UP_SCALE,
    GRID,
    INPUT_SIZE,
    MAX_LEVEL_RATIO,
    MIN_PLATE_PX,
    TILE_OVERLAP,
    decode,
    inputs,
    iou,
    level_scales,
    shrink,
    suppress,
    tile_plan,
)
from training.augment import targets


@pytest.mark.parametrize(
    ("height", "width"), [(360, 640), (720, 1280), (1080, 1920), (2160, 3840), (300, 300)]
)
def test_the_finest_level_keeps_a_min_plate_at_the_models_size(height: int, width: int) -> None:
    scales = level_scales(height, width, 20)
    assert scales[0] == min(1.0, INPUT_SIZE / max(height, width))  # the whole image, once
    assert scales[-1] * 20 >= MIN_PLATE_PX - 1e-9 or scales[-1] == 1.0
    assert all(b / a <= MAX_LEVEL_RATIO + 1e-9 for a, b in itertools.pairwise(scales))


def test_a_small_crop_is_one_input_never_enlarged() -> None:
    assert level_scales(120, 200, 20) == [1.0]
    plan = tile_plan(120, 200, 20)
    assert plan[0].scale == 1.0 and len(inputs(plan)) == 1


@pytest.mark.parametrize(
    ("height", "width", "shares"),
    [(380, 700, True), (700, 380, True), (720, 1280, True), (480, 640, False), (416, 416, False)],
)
def test_the_close_up_view_rides_beside_the_whole_image_where_there_is_room(
    height: int, width: int, shares: bool
) -> None:
    plan = tile_plan(height, width, 20)
    fit, close = plan[0], plan[1]
    assert close.scale == fit.scale * CLOSE_UP_SCALE and close.min_width > 0
    assert close.shared == shares
    if shares:
        # Inside the input, clear of the whole image's view.
        h, w = round(height * fit.scale), round(width * fit.scale)
        ch, cw = round(h * CLOSE_UP_SCALE), round(w * CLOSE_UP_SCALE)
        assert close.ox + cw <= INPUT_SIZE and close.oy + ch <= INPUT_SIZE
        assert close.oy >= h + 8 or close.ox >= w + 8
    assert len(inputs(plan)) == len(plan) - shares
    assert len(inputs(tile_plan(height, width, 20, close_up=False))) == len(plan) - 1


@pytest.mark.parametrize(("height", "width"), [(720, 1280), (1080, 1920), (2160, 3840)])
def test_tiles_cover_every_level_with_overlap(height: int, width: int) -> None:
    plan = tile_plan(height, width, 20, close_up=False)
    for scale in {w.scale for w in plan}:
        h, w = round(height * scale), round(width * scale)
        tiles = [t for t in plan if t.scale == scale]
        covered = np.zeros((h, w), bool)
        for t in tiles:
            assert t.x >= 0 and t.y >= 0 and t.x < w and t.y < h
            covered[t.y : t.y + INPUT_SIZE, t.x : t.x + INPUT_SIZE] = True
        assert covered.all()
        xs = sorted({t.x for t in tiles})
        assert all(b - a <= INPUT_SIZE - TILE_OVERLAP for a, b in itertools.pairwise(xs))


def test_1080p_costs_few_inferences() -> None:
    # A whole 1080p frame at proposer.min_plate_px 20: the cost the bench's CPU line pays.
    assert len(inputs(tile_plan(1080, 1920, 20))) <= 30


def test_decode_undoes_the_training_targets() -> None:
    plates = [(40.0, 100.0, 120.0, 122.0), (150.5, 30.0, 171.5, 37.0)]
    heat, box, _ = targets(plates, GRID)
    found = suppress(decode(heat[..., 0], box, threshold=0.5), limit=8)
    assert len(found) == 2
    for plate in plates:
        assert max(iou(plate, f) for f in found) > 0.9


def test_suppress_keeps_the_best_of_overlapping_boxes() -> None:
    a, b, c = (0, 0, 100, 20, 0.9), (2, 1, 101, 21, 0.8), (200, 0, 260, 15, 0.7)
    assert suppress([b, c, a], limit=8) == [a, c]
    assert suppress([b, c, a], limit=1) == [a]


def test_a_flat_heat_map_gives_nothing() -> None:
    assert decode(np.zeros((GRID, GRID), np.float32), np.zeros((GRID, GRID, 4)), 0.3) == []


def test_every_tile_is_one_watched_inference() -> None:
    from models.manifest import load_manifest
    from models.registry import SHIPPED_MANIFEST
    from models.tflite_detector import open_cpu
    from models.tflite_runtime import require_runtime

    detector = open_cpu(load_manifest(SHIPPED_MANIFEST), require_runtime(), min_plate_px=20)
    ticks: list[int] = []
    detector.watch_inferences(lambda: ticks.append(1))
    detector.propose(np.full((720, 1280), 100, np.uint8), ())
    assert len(ticks) == len(inputs(tile_plan(720, 1280, 20))) == 9


@pytest.mark.parametrize(("width", "height"), [(420, 228), (256, 139), (70, 38), (699, 379)])
def test_shrink_gives_the_size_asked_and_stays_close_to_area_averaging(
    width: int, height: int
) -> None:
    rng = np.random.default_rng(3)
    image = cv2.GaussianBlur(rng.integers(0, 256, (380, 701), np.uint8), (0, 0), 6)
    image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX)
    image[150:200, 300:420] = 240  # a bright plate-sized block with hard edges
    out = shrink(image, width, height)
    assert out.shape == (height, width) and out.dtype == np.uint8
    area = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    assert np.abs(out.astype(int) - area.astype(int)).mean() < 4


def test_shrink_does_not_alias_fine_stripes_into_false_structure() -> None:
    stripes = np.zeros((400, 800), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: nothing should survive a 10x shrink
    out = shrink(stripes, 80, 40)
    assert out.std() < 3 and abs(float(out.mean()) - 127.5) < 3
