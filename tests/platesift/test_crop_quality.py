"""Crop quality ranks what a reader would read best: bigger, sharper, contrastier, lit, face
on, confidently proposed and whole beats the opposite, one part at a time."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from platesift.crop_quality import CropQuality, crop_quality


def plate(width: int = 100, height: int = 22, *, low: int = 30, high: int = 220) -> np.ndarray:
    """A synthetic plate: dark characters on a light field, sharp edges."""
    img = np.full((height, width), high, np.uint8)
    step = max(4, width // 10)
    for x in range(step // 2, width - step // 2, step):
        cv2.rectangle(img, (x, height // 5), (x + step // 3, height - height // 5), low, -1)
    return img


def q(image: np.ndarray, score: float = 0.8, edge: bool = False) -> CropQuality:
    return crop_quality(image, score, touches_edge=edge)


def test_every_part_and_the_value_are_in_range() -> None:
    got = q(plate())
    assert all(0 < v <= 1 for v in got.parts().values())
    assert 0 < got.value <= 1
    assert set(got.parts()) == {
        "size",
        "sharpness",
        "contrast",
        "lighting",
        "aspect",
        "score",
        "edge",
    }


def test_a_bigger_view_of_the_same_plate_is_better() -> None:
    small = cv2.resize(plate(200, 44), (50, 11), interpolation=cv2.INTER_AREA)
    big = plate(200, 44)
    assert q(big).size > q(small).size and q(big).value > q(small).value


def test_motion_blur_along_the_text_lowers_the_quality() -> None:
    sharp = plate()
    kernel = np.full((1, 9), 1 / 9, np.float32)
    smeared = cv2.filter2D(sharp, -1, kernel)
    assert q(smeared).sharpness < 0.6 * q(sharp).sharpness
    assert q(smeared).value < q(sharp).value


def test_a_dark_low_contrast_view_is_worse() -> None:
    lit, dim = plate(), plate(low=10, high=40)
    assert q(dim).contrast < q(lit).contrast and q(dim).lighting < q(lit).lighting
    assert q(dim).value < q(lit).value


def test_a_box_at_the_frame_edge_and_a_square_box_are_worse() -> None:
    p = plate()
    assert q(p, edge=True).value == pytest.approx(q(p).value * 0.5, abs=1e-4)
    squashed = cv2.resize(p, (30, 22))  # seen at a steep angle
    assert q(squashed).aspect < q(p).aspect


def test_the_proposers_score_counts() -> None:
    assert q(plate(), score=0.9).value > q(plate(), score=0.3).value


def test_an_empty_crop_is_the_worst_but_defined() -> None:
    got = q(np.zeros((0, 10), np.uint8))
    assert 0 < got.value < q(plate()).value


def test_it_is_deterministic() -> None:
    assert q(plate()) == q(plate())
