"""The motion detector ignores what cameras do on their own and sees what really moves."""

from __future__ import annotations

import cv2
import numpy as np

from platesift.config import MotionSettings
from platesift.motion import MotionDetector

H, W = 135, 240


def scene(seed: int = 0) -> np.ndarray:
    """Blocky texture with hard edges, like buildings and road markings."""
    rng = np.random.default_rng(seed)
    base = rng.integers(50, 200, (H // 6 + 1, W // 6 + 1)).astype(np.uint8)
    big = cv2.resize(base, (W // 6 * 6 + 6, H // 6 * 6 + 6), interpolation=cv2.INTER_NEAREST)
    return big[:H, :W].astype(np.float32)


def crossing(i: int, start: int = 20, speed: float = 3.0) -> float | None:
    """x of an object crossing the frame, or None when it is not in view."""
    x = -40 + speed * (i - start)
    return x if i >= start and -35 < x < W - 5 else None  # at least 5 px of it in view


def noisy(img: np.ndarray, rng: np.random.Generator, sigma: float = 3.0) -> np.ndarray:
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def run(frames: list[np.ndarray], settings: MotionSettings | None = None) -> list[bool]:
    det = MotionDetector(settings or MotionSettings())
    det.bootstrap(frames[:12])
    return [det.detect(f).moving for f in frames]


def with_box(
    img: np.ndarray, x: float, y: int = 50, w: int = 40, h: int = 25, value: float = 235.0
) -> np.ndarray:
    out = img.copy()
    x0 = round(x)
    out[y : y + h, max(0, x0) : max(0, x0 + w)] = value
    return out


def test_sensor_noise_alone_is_static() -> None:
    rng = np.random.default_rng(1)
    bg = scene()
    assert not any(run([noisy(bg, rng, 6.0) for _ in range(200)]))


def test_a_crossing_object_is_seen_in_every_frame_it_is_in() -> None:
    rng = np.random.default_rng(2)
    bg = scene()
    frames = [noisy(with_box(bg, -40 + 3 * i) if 20 <= i < 110 else bg, rng) for i in range(130)]
    moving = run(frames)
    inside = [i for i in range(20, 110) if -40 + 3 * i > -35 and -40 + 3 * i < W - 5]
    assert all(moving[i] for i in inside)
    assert not any(moving[i] for i in range(115, 130))  # no ghost after it left
    assert not any(moving[:20])


def test_brightness_flicker_and_auto_exposure_are_static() -> None:
    rng = np.random.default_rng(3)
    bg = scene()
    frames, truth = [], []
    for i in range(200):
        gain = (1 + rng.uniform(-0.15, 0.15)) * (1 + 0.25 * np.sin(i / 20))
        x = crossing(i, start=100)
        frames.append(noisy((with_box(bg, x, value=120.0) if x is not None else bg) * gain, rng))
        truth.append(x is not None)
    moving = run(frames)
    assert sum(m and not t for m, t in zip(moving, truth)) <= 2  # flicker alone: static
    assert all(m for m, t in zip(moving, truth) if t)  # and a real object is still seen


def test_small_camera_shake_is_static() -> None:
    rng = np.random.default_rng(4)
    bg = scene()
    frames, truth = [], []
    for i in range(200):
        dx, dy = rng.uniform(-1.5, 1.5, 2)  # beyond 1 px: shake_px=0 fails this test
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        x = crossing(i, start=100)
        img = with_box(bg, x, value=120.0) if x is not None else bg
        frames.append(noisy(cv2.warpAffine(img, m, (W, H), borderMode=cv2.BORDER_REFLECT), rng))
        truth.append(x is not None)
    moving = run(frames)
    assert sum(m and not t for m, t in zip(moving, truth)) <= 3  # shake alone: static
    assert all(m for m, t in zip(moving, truth) if t)


def test_slow_creeping_object_is_not_absorbed() -> None:
    rng = np.random.default_rng(5)
    bg = scene()
    # 0.1 motion-frame px per frame: a car creeping at walking pace, 400 frames in view
    frames = [noisy(bg, rng) for _ in range(20)]
    frames += [noisy(with_box(bg, 60 + 0.1 * i, w=60, value=30.0), rng) for i in range(400)]
    moving = run(frames)
    assert all(moving[20:])


def test_thin_rain_streaks_are_static() -> None:
    rng = np.random.default_rng(6)
    bg = scene()
    frames = []
    for _ in range(150):
        f = bg.copy()
        for _ in range(15):
            x, y = int(rng.integers(0, W - 6)), int(rng.integers(0, H - 12))
            cv2.line(f, (x, y), (x + 3, y + 10), 255.0, 1)
        frames.append(noisy(f, rng))
    assert sum(run(frames)) <= 3


def test_motion_inside_a_camera_mask_is_not_motion() -> None:
    # A burned-in clock in the top-left corner changes every frame; a car crosses below it.
    from platesift.masks import parse_masks, raster

    rng = np.random.default_rng(4)
    bg = scene()
    frames = []
    for i in range(130):
        img = with_box(bg, 2, y=2, w=50, h=12, value=40.0 + 150 * (i % 2))  # the clock
        if 40 <= i < 60:
            img = with_box(img, 20 + 3 * (i - 40), y=80)
        frames.append(noisy(img, rng))
    ignore = raster(parse_masks("0,0 60,0 60,16 0,16"), (W, H), (W, H))
    det = MotionDetector(MotionSettings(), ignore)
    det.bootstrap(frames[:12])
    moving = [det.detect(f).moving for f in frames]
    assert moving[40:60] == [True] * 20
    assert not any(moving[12:40]) and not any(moving[62:])
    assert any(run(frames)[12:40])  # unmasked, the clock is motion
