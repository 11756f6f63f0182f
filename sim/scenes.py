"""Synthetic street-scene videos with ground truth.

This module owns the deterministic scene generator used to measure the filter: the scene
and vehicle specs, frame rendering (a textured street background, vehicles carrying plates
from `sim.plates`, and the nuisances: flicker, auto-exposure, night, rain, camera shake and
sensor noise), the per-frame ground truth (where each plate is, whether it is readable,
whether anything moves), writing the video, and the named presets.

Plates in the ground truth are listed when any of their pixels is in the frame; boxes use
the unshaken positions. Nearer lanes (larger `lane_y`) are drawn over farther ones, and a
plate that a nearer vehicle covers, even partly, is not readable.

Everything is a pure function of the `SceneSpec`: the same spec gives the same frames byte
for byte. Randomness comes only from `numpy.random.default_rng` streams derived from
`SceneSpec.seed` (never global random state).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2

from sim.scene_drawing import _Scene
from sim.scene_presets import PRESETS, preset
from sim.scene_spec import (
    Frame,
    FrameTruth,
    GroundTruth,
    PlateTruth,
    SceneSpec,
    Vehicle,
    frame_count,
)

# --------------------------------------------------------------------------- frames


def iter_frames(spec: SceneSpec) -> Iterator[tuple[Frame, FrameTruth]]:
    """Yield (BGR uint8 frame of shape (H, W, 3), its ground truth) for every frame."""
    scene = _Scene(spec)
    for index in range(frame_count(spec)):
        yield scene.frame(index)


def render_frame(spec: SceneSpec, index: int) -> tuple[Frame, FrameTruth]:
    """One frame and its truth, without rendering the frames before it (every frame is a pure
    function of the spec and its index): what `iter_frames` yields at `index`."""
    return _Scene(spec).frame(index)


def ground_truth(spec: SceneSpec) -> GroundTruth:
    """The ground truth of a clip without rendering any pixels (fast)."""
    scene = _Scene(spec)
    frames = []
    for index in range(frame_count(spec)):
        frames.append(scene.truth(index, scene.placements(index / spec.fps)))
    return GroundTruth(spec=spec, frames=tuple(frames))


def render(spec: SceneSpec, path: str | Path) -> GroundTruth:
    """Write the clip to `path` with cv2.VideoWriter and return its ground truth."""
    path = Path(path)
    writer = cv2.VideoWriter(
        str(path),
        cv2.VideoWriter.fourcc(*spec.fourcc),
        float(spec.fps),
        (spec.width, spec.height),
    )
    if not writer.isOpened():
        raise RuntimeError(
            f"cannot open a video writer for {str(path)!r} (fourcc {spec.fourcc!r}, "
            f"{spec.width}x{spec.height} @ {spec.fps} fps): check that the directory exists, "
            "that the extension suits the codec ('mp4v' -> .mp4, 'MJPG' -> .avi) and that "
            "OpenCV was built with video I/O"
        )
    frames = []
    try:
        for image, truth in iter_frames(spec):
            writer.write(image)
            frames.append(truth)
    finally:
        writer.release()
    return GroundTruth(spec=spec, frames=tuple(frames))


__all__ = [
    "PRESETS",
    "FrameTruth",
    "GroundTruth",
    "PlateTruth",
    "SceneSpec",
    "Vehicle",
    "frame_count",
    "ground_truth",
    "iter_frames",
    "preset",
    "render",
    "render_frame",
]
