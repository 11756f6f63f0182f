"""Lighting, contrast and sharpness are judged on the moving region, not the whole frame."""

from __future__ import annotations

import cv2
import numpy as np

from platesift.quality import measure
from sim.plates import render_plate


def car_with_plate(
    h: int = 270, w: int = 480, night: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """A grey analysis frame with a car and a plate, and the car's mask."""
    scale = 0.12 if night else 1.0
    img = np.full((h, w), 110 * scale, np.float32)
    mask = np.zeros((h, w), np.uint8)
    x1, y1, x2, y2 = 150, 120, 330, 210
    img[y1:y2, x1:x2] = 70 * scale
    img[y1 + 10 : y1 + 40, x1 + 20 : x2 - 20] = 40 * scale  # windows
    plate = cv2.cvtColor(render_plate("AB 123 CD", 14), cv2.COLOR_BGR2GRAY)
    ph, pw = plate.shape
    px, py = (x1 + x2 - pw) // 2, y2 - 30
    img[py : py + ph, px : px + pw] = plate  # a lit plate stays bright at night
    mask[y1:y2, x1:x2] = 255
    return np.clip(img, 0, 255).astype(np.uint8), mask


def motion_blur(img: np.ndarray, length: int) -> np.ndarray:
    kernel = np.full((1, length), 1.0 / length, np.float32)
    return cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REPLICATE)


def test_sharp_plate_has_narrow_edges() -> None:
    img, mask = car_with_plate()
    q = measure(img, mask, max_width=4.0)
    assert q.edge_width <= 3.0
    assert q.clarity >= 0.6


def test_horizontal_motion_blur_is_caught_although_horizontal_edges_stay_sharp() -> None:
    img, mask = car_with_plate()
    blurred = motion_blur(img, 15)
    q = measure(blurred, mask, max_width=4.0)
    assert q.edge_width > 6.0
    assert q.clarity < 0.34


def test_vertical_motion_blur_is_caught_too() -> None:
    img, mask = car_with_plate()
    blurred = cv2.filter2D(img, -1, np.full((12, 1), 1 / 12, np.float32))
    assert measure(blurred, mask, max_width=4.0).edge_width > 5.0


def test_night_frame_with_a_lit_plate_is_not_dark() -> None:
    img, mask = car_with_plate(night=True)
    assert float(img.mean()) < 30  # the frame as a whole is dark
    q = measure(img, mask, max_width=4.0)
    assert q.lighting > 150  # but the moving region holds a lit plate
    assert q.contrast > 30  # well above the flat threshold


def test_unlit_car_at_night_is_dark() -> None:
    img, mask = car_with_plate(night=True)
    img[mask > 0] = np.clip(img[mask > 0] * 0.12, 0, 255).astype(np.uint8)
    assert measure(img, mask, max_width=4.0).lighting < 40


def test_flat_region_has_no_contrast() -> None:
    img = np.full((100, 100), 128, np.uint8)
    mask = np.full((100, 100), 255, np.uint8)
    q = measure(img, mask, max_width=4.0)
    assert q.contrast == 0.0
