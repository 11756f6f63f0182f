"""The bench's inputs and its recall check: the 1080p street clip (made once, cached), its 4x
repeat, H.264 encoding, and the synthetic scenes' plate-frame recall with the default and the
fast decoding."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

WIDTH, HEIGHT, FPS = 1920, 1080, 25
BITRATE = 6_000_000
FAST_MODE = "skip-deblock"
SCENE_BITRATE = 1_000_000  # the 640x360 synthetic scenes: a little more than 6 Mbit/s / 9


# --- the clip ------------------------------------------------------------------------------------


CLIP_VERSION = 2  # part of the cached clips' names: a changed clip is never read stale
FIRST_CAR_S = 1.0


def clip_spec(seconds: float) -> Any:
    """A mostly static 1080p street with a car every 15 s, the first 1 s in: the bound on
    proposing (`max(decode, N x L)`) assumes the proposer can start at once, so a long empty
    start would measure the wait for the first car rather than overlap."""
    from sim.scenes import SceneSpec, Vehicle

    cars = []
    for i, start in enumerate(np.arange(FIRST_CAR_S, seconds - 5.0, 15.0)):
        cars.append(
            Vehicle(
                enter_s=float(start),
                speed_px_s=520.0 + 60 * (i % 3),
                direction=1 if i % 2 else -1,
                lane_y=0.78 + 0.08 * (i % 2),
                length_px=640,
                height_px=300,
                color=((40, 60, 160), (150, 150, 150), (30, 30, 30))[i % 3],
                plate_height_px=48,
            )
        )
    return SceneSpec(
        width=WIDTH,
        height=HEIGHT,
        fps=FPS,
        seconds=seconds,
        seed=7,
        noise_sigma=2.0,
        vehicles=tuple(cars),
    )


def make_clip(path: Path, seconds: float) -> Path:
    """Render and encode the clip with libx264 (PyAV), unless it is already there."""
    from sim.scenes import iter_frames

    if path.exists():
        return path
    return encode_h264((f for f, _ in iter_frames(clip_spec(seconds))), path, FPS, BITRATE)


def encode_h264(frames: Iterable[np.ndarray], path: Path, fps: float, bitrate: int) -> Path:
    """Encode BGR frames as H.264 (libx264 via PyAV, 2 s GOP, B-frames), like a camera would."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial.mp4")
    with av.open(str(tmp), "w") as out:
        stream = None
        for frame in frames:
            if stream is None:
                stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                stream.width, stream.height = frame.shape[1], frame.shape[0]
                stream.pix_fmt = "yuv420p"
                stream.bit_rate = bitrate
                stream.options = {"preset": "veryfast", "g": str(round(2 * fps)), "bf": "2"}
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                out.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                out.mux(packet)
    os.replace(tmp, path)
    return path


def repeat_clip(source: Path, path: Path, times: int) -> Path:
    """The same H.264 stream `times` over, by remuxing packets (no re-encoding)."""
    import av

    if path.exists():
        return path
    tmp = path.with_suffix(".partial.mp4")
    with av.open(str(source)) as src:
        in_stream = src.streams.video[0]
        packets = [p for p in src.demux(in_stream) if p.dts is not None and p.pts is not None]
        stamps = [(int(p.pts or 0), int(p.dts or 0)) for p in packets]
        span = max(pts for pts, _ in stamps) + (stamps[1][0] - stamps[0][0] or 1)
        with av.open(str(tmp), "w") as out:
            stream = out.add_stream_from_template(in_stream)
            for k in range(times):
                for p, (pts, dts) in zip(packets, stamps):
                    p.stream = stream
                    p.pts = pts + k * span
                    p.dts = dts + k * span
                    out.mux(p)
    os.replace(tmp, path)
    return path


# --- recall of the fast mode ---------------------------------------------------------------------


def scene_specs() -> dict[str, Any]:
    """The synthetic scenes of tests/test_targets.py (every preset but the demo)."""
    from sim.scenes import PRESETS, preset

    return {name: preset(name) for name in PRESETS if name != "demo"}


def render_h264(spec: Any, path: Path) -> Any:
    """Render a scene as H.264 (once, cached); return its ground truth."""
    from sim.scenes import ground_truth, iter_frames

    if not path.exists():
        encode_h264((f for f, _ in iter_frames(spec)), path, spec.fps, SCENE_BITRATE)
    return ground_truth(spec)


def scene_recall(
    names: Sequence[str], data: Path, fast_decode: str, scratch: Path
) -> dict[str, dict[str, Any]]:
    """Run the worker on each scene (H.264); plate-frame recall and counts, from the
    artifacts, the way tests/test_targets.py measures them."""
    from actors.messages import TaskSpec
    from platesift.app.worker import Worker
    from platesift.config import load_settings

    specs = scene_specs()
    settings = load_settings(
        env={},
        overrides=[
            f"paths.journal={scratch / 'journal.db'}",
            f"paths.scratch={scratch / 'scratch'}",
            f"analysis.fast_decode={fast_decode}",
        ],
    )
    out: dict[str, dict[str, Any]] = {}
    with Worker(settings) as worker:
        for name in names:
            video = data / f"{name}.mp4"
            truth = render_h264(specs[name], video)
            dest = scratch / f"{name}-{fast_decode}"
            outcome = worker.run(
                TaskSpec(task_id=name, source=str(video), source_name=video.name, dest=str(dest))
            )
            if outcome.outcome != "done":
                raise RuntimeError(f"{name}: {outcome.detail}")
            kept = {
                json.loads(line)["frame"]
                for line in (dest / "frames.jsonl").read_text().splitlines()
            }
            readable = truth.readable_plate_frames()
            out[name] = {
                "frames": len(truth.frames),
                "moving": len(truth.moving_frames()),
                "readable": len(readable),
                "kept": len(kept),
                "recall": len(readable & kept) / len(readable) if readable else None,
            }
    return out


def recall_table(data: Path) -> dict[str, Any]:
    """Recall of the default and the fast decoding, side by side, on every scene."""
    names = sorted(scene_specs())
    with tempfile.TemporaryDirectory(prefix="platesift-recall-") as tmp:
        default = scene_recall(names, data, "off", Path(tmp))
        fast = scene_recall(names, data, FAST_MODE, Path(tmp))
    return {name: {"off": default[name], FAST_MODE: fast[name]} for name in names}


__all__ = [
    "BITRATE",
    "CLIP_VERSION",
    "FAST_MODE",
    "FPS",
    "HEIGHT",
    "SCENE_BITRATE",
    "WIDTH",
    "clip_spec",
    "encode_h264",
    "make_clip",
    "recall_table",
    "render_h264",
    "repeat_clip",
    "scene_recall",
    "scene_specs",
]
