"""`platesift propose`: the configured proposer on still images (JPEG, PNG, ...).

Each image is converted to grey luma, as the pipeline sees a frame, and the whole image is
searched. An owner runs it on snapshots from their own camera before deploying; it is also the
stable interface for evaluating a proposer: `--json` prints one line per image, in argument
order, `{"image", "width", "height", "regions": [{"box": [x1, y1, x2, y2], "score"}]}` in
source pixels, best first. A file that is not a readable image gets one error line and the
others are still processed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from models.proposer import Proposal, Proposer

DRAW_COLOUR = (0, 255, 0)


def read_luma(path: Path) -> np.ndarray | None:
    """The image as grey luma (BT.601 weights, as a video's Y plane), or None if unreadable."""
    data = np.fromfile(str(path), np.uint8) if path.is_file() else None
    if data is None or data.size == 0:
        return None
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    return image if image is not None and image.size else None


def region_json(path: str, luma: np.ndarray, found: Sequence[Proposal]) -> str:
    height, width = luma.shape[:2]
    regions = [{"box": list(p.box), "score": p.score} for p in found]
    return json.dumps({"image": path, "width": width, "height": height, "regions": regions})


def region_text(path: str, found: Sequence[Proposal]) -> str:
    boxes = ", ".join(f"{list(p.box)} {p.score:.2f}" for p in found)
    return f"{path}: {len(found)} region{'s' if len(found) != 1 else ''}" + (
        f": {boxes}" if boxes else ""
    )


def draw(luma: np.ndarray, found: Sequence[Proposal], out: Path) -> None:
    """The grey image with its boxes drawn, written whole or not at all."""
    canvas = cv2.cvtColor(luma, cv2.COLOR_GRAY2BGR)
    thickness = max(1, round(max(luma.shape) / 400))
    for p in found:
        x1, y1, x2, y2 = p.box
        cv2.rectangle(canvas, (x1, y1), (x2 - 1, y2 - 1), DRAW_COLOUR, thickness)
        cv2.putText(
            canvas,
            f"{p.score:.2f}",
            (x1, max(12, y1 - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4 * thickness,
            DRAW_COLOUR,
            thickness,
        )
    ok, data = cv2.imencode(".png", canvas)
    if not ok:  # pragma: no cover - encoding a BGR image does not fail
        raise OSError(f"cannot encode {out}")
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(data.tobytes())
    os.replace(tmp, out)


def drawn_name(path: str, taken: set[str]) -> str:
    """`<stem>.png`, or `<stem>-2.png` ... when two images share a stem."""
    stem = Path(path).stem or "image"
    name, n = f"{stem}.png", 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}.png"
    taken.add(name)
    return name


def propose_images(
    proposer: Proposer,
    images: Sequence[str],
    *,
    as_json: bool,
    draw_dir: Path | None,
    max_regions: int,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Propose on each image; the number of images that could not be read."""
    bad = 0
    taken: set[str] = set()
    for path in images:
        luma = read_luma(Path(path))
        if luma is None:
            print(f"platesift: error: {path}: not a readable image", file=err, flush=True)
            bad += 1
            continue
        found = proposer.propose(luma, ())[:max_regions]
        print(region_json(path, luma, found) if as_json else region_text(path, found), file=out)
        out.flush()
        if draw_dir is not None:
            draw(luma, found, draw_dir / drawn_name(path, taken))
    return bad


__all__ = ["propose_images", "read_luma"]
