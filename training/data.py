"""The shared plate dataset: reading `index.jsonl` folders and splitting them.

Each source folder (`../shared/datasets/plates/<source>/`) has `images/` and `index.jsonl`,
one object per image: `{"image", "split", "width", "height", "plates": [[x1, y1, x2, y2]]}`.

Splits, per source, so that nothing reported was tuned on:
- `report`: the publisher's `test` split, or its `valid` split where there is no test;
- `tune`: the publisher's `valid` split where there is a test, else a fixed 1 in 7 of
  `train` (by a hash of the file name); used to pick the score threshold;
- `train`: the rest.

Labels are checked before anything is split. `intl-web`'s boxes are mostly wrong (by eye, on
40 random images: about two in three boxes of car photographs are two to five times the
plate, or beside it; the close-ups, where the plate fills most of the photo, are right). Of
a source in LABEL_AUDITS only the photos whose every box covers at least CLOSE_UP_AREA of
the image are used, plus the photos named in its audit file (`training/audit/<source>.txt`,
one image path per line: photos whose boxes were checked by eye and found right).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

SPLITS = ("train", "tune", "report")
LABEL_AUDITS = ("intl-web",)
CLOSE_UP_AREA = 0.55
AUDIT_DIR = Path(__file__).resolve().parent / "audit"


@dataclass(frozen=True)
class Sample:
    """One photograph and its plate boxes (source pixels, x2/y2 exclusive)."""

    source: str
    path: Path
    split: str
    plates: tuple[tuple[float, float, float, float], ...]


def _our_split(publisher_split: str, has_test: bool, name: str) -> str:
    if publisher_split == "test":
        return "report"
    if publisher_split == "valid":
        return "tune" if has_test else "report"
    digest = hashlib.sha256(name.encode()).digest()[0]
    return "tune" if not has_test and digest % 7 == 0 else "train"


def _close_up(row: dict) -> bool:
    area = float(row["width"]) * float(row["height"])
    boxes = row["plates"]
    return bool(boxes) and all(
        (min(x2, row["width"]) - max(x1, 0)) * (min(y2, row["height"]) - max(y1, 0))
        >= CLOSE_UP_AREA * area
        for x1, y1, x2, y2 in boxes
    )


def audited(source: str) -> frozenset[str] | None:
    """The images of `source` whose labels were checked right, or None if it needs no audit."""
    if source not in LABEL_AUDITS:
        return None
    path = AUDIT_DIR / f"{source}.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    return frozenset(x.strip() for x in lines if x.strip() and not x.startswith("#"))


def read_source(folder: Path) -> list[Sample]:
    """Every image of one source folder with our split (of an audited source, only those
    whose labels can be trusted)."""
    rows = [json.loads(line) for line in (folder / "index.jsonl").read_text().splitlines() if line]
    checked = audited(folder.name)
    if checked is not None:
        rows = [r for r in rows if _close_up(r) or r["image"] in checked]
    has_test = any(r["split"] == "test" for r in rows)
    return [
        Sample(
            source=folder.name,
            path=folder / r["image"],
            split=_our_split(r["split"], has_test, r["image"]),
            plates=tuple(tuple(float(v) for v in p) for p in r["plates"]),  # type: ignore[misc]
        )
        for r in rows
    ]


def read_dataset(root: Path, sources: Iterable[str] | None = None) -> list[Sample]:
    """Every source folder under `root` (those with an index.jsonl), sorted by name."""
    folders = sorted(p.parent for p in root.glob("*/index.jsonl"))
    if sources is not None:
        wanted = set(sources)
        folders = [f for f in folders if f.name in wanted]
    if not folders:
        raise SystemExit(f"no dataset folders (with index.jsonl) under {root}")
    return [s for f in folders for s in read_source(f)]


def load_grey(path: Path) -> np.ndarray:
    """The photograph as the pipeline sees a frame: grey luma, uint8 (BT.601 weights)."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise SystemExit(f"cannot read image {path}")
    return image


__all__ = [
    "AUDIT_DIR",
    "CLOSE_UP_AREA",
    "LABEL_AUDITS",
    "SPLITS",
    "Sample",
    "audited",
    "load_grey",
    "read_dataset",
    "read_source",
]
