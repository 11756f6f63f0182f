"""`platesift bench` (what `make bench` runs): how much platesift costs on top of decoding.

It makes (once, cached in `bench-data/`) a 1080p H.264 clip of a mostly static street with
occasional traffic at a realistic bitrate, plus the same clip 4x longer, then measures side by
side, each in its own child process (so peak memory is that run's alone), in several rounds:

- plain decode: OpenCV `grab()` over every frame, nothing kept;
- `preprocess --proposer none`; `preprocess` with the default CPU proposer;
- `preprocess` with a fake proposer of fixed latency per inference (does proposing overlap
  decoding?);
- `preprocess --proposer none` with the opt-in `analysis.fast_decode = skip-deblock`;

and prints a table (and JSON with `--json FILE`) of medians and ratios against plain decoding,
because absolute speeds differ between machines. The modes run in turn within each round, and
each ratio is the median of the rounds' ratios, each against the plain decoding of its own
round: a shared or throttled machine changes speed from one minute to the next, and a run
compared with one made minutes apart would measure that instead. Then, for the fast mode's
price, the plate-frame recall of the default and the fast decoding on the synthetic street
scenes of `tests/test_targets.py`, encoded as H.264 (the codec whose deblocking filter is
skipped).
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
from platesift.app.bench_clips import (
    BITRATE,
    CLIP_VERSION,
    FAST_MODE,
    make_clip,
    recall_table,
    repeat_clip,
)

# --- children: one measurement each ---------------------------------------------------------------


class FixedLatencyProposer(Proposer):
    """A stand-in for an accelerator: every inference takes `latency_s` and finds nothing."""

    backend = "fake-latency"

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s
        self.calls = 0
        self.busy_s = 0.0  # what the inferences really took (sleep overshoots a little)
        self.first_call: float | None = None
        self.last_end = 0.0

    def propose(self, luma: np.ndarray, rois: Sequence[Box]) -> list[Proposal]:
        return self.propose_many([luma])[0]

    def propose_many(self, images: Sequence[np.ndarray]) -> list[list[Proposal]]:
        """A batch of n images keeps the device busy n x `latency_s`, in one wait: one
        sleep per inference would add the sleep's own overshoot to every inference."""
        self.calls += len(images)
        started = time.perf_counter()
        if self.first_call is None:
            self.first_call = started
        time.sleep(self.latency_s * len(images))  # the device is busy; the CPU is free
        self.last_end = time.perf_counter()
        self.busy_s += self.last_end - started
        return [[] for _ in images]


def plain_decode(mode: str, video: str) -> dict[str, Any]:
    """Decode every frame, keep nothing (opening included, as in the pipeline's timing):
    `decode` is OpenCV's `grab()`, `decode-pyav` PyAV with the pipeline's decoder settings."""
    started = time.perf_counter()
    if mode == "decode":
        import cv2

        cap = cv2.VideoCapture(video, cv2.CAP_FFMPEG)
        advance, close = cap.grab, cap.release
    else:
        from actors.video_sources import PyAVSource
        from platesift.config import ResourceSettings

        source = PyAVSource(video, threads=ResourceSettings().decode_threads)
        advance, close = (lambda: source.read() is not None), source.close
    frames = 0
    while advance():
        frames += 1
    seconds = time.perf_counter() - started
    close()
    return {"frames": frames, "seconds": seconds}


def child(mode: str, video: str, scratch: str) -> dict[str, Any]:
    if mode in ("decode", "decode-pyav"):
        return plain_decode(mode, video)

    from actors.messages import TaskSpec
    from platesift.app.worker import Worker
    from platesift.config import load_settings

    mode, fast, _ = mode.partition("+fast")
    backend, _, latency = mode.partition(":")
    settings = load_settings(
        env={},
        overrides=[
            f"paths.scratch={scratch}",
            f"paths.journal={Path(scratch) / 'journal.db'}",
            f"proposer.backend={'none' if backend == 'fake' else backend}",
            f"analysis.fast_decode={FAST_MODE if fast else 'off'}",
        ],
    )
    fake = FixedLatencyProposer(float(latency)) if backend == "fake" else None
    out = Path(scratch) / "out"
    with Worker(
        settings, proposer_factory=(lambda: fake) if fake else None, scratch=Path(scratch) / "work"
    ) as worker:
        run_started = time.perf_counter()
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
        "proposer_busy_s": fake.busy_s if fake else None,
        # From the task's start to the first inference: until the first car is in view,
        # there is nothing to propose.
        "first_inference_s": (fake.first_call - run_started) if fake and fake.first_call else None,
        # Time the proposer sat idle between its first inference and its last.
        "proposer_idle_s": (
            (fake.last_end - fake.first_call) - fake.busy_s if fake and fake.first_call else None
        ),
    }


def measure(mode: str, video: Path) -> dict[str, Any]:
    """Run one measurement in a child process; add its peak resident memory."""
    with tempfile.TemporaryDirectory(prefix="platesift-bench-") as scratch:
        proc = subprocess.Popen(
            [sys.executable, "-m", "platesift.app.bench", "--child", mode, str(video), scratch],
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
    seconds: float,
    runs: int,
    data: Path,
    json_path: Path | None,
    latency_s: float,
    recall: bool = True,
) -> dict[str, Any]:
    print(f"clips: {data} (1080p H.264, {BITRATE / 1e6:.0f} Mbit/s, {seconds:g} s and 4x)")
    short = make_clip(data / f"street-v{CLIP_VERSION}-{seconds:g}s.mp4", seconds)
    long = repeat_clip(short, data / f"street-v{CLIP_VERSION}-{4 * seconds:g}s.mp4", 4)
    modes = [
        ("decode", "plain decode (grab)"),
        ("decode-pyav", "plain decode (PyAV, the pipeline's decoder)"),
        ("none", "preprocess --proposer none"),
        ("tflite", "preprocess (CPU proposer: the shipped model)"),
        (f"fake:{latency_s}", f"preprocess, fake {latency_s * 1000:g} ms proposer"),
        ("none+fast", f"preprocess --proposer none, {FAST_MODE}"),
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
        n = runs if label == "1x" else max(2, runs // 2)
        # Memory is the point of the 4x clip; the fast mode's is the same as the default's.
        clip_modes = [(m, name) for m, name in modes if label == "1x" or "+fast" not in m]
        samples: dict[str, list[dict[str, Any]]] = {m: [] for m, _ in clip_modes}
        for i in range(n):
            for mode, name in clip_modes:  # in turn: each round's ratios are paired
                print(f"  {label} round {i + 1}/{n}: {name}", flush=True)
                samples[mode].append(measure(mode, clip))
        for mode, name in clip_modes:
            results["modes"][f"{label} {mode}"] = _summary(name, samples[mode])
    _ratios(results)
    if recall:
        print(f"plate-frame recall on the synthetic scenes: default vs {FAST_MODE}")
        results["recall"] = recall_table(data / "scenes")
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
    for key in ("proposer_busy_s", "first_inference_s", "proposer_idle_s"):
        if samples[0].get(key) is not None:
            out[key] = statistics.median(s[key] for s in samples)
    return out


def _ratios(results: dict[str, Any]) -> None:
    """Each mode's speed against plain decoding, and the fake proposer's time against its
    bound: per round (against that round's plain decoding), then the median of the rounds."""
    modes = results["modes"]
    for label in ("1x", "4x"):
        for base_key, ratio_key in (("decode", "ratio"), ("decode-pyav", "ratio_pyav")):
            if f"{label} {base_key}" not in modes:
                continue
            base = modes[f"{label} {base_key}"]["samples"]
            for key, m in modes.items():
                if key.startswith(label):
                    m[f"round_{ratio_key}s"] = [
                        (s["frames"] / s["seconds"]) / (b["frames"] / b["seconds"])
                        for s, b in zip(m["samples"], base)
                    ]
                    m[ratio_key] = statistics.median(m[f"round_{ratio_key}s"])
    fake = next(k for k in modes if k.startswith("1x fake"))
    m = modes[fake]
    latency = float(fake.split(":")[1])
    # Decoding time: the faster of the two plain decodings of the round (the stricter bound).
    decodes = [modes["1x decode"]["samples"]]
    if "1x decode-pyav" in modes:
        decodes.append(modes["1x decode-pyav"]["samples"])
    bounds = [
        max(min(d["seconds"] for d in round_decodes), (s.get("inferences") or 0) * latency)
        for s, *round_decodes in zip(m["samples"], *decodes)
    ]
    m["overlap_bound_s"] = statistics.median(bounds)
    m["round_overlap_ratios"] = [s["seconds"] / b for s, b in zip(m["samples"], bounds)]
    m["overlap_ratio"] = statistics.median(m["round_overlap_ratios"])
    r1, r4 = modes["1x none"]["peak_rss_mb"], modes["4x none"]["peak_rss_mb"]
    results["rss_growth_4x"] = r4 / r1 - 1
    results["targets"] = {
        "none >= 0.9x decode": modes["1x none"]["ratio"] >= 0.9,
        "cpu proposer >= 0.75x decode": modes["1x tflite"]["ratio"] >= 0.75,
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
        f"{'clip':4} {'mode':44} {'frames':>7} {'fps':>7} {'x grab':>7} {'x PyAV':>7} "
        f"{'peak RSS':>9} {'scratch':>8} {'kept':>6}"
    ]
    for key, m in results["modes"].items():
        scratch = m.get("peak_scratch_bytes")
        lines.append(
            f"{key.split()[0]:4} {m['name']:44} {m['frames']:>7} {m['fps']:>7.1f} "
            f"{m['ratio']:>7.2f} {_fmt_ratio(m.get('ratio_pyav')):>7} {m['peak_rss_mb']:>7.0f}MB "
            f"{(f'{scratch / 2**20:.1f}MB' if scratch is not None else '-'):>8} "
            f"{m.get('kept', '-'):>6}"
        )
    lines.append(f"peak RSS growth 4x vs 1x (--proposer none): {results['rss_growth_4x']:+.1%}")
    fake = next(m for k, m in results["modes"].items() if k.startswith("1x fake"))
    lines.append(
        f"fake proposer: {fake['seconds']:.1f} s vs bound {fake['overlap_bound_s']:.1f} s "
        f"= {fake['overlap_ratio']:.2f}x ({fake.get('inferences')} inferences)"
    )
    if fake.get("proposer_busy_s") is not None:
        lines.append(
            f"  its inferences really took {fake['proposer_busy_s']:.2f} s; the first started "
            f"{fake['first_inference_s']:.2f} s into the task (the first car); after that it "
            f"was idle {fake['proposer_idle_s']:.3f} s"
        )
    fast_key = next((k for k in results["modes"] if k.startswith("1x none+fast")), None)
    if fast_key:
        fast_m = results["modes"][fast_key]
        lines.append(
            f"{FAST_MODE}: {fast_m['fps'] / results['modes']['1x none']['fps']:.2f}x the speed "
            f"of --proposer none, {fast_m['ratio']:.2f}x plain decode"
        )
    if results.get("recall"):
        lines.append(
            f"{'scene':12} {'frames':>6} {'moving':>6} {'readable':>8} "
            f"{'kept':>5} {'recall':>6} | {'kept':>5} {'recall':>6} ({FAST_MODE})"
        )
        for name, r in results["recall"].items():
            a, b = r["off"], r[FAST_MODE]
            lines.append(
                f"{name:12} {a['frames']:>6} {a['moving']:>6} {a['readable']:>8} "
                f"{a['kept']:>5} {_fmt_recall(a['recall']):>6} | "
                f"{b['kept']:>5} {_fmt_recall(b['recall']):>6}"
            )
    for name, ok in results["targets"].items():
        lines.append(f"  [{'ok' if ok else 'MISS'}] {name}")
    return "\n".join(lines)


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _fmt_recall(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--child"]:
        result = child(args[1], args[2], args[3])
        print(json.dumps(result))
        print(f"PEAK_RSS {_peak_rss_self()}", file=sys.stderr)
        return 0
    parser = argparse.ArgumentParser(prog="platesift bench", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the 1x clip")
    parser.add_argument(
        "--runs", type=int, default=5, help="rounds on the 1x clip (half as many on the 4x)"
    )
    parser.add_argument("--data", default="bench-data", help="where the clips are cached")
    parser.add_argument("--json", default="bench-results.json", help="JSON report file")
    parser.add_argument(
        "--latency-ms", type=float, default=10.0, help="latency of the fake proposer per inference"
    )
    parser.add_argument(
        "--no-recall",
        action="store_true",
        help=f"skip the recall of {FAST_MODE} on the synthetic scenes",
    )
    ns = parser.parse_args(args)
    results = run(
        ns.seconds,
        ns.runs,
        Path(ns.data),
        Path(ns.json) if ns.json else None,
        ns.latency_ms / 1000,
        recall=not ns.no_recall,
    )
    return 0 if all(results["targets"].values()) else 1


__all__ = [
    "FixedLatencyProposer",
    "child",
    "format_table",
    "main",
    "measure",
    "plain_decode",
    "run",
]


if __name__ == "__main__":
    sys.exit(main())
