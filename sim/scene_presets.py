"""The named scene presets: the street, its nuisances (noise, rain, flicker, shake, night),
every nuisance at once, the hard cases (creeping traffic, blur, an empty street) and the
demo."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from sim.scene_spec import SceneSpec, Vehicle

# --------------------------------------------------------------------------- presets

_BLUE, _RED, _SILVER, _WHITE = (150, 70, 35), (40, 40, 170), (175, 175, 172), (220, 222, 225)
_BLACK, _GREEN, _YELLOW = (45, 45, 50), (60, 120, 50), (40, 170, 215)


def _street() -> SceneSpec:
    return SceneSpec(
        seconds=12.0,
        seed=101,
        vehicles=(
            Vehicle(3.5, 190, 1, lane_y=0.70, color=_BLUE, plate_height_px=20),
            Vehicle(
                4.5,
                150,
                -1,
                lane_y=0.92,
                length_px=240,
                height_px=120,
                color=_RED,
                plate_height_px=26,
            ),
            Vehicle(8.0, 65, 1, lane_y=0.81, color=_SILVER, plate_height_px=22),
        ),
    )


def _noise() -> SceneSpec:
    return SceneSpec(
        seconds=12.0,
        seed=202,
        noise_sigma=7.0,
        vehicles=(
            Vehicle(3.0, 170, -1, lane_y=0.90, color=_WHITE, plate_height_px=24),
            Vehicle(9.4, 300, 1, lane_y=0.72, color=_GREEN, plate_height_px=18),
        ),
    )


def _rain() -> SceneSpec:
    return SceneSpec(
        seconds=10.0,
        seed=303,
        rain=12.0,
        noise_sigma=3.0,
        vehicles=(
            Vehicle(2.5, 150, 1, lane_y=0.74, color=_BLACK, plate_height_px=22),
            Vehicle(
                4.5,
                220,
                -1,
                lane_y=0.92,
                length_px=230,
                height_px=115,
                color=_YELLOW,
                plate_height_px=26,
            ),
        ),
    )


def _flicker() -> SceneSpec:
    return SceneSpec(
        seconds=10.0,
        seed=404,
        flicker=0.12,
        auto_exposure=0.2,
        vehicles=(
            Vehicle(3.0, 200, -1, lane_y=0.74, color=_SILVER, plate_height_px=24),
            Vehicle(
                4.5,
                180,
                1,
                lane_y=0.93,
                length_px=250,
                height_px=125,
                color=_BLUE,
                plate_height_px=28,
            ),
        ),
    )


def _shake() -> SceneSpec:
    return SceneSpec(
        seconds=10.0,
        seed=505,
        shake_px=3.0,
        vehicles=(
            Vehicle(1.0, 180, 1, lane_y=0.72, color=_RED, plate_height_px=20),
            Vehicle(3.0, 210, -1, lane_y=0.91, color=_GREEN, plate_height_px=24),
        ),
    )


def _creeping() -> SceneSpec:
    # Queueing traffic edging forward: a few pixels per second, plates in view for seconds.
    return SceneSpec(
        seconds=20.0,
        seed=606,
        vehicles=(
            Vehicle(
                3.0,
                20,
                1,
                lane_y=0.72,
                length_px=180,
                height_px=95,
                color=_WHITE,
                plate_height_px=18,
            ),
            Vehicle(
                6.0,
                12,
                -1,
                lane_y=0.92,
                length_px=180,
                height_px=95,
                color=_RED,
                plate_height_px=18,
            ),
            Vehicle(
                13.0,
                8,
                1,
                lane_y=0.72,
                length_px=170,
                height_px=90,
                color=_BLACK,
                plate_height_px=16,
            ),
        ),
    )


def _night() -> SceneSpec:
    return SceneSpec(
        seconds=10.0,
        seed=707,
        night=True,
        noise_sigma=3.0,
        vehicles=(
            Vehicle(2.5, 170, 1, lane_y=0.74, color=_SILVER, plate_height_px=24),
            Vehicle(
                4.5,
                200,
                -1,
                lane_y=0.92,
                length_px=240,
                height_px=120,
                color=_RED,
                plate_height_px=26,
            ),
        ),
    )


def _night_unlit() -> SceneSpec:
    return SceneSpec(
        seconds=10.0,
        seed=808,
        night=True,
        noise_sigma=3.0,
        vehicles=(
            Vehicle(2.5, 180, -1, lane_y=0.90, color=_BLUE, plate_height_px=24, lit=False),
            Vehicle(5.2, 190, 1, lane_y=0.74, color=_WHITE, plate_height_px=22),
        ),
    )


def _blurred() -> SceneSpec:
    return SceneSpec(
        seconds=10.0,
        seed=909,
        vehicles=(
            Vehicle(1.0, 450, 1, lane_y=0.72, color=_BLUE, plate_height_px=22, blur_px=30),
            Vehicle(
                3.5,
                600,
                -1,
                lane_y=0.92,
                length_px=240,
                height_px=120,
                color=_RED,
                plate_height_px=26,
                blur_px=40,
            ),
            Vehicle(5.5, 400, 1, lane_y=0.81, color=_YELLOW, plate_height_px=20, blur_px=25),
        ),
    )


def _empty() -> SceneSpec:
    return SceneSpec(
        seconds=8.0,
        seed=1010,
        rain=12.0,
        flicker=0.12,
        shake_px=3.0,
        noise_sigma=4.0,
    )


def _demo() -> SceneSpec:
    return SceneSpec(
        width=960,
        height=540,
        seconds=12.0,
        seed=2024,
        noise_sigma=2.5,
        rain=3.0,
        auto_exposure=0.05,
        vehicles=(
            Vehicle(
                2.5,
                240,
                1,
                lane_y=0.72,
                length_px=330,
                height_px=165,
                color=_BLUE,
                plate_text="PS 204 DM",
                plate_height_px=28,
            ),
            Vehicle(
                5.5,
                240,
                -1,
                lane_y=0.93,
                length_px=350,
                height_px=175,
                color=_RED,
                plate_height_px=30,
            ),
        ),
    )


def _everything() -> SceneSpec:
    """The street with every nuisance at once, and a fourth car."""
    return dataclasses.replace(
        _street(),
        rain=12,
        flicker=0.12,
        auto_exposure=0.2,
        shake_px=3,
        noise_sigma=5,
        vehicles=(
            *_street().vehicles,
            Vehicle(enter_s=1.0, speed_px_s=120, lane_y=0.9, color=(118, 118, 118)),
        ),
    )


_PRESETS: dict[str, Callable[[], SceneSpec]] = {
    "street": _street,
    "noise": _noise,
    "rain": _rain,
    "flicker": _flicker,
    "shake": _shake,
    "creeping": _creeping,
    "night": _night,
    "night_unlit": _night_unlit,
    "everything": _everything,
    "blurred": _blurred,
    "empty": _empty,
    "demo": _demo,
}


def preset(name: str, **overrides: Any) -> SceneSpec:
    """A named preset scene, with any SceneSpec fields overridden."""
    try:
        base = _PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
    return dataclasses.replace(base, **overrides)


PRESETS: tuple[str, ...] = tuple(_PRESETS)


__all__ = ["PRESETS", "preset"]
