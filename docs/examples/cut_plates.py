"""Cut the best plate crops of one artifact directory out of its source video, on the GPU box.

    python cut_plates.py ARTIFACT_DIR SOURCE_VIDEO OUT_DIR

Needs `reader.py` (copied from platesift/reader.py, standard library only) beside it and
OpenCV. Each plate track (one plate's pass through the view) names its best crops, best first:
they are cut in colour at full resolution from their frames, as stored (not rotated), and saved
as `OUT_DIR/t<track>_<rank>.png`, rank 0 the best. Frames are read in order (no seeking, which
some codecs make inexact). Prints how many crops it wrote.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
from reader import Artifacts


def main(artifact_dir: str, video: str, out: str) -> int:
    art = Artifacts(artifact_dir)
    wanted: dict[int, list[tuple[str, tuple[int, int, int, int]]]] = {}
    for track in art.tracks():
        for rank, crop in enumerate(track.best):
            wanted.setdefault(crop.frame, []).append((f"t{track.track}_{rank}", crop.box))
    Path(out).mkdir(parents=True, exist_ok=True)
    capture = cv2.VideoCapture(video)
    written, index = 0, 0
    while wanted:
        ok, image = capture.read()
        if not ok:
            break
        for name, (x1, y1, x2, y2) in wanted.pop(index, []):
            cv2.imwrite(str(Path(out) / f"{name}.png"), image[y1:y2, x1:x2])
            written += 1
        index += 1
    print(f"{written} crops written to {out}")
    return 0 if not wanted else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
