"""Synthetic training stills: frames of `sim/` street scenes, as extra positives.

The scenes the tests measure are `sim`'s presets; these are scenes of their own: seeds from
SEED_BASE up (the presets' are below 2100) and random vehicles, sizes and nuisances (noise,
rain, flicker, camera shake, night, motion blur). Each still is one frame in which every
plate in view is whole and readable, so no plate in it goes unlabelled.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from sim.scenes import SceneSpec, Vehicle, ground_truth, render_frame
from training.data import Sample

SOURCE = "sim"
SEED_BASE = 50_000
SIZES = ((640, 360), (960, 540), (1280, 720))
STILLS = 400


def _vehicle(rng: np.random.Generator, width: int) -> Vehicle:
    length = int(rng.uniform(170, 340) * width / 640)
    height = int(length * rng.uniform(0.45, 0.6))
    plate_h = int(rng.uniform(9, min(0.3 * height, 0.18 * length)))
    return Vehicle(
        enter_s=float(rng.uniform(0.0, 2.0)),
        speed_px_s=float(rng.uniform(40, 400) * width / 640),
        direction=int(rng.choice((1, -1))),
        lane_y=float(rng.uniform(0.6, 0.97)),
        length_px=length,
        height_px=height,
        color=tuple(int(c) for c in rng.integers(20, 235, 3)),  # type: ignore[arg-type]
        plate_height_px=max(plate_h, 6),
        blur_px=int(rng.choice((0, 0, 0, 1, 2))),
        lit=True,
    )


def _spec(rng: np.random.Generator, seed: int) -> SceneSpec:
    width, height = SIZES[int(rng.integers(len(SIZES)))]
    return SceneSpec(
        width=width,
        height=height,
        seconds=6.0,
        fps=10.0,
        seed=seed,
        vehicles=tuple(_vehicle(rng, width) for _ in range(int(rng.integers(1, 4)))),
        noise_sigma=float(rng.uniform(1.0, 8.0)),
        rain=float(rng.uniform(0, 15)) if rng.random() < 0.3 else 0.0,
        flicker=float(rng.uniform(0, 0.15)) if rng.random() < 0.3 else 0.0,
        auto_exposure=float(rng.uniform(0, 0.25)) if rng.random() < 0.3 else 0.0,
        shake_px=float(rng.uniform(0, 4)) if rng.random() < 0.3 else 0.0,
        night=bool(rng.random() < 0.25),
    )


def synthetic_stills(count: int = STILLS, seed: int = 0) -> list[tuple[Sample, np.ndarray]]:
    """`count` grey stills with their plate boxes, the same for the same arguments."""
    out: list[tuple[Sample, np.ndarray]] = []
    scene = 0
    while len(out) < count:
        scene_seed = SEED_BASE + seed * 100_000 + scene
        scene += 1
        rng = np.random.default_rng(scene_seed)
        spec = _spec(rng, scene_seed)
        frames = [
            f
            for f in ground_truth(spec).frames
            if f.plates and all(p.fully_visible and p.readable for p in f.plates)
        ]
        if not frames:
            continue
        frame, truth = render_frame(spec, frames[int(rng.integers(len(frames)))].index)
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        plates = tuple(tuple(float(v) for v in p.box) for p in truth.plates)
        sample = Sample(SOURCE, Path(SOURCE) / f"{scene_seed}.png", "train", plates)  # type: ignore[arg-type]
        out.append((sample, grey))
    return out


__all__ = ["SEED_BASE", "SIZES", "SOURCE", "STILLS", "synthetic_stills"]
