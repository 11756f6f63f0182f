"""`platesift propose` on still images, through the real CLI: the JSON line format, argument
order, drawn images, and bad files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2

PHOTOS = Path(__file__).resolve().parents[2] / "data" / "plates"
PLATESIFT = str(Path(sys.executable).with_name("platesift"))


def propose(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATESIFT_")}
    return subprocess.run(
        [PLATESIFT, "propose", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_json_lines_in_argument_order_and_bad_files_are_one_line(tmp_path: Path) -> None:
    photo = sorted(PHOTOS.glob("*.jpg"))[0]
    shutil.copy(photo, tmp_path / "a.jpg")
    cv2.imwrite(str(tmp_path / "b.png"), cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE))
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    result = propose(
        "--json", "a.jpg", "bad.jpg", "missing.png", "b.png", "--draw", "drawn", cwd=tmp_path
    )
    assert result.returncode == 3
    errors = result.stderr.strip().splitlines()
    assert errors == [
        "platesift: error: bad.jpg: not a readable image",
        "platesift: error: missing.png: not a readable image",
    ]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["image"] for line in lines] == ["a.jpg", "b.png"]
    height, width = cv2.imread(str(photo)).shape[:2]
    for line in lines:
        assert (line["width"], line["height"]) == (width, height)
        assert line["regions"], "no region on a photo with a plate"
        scores = [r["score"] for r in line["regions"]]
        assert scores == sorted(scores, reverse=True) and len(scores) <= 4
        for r in line["regions"]:
            x1, y1, x2, y2 = r["box"]
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
    assert lines[0]["regions"] == lines[1]["regions"]  # the same pixels, JPEG or PNG
    drawn = sorted(p.name for p in (tmp_path / "drawn").iterdir())
    assert drawn == ["a.png", "b.png"]
    assert cv2.imread(str(tmp_path / "drawn" / "a.png")).shape[:2] == (height, width)


def test_text_output_and_the_same_answer_every_time(tmp_path: Path) -> None:
    photo = str(sorted(PHOTOS.glob("*.jpg"))[0])
    first, second = propose(photo, cwd=tmp_path), propose(photo, cwd=tmp_path)
    assert first.returncode == 0 and first.stderr == ""
    assert first.stdout == second.stdout
    assert first.stdout.startswith(f"{photo}: ") and " region" in first.stdout


def test_opencv_proposer_and_no_images(tmp_path: Path) -> None:
    photo = str(sorted(PHOTOS.glob("*.jpg"))[0])
    result = propose("--proposer", "opencv", "--json", photo, cwd=tmp_path)
    assert result.returncode == 0 and json.loads(result.stdout)["image"] == photo
    result = propose(cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
