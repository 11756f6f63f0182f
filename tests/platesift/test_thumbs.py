"""Thumbnails: the region with its margin, scaled down when wide, in colour exactly as the
whole frame's I420 -> BGR conversion gives it, and greyscale when there is no chroma."""

from __future__ import annotations

import cv2
import numpy as np

from platesift.thumbs import colour_pixels, encode_jpeg, thumb_pixels


def i420_frame(
    h: int = 120, w: int = 160, seed: int = 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(16, 236, (h, w), np.uint8)
    u = rng.integers(16, 241, (h // 2, w // 2), np.uint8)
    v = rng.integers(16, 241, (h // 2, w // 2), np.uint8)
    return y, u, v


def test_colour_is_the_whole_frames_conversion_cut_on_the_chroma_grid() -> None:
    y, u, v = i420_frame()
    whole = cv2.cvtColor(
        np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(180, 160), cv2.COLOR_YUV2BGR_I420
    )
    box = (33, 21, 71, 40)  # odd corners: moved out to 32, 20 and 72, 40 (margin 0)
    got = colour_pixels(y, (u, v), box, 0.0)
    assert got is not None and got.shape == (20, 40, 3)
    assert np.array_equal(got, whole[20:40, 32:72])
    pixels = thumb_pixels(y, box, margin=0.0, max_width=256, chroma=(u, v))
    assert np.array_equal(pixels, got)


def test_without_chroma_or_on_an_odd_edge_it_is_grey() -> None:
    y, u, v = i420_frame(h=121, w=161)
    assert thumb_pixels(y, (10, 10, 40, 30), margin=0.0, max_width=256).ndim == 2
    u2, v2 = np.resize(u, (61, 81)), np.resize(v, (61, 81))
    # The box reaches the odd last row and column: no whole chroma block there.
    assert colour_pixels(y, (u2, v2), (140, 100, 161, 121), 0.0) is None
    grey = thumb_pixels(y, (140, 100, 161, 121), margin=0.0, max_width=256, chroma=(u2, v2))
    assert grey.ndim == 2 and np.array_equal(grey, y[100:121, 140:161])


def test_a_wide_region_is_scaled_down_and_the_jpeg_is_deterministic() -> None:
    y, u, v = i420_frame(h=120, w=640)
    pixels = thumb_pixels(y, (0, 40, 600, 80), margin=0.0, max_width=100, chroma=(u, v))
    assert pixels.shape == (7, 100, 3)
    assert encode_jpeg(pixels, 90) == encode_jpeg(pixels.copy(), 90)
