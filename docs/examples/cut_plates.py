"""Cut the plate crops of one artifact directory out of its source video, on the GPU box.

    python cut_plates.py ARTIFACT_DIR SOURCE_VIDEO OUT_DIR

Needs `reader.py` (copied from platesift/reader.py, standard library only) beside it and
OpenCV. Frames are read in order (no seeking, which some codecs make inexact): each region is
cut at full resolution from the frame it was proposed on, as stored (not rotated), and saved as
`OUT_DIR/f<frame>_r<region>.png`. Prints how many crops it wrote.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
from reader import Artifacts


def main(artifact_dir: str, video: str, out: str) -> int:
    art = Artifacts(artifact_dir)
    wanted: dict[int, list[tuple[int, tuple[int, int, int, int]]]] = {}
    for frame in art.frames():
        for number, region in enumerate(frame.regions):
            wanted.setdefault(frame.frame, []).append((number, region.box))
    Path(out).mkdir(parents=True, exist_ok=True)
    capture = cv2.VideoCapture(video)
    written, index = 0, 0
    while wanted:
        ok, image = capture.read()
        if not ok:
            break
        for number, (x1, y1, x2, y2) in wanted.pop(index, []):
            cv2.imwrite(str(Path(out) / f"f{index:07d}_r{number}.png"), image[y1:y2, x1:x2])
            written += 1
        index += 1
    print(f"{written} crops written to {out}")
    return 0 if not wanted else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
