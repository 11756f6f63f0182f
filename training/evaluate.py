"""Evaluation of the exported int8 model on the real runtime, per source: the score threshold
is picked on the `tune` split, recall and precision are reported on the `report` split, and
the metrics JSON and the model card are written next to the model.

Detection runs exactly as `platesift propose` runs it on a still image: the whole grey image,
tiled at the pipeline's default `proposer.min_plate_px`, at most `proposer.max_regions` boxes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.plate_geometry import iou
from training.data import Sample, load_grey

IOU = 0.5
MIN_READABLE_PX = 20.0
"""Plates narrower than this (source pixels) are reported apart: no OCR reads them."""
LOW_THRESHOLD = 0.05
THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(2, 19))
MAX_BOXES_PER_IMAGE = 3.0
METRICS_FILE = "metrics.json"

Box = tuple[float, float, float, float]


@dataclasses.dataclass
class Scored:
    """One image's plates and its detections at the low threshold (box, score)."""

    sample: Sample
    found: list[tuple[Box, float]]


def detect_all(manifest_path: Path, samples: Sequence[Sample]) -> tuple[list[Scored], float]:
    """Detections for every sample, and the median milliseconds per model inference."""
    from models.manifest import load_manifest
    from models.tflite_detector import open_cpu
    from models.tflite_runtime import require_runtime
    from platesift.config import ProposerSettings

    settings = ProposerSettings()
    manifest = dataclasses.replace(load_manifest(manifest_path), score_threshold=LOW_THRESHOLD)
    detector = open_cpu(manifest, require_runtime(), settings.min_plate_px)
    out = []
    for s in samples:
        found = detector.propose(load_grey(s.path), ())[: settings.max_regions]
        out.append(Scored(s, [(tuple(map(float, p.box)), p.score) for p in found]))  # type: ignore[misc]
    return out, detector.inference_ms()


def match(plates: Sequence[Box], boxes: Sequence[Box]) -> tuple[list[bool], int]:
    """Which plates a box covers at IoU >= IOU (each box counts once), and boxes that matched."""
    used = set()
    hit = []
    for p in plates:
        best, best_iou = -1, IOU
        for j, b in enumerate(boxes):
            if j not in used and (v := iou(p, b)) >= best_iou:
                best, best_iou = j, v
        if best >= 0:
            used.add(best)
        hit.append(best >= 0)
    return hit, len(used)


def scores_at(results: Sequence[Scored], threshold: float) -> dict[str, float]:
    plates = readable = found = found_readable = boxes = matched = 0
    for r in results:
        kept = [b for b, s in r.found if s >= threshold]
        hit, n = match(r.sample.plates, kept)
        for p, h in zip(r.sample.plates, hit):
            plates += 1
            found += h
            if p[2] - p[0] >= MIN_READABLE_PX:
                readable += 1
                found_readable += h
        boxes += len(kept)
        matched += n
    images = max(len(results), 1)
    return {
        "images": len(results),
        "plates": plates,
        "recall": round(found / max(plates, 1), 4),
        "plates_20px": readable,
        "recall_20px": round(found_readable / max(readable, 1), 4),
        "precision": round(matched / max(boxes, 1), 4),
        "boxes_per_image": round(boxes / images, 3),
    }


def pick_threshold(tune: Sequence[Scored]) -> float:
    """The threshold with the best F2 (recall counts four times precision) on the tune split,
    among those with at most MAX_BOXES_PER_IMAGE boxes per image."""
    best, best_f = THRESHOLDS[-1], -1.0
    for t in THRESHOLDS:
        m = scores_at(tune, t)
        if m["boxes_per_image"] > MAX_BOXES_PER_IMAGE:
            continue
        r, p = m["recall_20px"], m["precision"]
        f2 = 5 * p * r / max(4 * p + r, 1e-9)
        if f2 > best_f:
            best, best_f = t, f2
    return best


def per_source(results: Sequence[Scored], threshold: float) -> dict[str, dict[str, float]]:
    sources = sorted({r.sample.source for r in results})
    table = {s: scores_at([r for r in results if r.sample.source == s], threshold) for s in sources}
    table["all"] = scores_at(results, threshold)
    return table


DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx_vnni", "asimddp")
"""CPU flags of int8 dot-product instructions (x86 VNNI, Arm's SDOT): they make an int8
model's inference many times faster, so the latency is reported with them."""


def cpu_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The evaluation machine's CPU in a few words, with its int8 dot-product instructions."""
    import platform

    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    names: list[str] = []
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            names.append(value.strip())
        if key.strip() in ("flags", "Features"):
            flags |= set(value.split())
    dot = [f for f in DOT_PRODUCT_FLAGS if f in flags]
    cpu = ", ".join([*names[:1], platform.machine()])  # every core names the same model
    return f"{cpu}, int8 dot-product instructions: {', '.join(dot) or 'none'}"


def evaluate_and_write(samples: Sequence[Sample], out: Path) -> dict[str, Any]:
    """Tune the threshold, report, and write the manifest's threshold, metrics and card."""
    from models.edgetpu_ops import conv_macs
    from training.card import write_card
    from training.export import MANIFEST_FILE, MODEL_FILE, manifest_text

    manifest = out / MANIFEST_FILE
    held = [s for s in samples if s.split in ("tune", "report")]
    results, ms = detect_all(manifest, held)
    tune = [r for r in results if r.sample.split == "tune"]
    report = [r for r in results if r.sample.split == "report"]
    threshold = pick_threshold(tune)
    manifest.write_text(manifest_text(threshold))
    metrics: dict[str, Any] = {
        "model": MODEL_FILE,
        "model_bytes": (out / MODEL_FILE).stat().st_size,
        "score_threshold": threshold,
        "iou": IOU,
        "inference_ms_one_core": round(ms, 2),
        "cpu": cpu_description(),
        "macs_per_inference": conv_macs(out / MODEL_FILE),
        "tune": per_source(tune, threshold),
        "report": per_source(report, threshold),
    }
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    write_card(out, metrics)
    for split in ("tune", "report"):
        for source, m in metrics[split].items():
            print(f"{split:6} {source:12} {json.dumps(m)}", flush=True)
    return metrics


__all__ = [
    "DOT_PRODUCT_FLAGS",
    "IOU",
    "LOW_THRESHOLD",
    "MAX_BOXES_PER_IMAGE",
    "METRICS_FILE",
    "MIN_READABLE_PX",
    "THRESHOLDS",
    "Scored",
    "cpu_description",
    "detect_all",
    "evaluate_and_write",
    "match",
    "per_source",
    "pick_threshold",
    "scores_at",
]
