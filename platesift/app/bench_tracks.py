"""`python -m platesift.app.bench_tracks` (part of `make bench`): plate tracks measured
against the synthetic scenes' ground truth, per scene.

A pass is one vehicle's plate (its text) with at least one readable view in a kept frame. For
each scene, from the artifacts on disk:
- `own/pass`: thumbnails of the tracks that cover the pass's plate, per pass; `alarms/pass`:
  thumbnails of tracks that cover no plate (the proposer's false alarms), per pass; `all`:
  every thumbnail per pass with `output.thumbnails = all` (one per region, as before tracks);
  `KB`: the artifact bytes of both;
- `covered`: passes of which at least one best crop covers the plate;
- `width`: the best covering crop's plate width over the widest readable view of the pass in
  a kept frame (1.0: the best crop is the largest view);
- `sharp`: the same crop's measured sharpness over the sharpest readable view's;
- `found`: passes with a region on the plate in at least one readable view (the rest the
  proposer missed);
- `1 track`: of the found passes, those whose readable views are all in one track (no splits);
  `whole`: passes whose every covered view, readable or not, is in one track; `mixed`: tracks
  covering two different plates.

The scenes are the presets with vehicles (`everything` has every nuisance at once) and the
street again with other seeds (`street@N`: other plates, noise and rain drops).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

COVER_SHARE = 0.7
"""A box covers a plate when it holds this share of the plate's area..."""
COVER_MAX_AREA = 8.0
"""... and is at most this many times the plate's area (the synthetic targets' rule)."""


def covers(box: Sequence[int], plate: Sequence[int]) -> bool:
    iw = max(0, min(box[2], plate[2]) - max(box[0], plate[0]))
    ih = max(0, min(box[3], plate[3]) - max(box[1], plate[1]))
    area = (plate[2] - plate[0]) * (plate[3] - plate[1])
    return area > 0 and iw * ih >= COVER_SHARE * area and _area(box) <= COVER_MAX_AREA * area


def plate_of(box: Sequence[int], plates: dict[str, tuple[int, int, int, int]]) -> str | None:
    """The plate `box` shows: of those it covers, the one it overlaps best (where two plates
    cross, the nearer hides the other and a box covers both)."""
    from platesift.tracking import iou

    covered = [(iou(box, p), text) for text, p in sorted(plates.items()) if covers(box, p)]
    return max(covered)[1] if covered else None


def _area(box: Sequence[int]) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


@dataclass
class SceneResult:
    name: str
    passes: int = 0
    tracks: int = 0
    thumbs: int = 0
    thumbs_all: int = 0
    bytes: int = 0
    bytes_all: int = 0
    own_thumbs: int = 0
    found: int = 0
    covered: int = 0
    one_track: int = 0
    whole: int = 0
    mixed: int = 0
    width_ratios: list[float] = field(default_factory=list)
    sharp_ratios: list[float] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        p = max(self.passes, 1)
        return {
            "scene": self.name,
            "passes": self.passes,
            "tracks": self.tracks,
            "thumbs_per_pass": round(self.thumbs / p, 2),
            "own_thumbs_per_pass": round(self.own_thumbs / p, 2),
            "alarm_thumbs_per_pass": round((self.thumbs - self.own_thumbs) / p, 2),
            "thumbs_per_pass_all": round(self.thumbs_all / p, 2),
            "bytes": self.bytes,
            "bytes_all": self.bytes_all,
            "found": round(self.found / p, 3),
            "covered": round(self.covered / p, 3),
            "one_track": round(self.one_track / max(self.found, 1), 3),
            "whole_pass_one_track": round(self.whole / p, 3),
            "mixed_tracks": self.mixed,
            "width_ratio": round(min(self.width_ratios), 3) if self.width_ratios else None,
            "width_ratio_mean": _mean(self.width_ratios),
            "sharp_ratio_mean": _mean(self.sharp_ratios),
        }


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def _sharpness(video: Path, frame: int, box: Sequence[int]) -> float:
    """The crop quality's sharpness of `box` in `frame` of the video (source pixels)."""
    from platesift.crop_quality import crop_quality

    cap = cv2.VideoCapture(str(video))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, frame)
        ok, image = cap.read()
    finally:
        cap.release()
    if not ok:
        return 0.0
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    x1, y1, x2, y2 = box
    return crop_quality(grey[y1:y2, x1:x2], 1.0, touches_edge=False).sharpness


def score_scene(
    name: str, truth: Any, out: Path, video: Path, out_all: Path | None = None
) -> SceneResult:
    """The scene's figures from its artifacts `out` (and `out_all`, the same run with
    `output.thumbnails = all`, for the comparison)."""
    result = SceneResult(name)
    kept = {json.loads(line)["frame"] for line in (out / "frames.jsonl").read_text().splitlines()}
    tracks = [json.loads(line) for line in (out / "tracks.jsonl").read_text().splitlines()]
    result.tracks = len(tracks)
    plates: dict[int, dict[str, tuple[int, int, int, int]]] = {}
    readable: dict[str, list[tuple[int, tuple[int, int, int, int]]]] = defaultdict(list)
    for f in truth.frames:
        plates[f.index] = {p.text: p.box for p in f.plates}
        for p in f.plates:
            if p.readable and f.index in kept:
                readable[p.text].append((f.index, p.box))
    result.passes = len(readable)
    readable_frames = {text: {f for f, _ in views} for text, views in readable.items()}
    seen_by: dict[str, set[int]] = defaultdict(set)
    read_by: dict[str, set[int]] = defaultdict(set)
    best_by: dict[str, list[tuple[float, int, tuple[int, int, int, int]]]] = defaultdict(list)
    for track in tracks:
        texts = set()
        for frame, *box in track["boxes"]:
            text = plate_of(box, plates.get(frame, {}))
            if text is not None:
                texts.add(text)
                if frame in readable_frames.get(text, ()):
                    read_by[text].add(track["track"])
        result.mixed += len(texts) > 1
        for text in texts:
            seen_by[text].add(track["track"])
        if texts:
            result.own_thumbs += sum(c["thumb"] is not None for c in track["best"])
        for crop in track["best"]:
            if crop["thumb"] is None:
                continue  # the GPU box gets no crop of it (a brief track, or thumbnails none)
            frame_plates = plates.get(crop["frame"], {})
            text = plate_of(crop["box"], frame_plates)
            if text is not None:
                best_by[text].append((crop["quality"], crop["frame"], frame_plates[text]))
    for text, views in readable.items():
        result.found += len(read_by[text]) > 0
        result.one_track += len(read_by[text]) == 1
        result.whole += len(seen_by[text]) == 1
        if not best_by[text]:
            continue
        result.covered += 1
        _, frame, plate = max(best_by[text], key=lambda c: (c[0], -c[1]))
        widest = max(p[2] - p[0] for _, p in views)
        result.width_ratios.append((plate[2] - plate[0]) / widest)
        sharpest = max(_sharpness(video, f, p) for f, p in views[:: max(1, len(views) // 12)])
        result.sharp_ratios.append(_sharpness(video, frame, plate) / max(sharpest, 1e-6))
    result.thumbs = _count(out / "thumbs")
    result.bytes = _bytes(out)
    if out_all is not None:
        result.thumbs_all = _count(out_all / "thumbs")
        result.bytes_all = _bytes(out_all)
    return result


def _count(directory: Path) -> int:
    return len(list(directory.iterdir())) if directory.is_dir() else 0


def _bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


SEEDED = (1, 2, 3, 4, 5)
"""The street's other seeds in the default scenes (`street@N`): the tracker was tuned on these
and the presets."""
HELD_OUT = (
    "street@1001",
    "street@1002",
    "street@1003",
    "noise@1001",
    "rain@1001",
    "flicker@1001",
    "shake@1001",
    "creeping@1001",
    "night@1001",
    "night_unlit@1001",
    "everything@1001",
    "everything@1002",
)
"""Scenes never looked at while tuning the tracker: reported apart."""


def scene(name: str) -> Any:
    """A preset by name, or `street@N`: the street preset with seed N."""
    from sim.scenes import preset

    base, _, seed = name.partition("@")
    return preset(base, seed=int(seed)) if seed else preset(base)


def default_scenes() -> list[str]:
    from sim.scenes import PRESETS

    names = [n for n in PRESETS if n not in ("demo", "empty", "blurred")]
    return names + [f"street@{seed}" for seed in SEEDED] + list(HELD_OUT)


def run(names: Sequence[str], root: Path, overrides: Sequence[str] = ()) -> list[SceneResult]:
    from actors.messages import TaskSpec
    from platesift.app.worker import Worker
    from platesift.config import load_settings
    from sim.scenes import render

    results = []
    for mode in ("best", "all"):
        settings = load_settings(
            env={},
            overrides=[
                f"paths.journal={root / 'journal.db'}",
                f"paths.scratch={root / 'scratch'}",
                *overrides,
                f"output.thumbnails={mode}",
            ],
        )
        with Worker(settings) as worker:
            for name in names:
                video = root / f"{name}.mp4"
                if not video.exists():
                    (root / f"{name}.truth.json").write_text(render(scene(name), video).to_json())
                outcome = worker.run(
                    TaskSpec(
                        task_id=name,
                        source=str(video),
                        source_name=video.name,
                        dest=str(root / mode / name),
                    )
                )
                if outcome.outcome != "done":
                    raise SystemExit(f"{name}: {outcome.outcome}: {outcome.detail}")
    from sim.scenes import GroundTruth

    for name in names:
        truth = GroundTruth.from_json((root / f"{name}.truth.json").read_text())
        results.append(
            score_scene(
                name, truth, root / "best" / name, root / f"{name}.mp4", root / "all" / name
            )
        )
    return results


def format_table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'scene':12} {'passes':>6} {'tracks':>6} {'own/pass':>8} {'alarms/pass':>11} "
        f"{'all':>6} {'KB':>5} {'(all)':>6} {'found':>5} {'covered':>7} {'width':>5} {'sharp':>5} "
        f"{'1 track':>7} {'whole':>5} {'mixed':>5}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['scene']:12} {r['passes']:6d} {r['tracks']:6d} {r['own_thumbs_per_pass']:8.2f} "
            f"{r['alarm_thumbs_per_pass']:11.2f} {r['thumbs_per_pass_all']:6.1f} "
            f"{r['bytes'] / 1024:5.0f} {r['bytes_all'] / 1024:6.0f} {r['found']:5.2f} "
            f"{r['covered']:7.3f} "
            f"{_f(r['width_ratio_mean'])} {_f(r['sharp_ratio_mean'])} {r['one_track']:7.3f} "
            f"{r['whole_pass_one_track']:5.2f} {r['mixed_tracks']:5d}"
        )
    return "\n".join(lines)


def _f(value: float | None) -> str:
    return "    -" if value is None else f"{value:5.2f}"


def summary(rows: list[dict[str, Any]]) -> str:
    """One line of totals over `rows`."""
    passes = max(sum(r["passes"] for r in rows), 1)

    def share(key: str) -> float:
        return sum(r[key] * r["passes"] for r in rows) / passes

    found = max(sum(round(r["found"] * r["passes"]) for r in rows), 1)
    one = sum(r["one_track"] * round(r["found"] * r["passes"]) for r in rows) / found
    return (
        f"{passes} passes, {share('found'):.3f} found by the proposer; best crop covers the "
        f"plate in {share('covered'):.3f}; one track in {one:.3f} of the found "
        f"({share('whole_pass_one_track'):.3f} of all, whole pass); thumbnails per pass "
        f"{share('own_thumbs_per_pass'):.2f} own + {share('alarm_thumbs_per_pass'):.2f} false "
        f"alarms (all regions: {share('thumbs_per_pass_all'):.1f}); artifact bytes "
        f"{sum(r['bytes'] for r in rows) / max(sum(r['bytes_all'] for r in rows), 1):.2f}x; "
        f"{sum(r['mixed_tracks'] for r in rows)} mixed tracks"
    )


def main(argv: Sequence[str] | None = None) -> int:
    default = default_scenes()
    p = argparse.ArgumentParser(prog="python -m platesift.app.bench_tracks", description=__doc__)
    p.add_argument("scenes", nargs="*", default=default, help="presets (default: %(default)s)")
    p.add_argument("--json", type=Path, help="also write the rows to this file")
    p.add_argument("--keep", type=Path, help="work here and keep the artifacts")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for every run (e.g. tracking.max_gap_s=1)",
    )
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="platesift-tracks-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        rows = [r.row() for r in run(args.scenes, root, args.set)]
    print(format_table(rows))
    tuned = [r for r in rows if r["scene"] not in HELD_OUT]
    held = [r for r in rows if r["scene"] in HELD_OUT]
    for label, group in (("tuned on", tuned), ("held out", held)):
        if group:
            print(f"{label}: {summary(group)}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


__all__ = [
    "HELD_OUT",
    "SceneResult",
    "covers",
    "default_scenes",
    "format_table",
    "main",
    "plate_of",
    "run",
    "scene",
    "score_scene",
    "summary",
]


if __name__ == "__main__":
    sys.exit(main())
