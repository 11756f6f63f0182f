"""The artifacts' JSON Schemas hold for real artifacts and catch what breaks them; `platesift
verify` reports a directory in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from platesift.artifact_schemas import SCHEMA_DIR, SCHEMAS, schema_problems
from tests.test_cli import run


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sim.scenes import preset, render

    root = tmp_path_factory.mktemp("schemas")
    video = root / "street.mp4"
    render(preset("street", seconds=6.0), video)
    out = root / "out"
    done = run(["preprocess", str(video), "--out", str(out), "--proposer", "opencv"], root)
    assert done.returncode == 0, done.stderr
    return out


def test_real_artifacts_conform(artifacts: Path) -> None:
    assert schema_problems(artifacts) == []
    assert (artifacts / "frames.jsonl").read_text().count("\n") > 10  # something was checked


def test_every_artifact_file_has_a_schema_file() -> None:
    assert sorted(SCHEMAS.values()) == sorted(p.name for p in SCHEMA_DIR.glob("*.schema.json"))


@pytest.mark.parametrize(
    ("file", "break_it", "said"),
    [
        ("frames.jsonl", lambda d: d.update(t=-1.0), "frames.jsonl line 1: t"),
        ("frames.jsonl", lambda d: d.update(extra=1), "Additional properties"),
        ("rejections.jsonl", lambda d: d.update(reason="sleepy"), "reason"),
        ("manifest.json", lambda d: d["video"].update(rotation=45), "video/rotation"),
        ("manifest.json", lambda d: d.update(schema_version=1), "schema_version"),
        ("heavy_task.json", lambda d: d["payload"].pop("counts"), "'counts' is a required"),
    ],
)
def test_a_broken_artifact_is_named_with_where_it_breaks(
    artifacts: Path, tmp_path: Path, file: str, break_it: object, said: str
) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(artifacts, copy)
    path = copy / file
    if file.endswith(".jsonl"):
        lines = path.read_text().splitlines()
        first = json.loads(lines[0])
        break_it(first)  # type: ignore[operator]
        path.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    else:
        document = json.loads(path.read_text())
        break_it(document)  # type: ignore[operator]
        path.write_text(json.dumps(document))
    problems = schema_problems(copy)
    assert problems and any(said in p for p in problems), problems


def test_verify_command_says_ok_or_the_first_problem(artifacts: Path, tmp_path: Path) -> None:
    good = run(["verify", str(artifacts)], tmp_path)
    assert good.returncode == 0 and "ok: " in good.stdout, good.stdout + good.stderr
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(artifacts, bad)
    (bad / "rejections.jsonl").write_text('{"from": 0, "to": 3, "reason": "x"}\n')
    result = run(["verify", str(artifacts), str(bad)], tmp_path)
    assert result.returncode == 3
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].endswith("regions)") and "FAILED" in lines[1]
