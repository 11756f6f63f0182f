"""`platesift bench` (what `make bench` runs): how much platesift costs on top of decoding.

It makes (once, cached in `bench-data/`) a 1080p H.264 clip of a mostly static street with
occasional traffic at a realistic bitrate, plus the same clip 4x longer, then measures side by
side, each in its own child process (so peak memory is that run's alone), several runs each:

- plain decode: OpenCV `grab()` over every frame, nothing kept;
- `preprocess --proposer none`; `preprocess` with the default CPU proposer;
- `preprocess` with a fake proposer of fixed latency per inference (does proposing overlap
  decoding?);

and prints a table (and JSON with `--json FILE`) of medians and ratios against plain decoding,
because absolute speeds differ between machines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.proposer import Box, Proposal, Proposer

WIDTH, HEIGHT, FPS = 1920, 1080, 25
BITRATE = 6_000_000


# --- the clip ------------------------------------------------------------------------------------


def clip_spec(seconds: float) -> Any:
    """A mostly static 1080p street with a car every ~15 s."""
    from sim.scenes import SceneSpec, Vehicle

    cars = []
    for i, start in enumerate(np.arange(4.0, seconds - 5.0, 15.0)):
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
    import av

    from sim.scenes import iter_frames

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.bit_rate = BITRATE
        stream.options = {"preset": "veryfast", "g": str(2 * FPS), "bf": "2"}
        for frame, _ in iter_frames(clip_spec(seconds)):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                out.mux(packet)
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
        packets = [p for p in src.demux(in_stream) if p.dts is not None]
        span = max(p.pts for p in packets) + (packets[1].pts - packets[0].pts or 1)
        with av.open(str(tmp), "w") as out:
            stream = out.add_stream_from_template(in_stream)
            for k in range(times):
                for p in packets:
                    p.stream = stream
                    p.pts = p.pts + (span if k else 0)
                    p.dts = p.dts + (span if k else 0)
                    out.mux(p)
    os.replace(tmp, path)
    return path


# --- children: one measurement each ---------------------------------------------------------------


class FixedLatencyProposer(Proposer):
    """A stand-in for an accelerator: every inference takes `latency_s` and finds nothing."""

    backend = "fake-latency"

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s
        self.calls = 0

    def propose(self, luma: np.ndarray, rois: Sequence[Box]) -> list[Proposal]:
        self.calls += 1
        time.sleep(self.latency_s)  # the device is busy; the CPU is free meanwhile
        return []


def child(mode: str, video: str, scratch: str) -> dict[str, Any]:
    if mode == "decode":
        import cv2

        started = time.perf_counter()
        cap = cv2.VideoCapture(video, cv2.CAP_FFMPEG)
        frames = 0
        while cap.grab():
            frames += 1
        return {"frames": frames, "seconds": time.perf_counter() - started}

    from actors.messages import TaskSpec
    from platesift.config import load_settings
    from platesift.worker import Worker

    backend, _, latency = mode.partition(":")
    settings = load_settings(
        env={},
        overrides=[
            f"paths.scratch={scratch}",
            f"paths.journal={Path(scratch) / 'journal.db'}",
            f"proposer.backend={'none' if backend == 'fake' else backend}",
        ],
    )
    fake = FixedLatencyProposer(float(latency)) if backend == "fake" else None
    out = Path(scratch) / "out"
    with Worker(
        settings, proposer_factory=(lambda: fake) if fake else None, scratch=Path(scratch) / "work"
    ) as worker:
        outcome = worker.run(
            TaskSpec(task_id="bench", source=video, source_name=video, dest=str(out))
        )
        assert worker.runner is not None
        peak_scratch = worker.runner.peak_scratch_bytes
    if outcome.outcome != "done":
        raise SystemExit(f"preprocess failed: {outcome.detail}")
    thumbs = (
        sum(p.stat().st_size for p in (out / "thumbs").glob("*"))
        if (out / "thumbs").exists()
        else 0
    )
    return {
        "frames": outcome.counts["decoded"],
        "kept": outcome.counts["kept"],
        "seconds": outcome.seconds,
        "peak_scratch_bytes": peak_scratch,
        "thumb_bytes": thumbs,
        "inferences": fake.calls if fake else None,
    }


def measure(mode: str, video: Path) -> dict[str, Any]:
    """Run one measurement in a child process; add its peak resident memory."""
    with tempfile.TemporaryDirectory(prefix="platesift-bench-") as scratch:
        proc = subprocess.Popen(
            [sys.executable, "-m", "platesift.bench", "--child", mode, str(video), scratch],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        stdout, stderr = proc.communicate()  # reaps the child; its rusage comes next
        if proc.returncode != 0:
            raise RuntimeError(f"{mode} on {video.name} failed: {stderr.strip()[-500:]}")
        result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
        result["peak_rss_bytes"] = _child_peak_rss(stdout, stderr)
        return result


def _peak_rss_self() -> int:
    """This process's own peak RSS. Not getrusage's ru_maxrss: Linux carries that across
    exec, so a child would report its parent's peak; VmHWM belongs to this process image."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child_peak_rss(stdout: str, stderr: str) -> int:
    for line in reversed(stderr.splitlines()):
        if line.startswith("PEAK_RSS "):
            return int(line.split()[1])
    return 0


# --- the run ------------------------------------------------------------------------------------


def run(
    seconds: float, runs: int, data: Path, json_path: Path | None, latency_s: float
) -> dict[str, Any]:
    print(f"clips: {data} (1080p H.264, {BITRATE / 1e6:.0f} Mbit/s, {seconds:g} s and 4x)")
    short = make_clip(data / f"street-{seconds:g}s.mp4", seconds)
    long = repeat_clip(short, data / f"street-{4 * seconds:g}s.mp4", 4)
    modes = [
        ("decode", "plain decode (grab)"),
        ("none", "preprocess --proposer none"),
        ("opencv", "preprocess (CPU proposer)"),
        (f"fake:{latency_s}", f"preprocess, fake {latency_s * 1000:g} ms proposer"),
    ]
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "clip_seconds": seconds,
        "runs": runs,
        "modes": {},
    }
    for clip, label in ((short, "1x"), (long, "4x")):
        n = runs if label == "1x" else max(1, runs // 2)
        for mode, name in modes:
            samples = []
            for i in range(n):
                print(f"  {label} {name}: run {i + 1}/{n}", flush=True)
                samples.append(measure(mode, clip))
            results["modes"][f"{label} {mode}"] = _summary(name, samples)
    _ratios(results)
    print(format_table(results))
    if json_path:
        json_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        print(f"JSON: {json_path}")
    return results


def _summary(name: str, samples: list[dict[str, Any]]) -> dict[str, Any]:
    fps = [s["frames"] / s["seconds"] for s in samples]
    out = {
        "name": name,
        "frames": samples[0]["frames"],
        "fps": statistics.median(fps),
        "seconds": statistics.median(s["seconds"] for s in samples),
        "peak_rss_mb": max(s["peak_rss_bytes"] for s in samples) / 2**20,
        "samples": samples,
    }
    for key in ("kept", "inferences", "peak_scratch_bytes", "thumb_bytes"):
        if samples[0].get(key) is not None:
            out[key] = max(s[key] for s in samples)
    return out


def _ratios(results: dict[str, Any]) -> None:
    modes = results["modes"]
    for label in ("1x", "4x"):
        base = modes[f"{label} decode"]["fps"]
        for key, m in modes.items():
            if key.startswith(label):
                m["ratio"] = m["fps"] / base
    fake = next(k for k in modes if k.startswith("1x fake"))
    m = modes[fake]
    decode_s = modes["1x decode"]["seconds"]
    latency = float(fake.split(":")[1])
    m["overlap_bound_s"] = max(decode_s, (m.get("inferences") or 0) * latency)
    m["overlap_ratio"] = m["seconds"] / m["overlap_bound_s"]
    r1, r4 = modes["1x none"]["peak_rss_mb"], modes["4x none"]["peak_rss_mb"]
    results["rss_growth_4x"] = r4 / r1 - 1
    results["targets"] = {
        "none >= 0.9x decode": modes["1x none"]["ratio"] >= 0.9,
        "cpu proposer >= 0.75x decode": modes["1x opencv"]["ratio"] >= 0.75,
        "peak RSS < 300 MB": max(v["peak_rss_mb"] for v in modes.values()) < 300,
        "RSS 4x within 10% of 1x": abs(results["rss_growth_4x"]) <= 0.10,
        "peak scratch < 64 MB + thumbs": all(
            v.get("peak_scratch_bytes", 0) - v.get("thumb_bytes", 0) < 64 * 2**20
            for v in modes.values()
        ),
        "fake proposer <= 1.1x max(decode, N x L)": m["overlap_ratio"] <= 1.1,
    }


def format_table(results: dict[str, Any]) -> str:
    lines = [
        f"{'clip':4} {'mode':40} {'frames':>7} {'fps':>7} {'x decode':>8} "
        f"{'peak RSS':>9} {'scratch':>8} {'kept':>6}"
    ]
    for key, m in results["modes"].items():
        scratch = m.get("peak_scratch_bytes")
        lines.append(
            f"{key.split()[0]:4} {m['name']:40} {m['frames']:>7} {m['fps']:>7.1f} "
            f"{m['ratio']:>8.2f} {m['peak_rss_mb']:>7.0f}MB "
            f"{(f'{scratch / 2**20:.1f}MB' if scratch is not None else '-'):>8} "
            f"{m.get('kept', '-'):>6}"
        )
    lines.append(f"peak RSS growth 4x vs 1x (--proposer none): {results['rss_growth_4x']:+.1%}")
    fake = next(m for k, m in results["modes"].items() if k.startswith("1x fake"))
    lines.append(
        f"fake proposer: {fake['seconds']:.1f} s vs bound {fake['overlap_bound_s']:.1f} s "
        f"= {fake['overlap_ratio']:.2f}x ({fake.get('inferences')} inferences)"
    )
    for name, ok in results["targets"].items():
        lines.append(f"  [{'ok' if ok else 'MISS'}] {name}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--child"]:
        result = child(args[1], args[2], args[3])
        print(json.dumps(result))
        print(f"PEAK_RSS {_peak_rss_self()}", file=sys.stderr)
        return 0
    parser = argparse.ArgumentParser(prog="platesift bench", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the 1x clip")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--data", default="bench-data", help="where the clips are cached")
    parser.add_argument("--json", default="bench-results.json", help="JSON report file")
    parser.add_argument(
        "--latency-ms", type=float, default=10.0, help="latency of the fake proposer per inference"
    )
    ns = parser.parse_args(args)
    results = run(
        ns.seconds, ns.runs, Path(ns.data), Path(ns.json) if ns.json else None, ns.latency_ms / 1000
    )
    return 0 if all(results["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
