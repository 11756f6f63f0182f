"""The standard-library reader the GPU box vendors: it reads real artifacts, refuses an
untrustworthy directory, runs with nothing but the standard library, and its example cuts the
plate crops out of the source video."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from platesift import reader
from platesift.reader import ArtifactError, Artifacts
from tests.test_cli import run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def street(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from sim.scenes import preset, render

    root = tmp_path_factory.mktemp("reader")
    video = root / "street.mp4"
    render(preset("street", seconds=6.0), video)
    out = root / "out"
    done = run(["preprocess", str(video), "--out", str(out)], root)
    assert done.returncode == 0, done.stderr
    return video, out


def test_it_reads_what_the_artifacts_say(street: tuple[Path, Path]) -> None:
    _, out = street
    art = Artifacts(out)
    lines = [json.loads(x) for x in (out / "frames.jsonl").read_text().splitlines()]
    frames = list(art.frames())
    assert [f.frame for f in frames] == [x["frame"] for x in lines] and frames
    regions = list(art.regions())
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(regions) == manifest["counts"]["regions"] > 0
    tracks = list(art.tracks())
    assert len(tracks) == manifest["counts"]["tracks"] > 0
    assert {r.track for _, r in regions} == {t.track for t in tracks}
    # `output.thumbnails = best`: only each track's best crops have a JPEG, named by the track.
    assert all(r.thumb is None for _, r in regions)
    thumbs = [c.thumb for t in tracks for c in t.best if c.thumb is not None]
    assert len(thumbs) == manifest["counts"]["thumbnails"] > 0
    assert all(path.is_file() for path in thumbs)
    assert sorted(p.name for p in thumbs) == sorted(p.name for p in (out / "thumbs").iterdir())
    for t in tracks:
        assert t.best and [c.quality for c in t.best] == sorted(
            (c.quality for c in t.best), reverse=True
        )
        seen = {f: box for f, box in t.boxes}
        assert all(seen[c.frame] == c.box for c in t.best)
    runs = list(art.rejections())
    assert sum(b - a + 1 for a, b, _ in runs) == manifest["counts"]["decoded"] - len(frames)
    assert art.video["rotation"] == 0 and art.task_id == manifest["task_id"]


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda d: (d / "manifest.json").unlink(), "does not exist"),
        (lambda d: (d / "frames.jsonl").write_text("{}\n"), "frames.jsonl does not match"),
        (lambda d: next((d / "thumbs").iterdir()).unlink(), "is listed but missing"),
    ],
)
def test_an_untrustworthy_directory_is_refused(
    street: tuple[Path, Path], tmp_path: Path, damage: object, said: str
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(street[1], copy)
    damage(copy)  # type: ignore[operator]
    with pytest.raises(ArtifactError, match=said):
        Artifacts(copy)


def test_it_needs_only_the_standard_library(street: tuple[Path, Path], tmp_path: Path) -> None:
    """A copy of the one file, run with no site-packages at all (`-S -I`)."""
    shutil.copy(reader.__file__, tmp_path / "reader.py")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import reader; "
        "a = reader.Artifacts(sys.argv[2]); print(sum(1 for _ in a.regions())); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('numpy', 'cv2', 'platesift', 'jsonschema')))"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-I", "-c", code, str(tmp_path), str(street[1])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    count, imported = done.stdout.splitlines()
    assert int(count) > 0 and imported == "[]"


def test_the_example_cuts_every_best_crop_out_of_the_source(
    street: tuple[Path, Path], tmp_path: Path
) -> None:
    video, out = street
    shutil.copy(reader.__file__, tmp_path / "reader.py")
    shutil.copy(ROOT / "docs" / "examples" / "cut_plates.py", tmp_path / "cut_plates.py")
    crops = tmp_path / "crops"
    done = subprocess.run(
        [sys.executable, str(tmp_path / "cut_plates.py"), str(out), str(video), str(crops)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    best = [(t.track, rank, c) for t in Artifacts(out).tracks() for rank, c in enumerate(t.best)]
    assert sorted(p.name for p in crops.glob("*.png")) == sorted(
        f"t{track}_{rank}.png" for track, rank, _ in best
    )
    assert f"{len(best)} crops written" in done.stdout
    for track, rank, crop in best:  # in colour, the size of the box
        image = cv2.imread(str(crops / f"t{track}_{rank}.png"))
        x1, y1, x2, y2 = crop.box
        assert image.shape == (y2 - y1, x2 - x1, 3)
