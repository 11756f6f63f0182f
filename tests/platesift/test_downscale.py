"""Image reductions: sizes, box averaging, and the cheap motion image against a plain one."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from platesift.downscale import analysis_size, motion_image, motion_size, shrink


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1)).astype(np.uint8)
    img = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


def test_sizes() -> None:
    assert analysis_size(1920, 1080, 480) == (480, 270)
    assert analysis_size(320, 240, 480) == (320, 240)  # never upscaled
    assert motion_size(1920, 1080, 480, 240) == (240, 135)  # an exact 8x
    assert motion_size(320, 240, 160, 240) == (160, 120)  # at most the analysis width


def test_shrink_is_one_area_average_and_never_a_view() -> None:
    luma = textured(1080, 1920)
    out = shrink(luma, (480, 270))
    exact = cv2.resize(luma, (480, 270), interpolation=cv2.INTER_AREA)
    assert np.abs(out.astype(int) - exact.astype(int)).max() <= 1
    same = shrink(luma[:270, :480], (480, 270))
    assert not np.shares_memory(same, luma)


@pytest.mark.parametrize("shape", [(1080, 1920), (720, 1280), (240, 320)])
def test_motion_image_is_close_to_a_full_box_average(shape: tuple[int, int]) -> None:
    height, width = shape
    luma = textured(height, width, seed=height)
    size = motion_size(width, height, min(480, width), 240)
    small = motion_image(luma, size)
    exact = cv2.resize(luma, size, interpolation=cv2.INTER_AREA)
    assert small.shape == (size[1], size[0]) and small.dtype == np.uint8
    # Every other source row only (above 4x): a few levels off on this harsh texture (full
    # range every 16 px), identical to `shrink` below 4x.
    error = np.abs(small.astype(int) - exact.astype(int))
    assert error.mean() < 2.5 and np.percentile(error, 99) <= 10
    if width < 4 * size[0]:
        assert np.array_equal(small, shrink(luma, size))
    assert not np.shares_memory(small, luma)
