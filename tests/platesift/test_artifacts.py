"""Tests of platesift.artifacts: the exact bytes of every artifact and the reader's trust check."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from platesift.artifacts import (
    SCHEMA_VERSION,
    RejectionRuns,
    build_manifest,
    frame_line,
    is_safe_member,
    manifest_json,
    parse_file_list,
    thumb_name,
    verify_artifact_dir,
)
from platesift.records import KeptFrame, Region

FRAME = KeptFrame(
    index=12,
    t=0.48000001,
    lighting=0.123456,
    blur=-0.00001,
    motion=3.0,
    confidence=0.98765,
    regions=(
        Region(
            box=(1, 2, 3, 4),
            score=0.912345,
            distance_m=None,
            thumb="thumbs/f0000012_r0.jpg",
            proposed_on=12,
            track=3,
        ),
        Region(box=(5, 6, 7, 8), score=0.5, distance_m=12.34567, thumb=None, proposed_on=11),
    ),
)

FRAME_LINE = (
    '{"frame":12,"t":0.48,"lighting":0.1235,"blur":0.0,"motion":3.0,"confidence":0.9877,'
    '"regions":[{"box":[1,2,3,4],"score":0.9123,"distance_m":null,"thumb":"thumbs/f0000012_r0.jpg",'
    '"proposed_on":12,"track":3},{"box":[5,6,7,8],"score":0.5,"distance_m":12.3457,"thumb":null,'
    '"proposed_on":11,"track":null}]}'
)


# --- frames.jsonl --------------------------------------------------------------------------------


def test_frame_line_exact_string() -> None:
    assert frame_line(FRAME) == FRAME_LINE


def test_frame_line_key_order_and_no_newline() -> None:
    line = frame_line(FRAME)
    assert "\n" not in line
    keys = list(json.loads(line))
    assert keys == ["frame", "t", "lighting", "blur", "motion", "confidence", "regions"]
    region_keys = list(json.loads(line)["regions"][0])
    assert region_keys == ["box", "score", "distance_m", "thumb", "proposed_on", "track"]


def test_frame_line_accepts_numpy_scalars_with_same_bytes() -> None:
    frame = KeptFrame(
        index=np.int64(12),
        t=np.float32(0.48000001),
        lighting=np.float64(0.123456),
        blur=np.float64(-0.00001),
        motion=np.float64(3.0),
        confidence=np.float64(0.98765),
        regions=(
            Region(
                box=tuple(np.array([1, 2, 3, 4])),
                score=np.float32(0.912345),
                distance_m=None,
                thumb="thumbs/f0000012_r0.jpg",
                proposed_on=np.int64(12),
                track=np.int64(3),  # type: ignore[arg-type]
            ),
            Region(box=(5, 6, 7, 8), score=0.5, distance_m=12.34567, thumb=None, proposed_on=11),
        ),
    )
    assert frame_line(frame) == FRAME_LINE


def test_frame_line_normalises_negative_zero() -> None:
    frame = KeptFrame(0, -0.0, -0.0, -0.00004, 0.0, -0.0, ())
    assert frame_line(frame) == (
        '{"frame":0,"t":0.0,"lighting":0.0,"blur":0.0,"motion":0.0,"confidence":0.0,"regions":[]}'
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_frame_line_refuses_non_finite(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        frame_line(KeptFrame(0, 0.0, bad, 0.0, 0.0, 0.0, ()))


# --- rejections.jsonl ----------------------------------------------------------------------------


def _run(first: int, last: int, reason: str) -> str:
    return json.dumps({"from": first, "to": last, "reason": reason}, separators=(",", ":"))


def test_rejection_runs_merge_consecutive_same_reason() -> None:
    runs = RejectionRuns()
    out = [runs.add(i, "dark") for i in range(5)]
    assert out == [None] * 5
    assert runs.finish() == _run(0, 4, "dark")
    assert runs.counts == {"static": 0, "flat": 0, "dark": 5, "blurry": 0}
    assert runs.rejected == 5


def test_rejection_runs_split_on_gap_and_on_reason_change() -> None:
    runs = RejectionRuns()
    events = [
        (0, "static"),
        (1, "static"),
        (2, "blurry"),
        (5, "blurry"),
        (6, "blurry"),
        (7, "static"),
        (9, "static"),
    ]
    lines = [line for i, reason in events if (line := runs.add(i, reason)) is not None]
    last = runs.finish()
    assert last is not None
    lines.append(last)
    assert lines == [
        _run(0, 1, "static"),
        _run(2, 2, "blurry"),
        _run(5, 6, "blurry"),
        _run(7, 7, "static"),
        _run(9, 9, "static"),
    ]
    assert runs.counts == {"static": 4, "flat": 0, "dark": 0, "blurry": 3}


def test_rejection_runs_empty_and_misuse() -> None:
    runs = RejectionRuns()
    assert runs.finish() is None
    with pytest.raises(ValueError, match="after finish"):
        runs.add(0, "dark")
    runs = RejectionRuns()
    with pytest.raises(ValueError, match="unknown rejection reason"):
        runs.add(0, "ugly")
    runs.add(3, "flat")
    with pytest.raises(ValueError, match="not increasing"):
        runs.add(3, "flat")
    with pytest.raises(ValueError, match="not increasing"):
        runs.add(2, "flat")


# --- names and manifest --------------------------------------------------------------------------


def test_thumb_name() -> None:
    assert thumb_name(123, 0) == "thumbs/f0000123_r0.jpg"
    assert thumb_name(0, 12) == "thumbs/f0000000_r12.jpg"


def test_manifest_json_is_canonical() -> None:
    a = manifest_json({"b": 1.5, "a": {"z": [1, 2], "y": "é"}})
    b = manifest_json({"a": {"y": "é", "z": [1, 2]}, "b": 1.5})
    assert a == b
    assert a == (
        b'{\n  "a": {\n    "y": "\\u00e9",\n    "z": [\n      1,\n      2\n    ]\n  },\n'
        b'  "b": 1.5\n}\n'
    )


def test_manifest_json_refuses_nan() -> None:
    with pytest.raises(ValueError):
        manifest_json({"fps": math.nan})


def _manifest(**overrides: object) -> dict[str, object]:
    kwargs: dict[str, object] = {
        "task_id": "t-1",
        "source": {"path": "cam1/a.mp4", "size": 1234},
        "video": {"width": 1920, "height": 1080, "fps": 25.0, "frame_count": 100, "rotation": 0},
        "analysis": {"width": 480, "height": 270},
        "parameters": {"motion": {"threshold": 18.0}},
        "proposer": {"backend": "none", "model": None},
        "counts": {
            "decoded": 100,
            "kept": 10,
            "rejected": {"static": 90, "flat": 0, "dark": 0, "blurry": 0},
            "regions": 0,
        },
        "files": {},
    }
    kwargs.update(overrides)
    return build_manifest(**kwargs)  # type: ignore[arg-type]


def test_build_manifest_keys() -> None:
    manifest = _manifest(extra={"worker": "jetson-1"})
    assert manifest["schema_version"] == SCHEMA_VERSION == 3
    assert sorted(manifest) == sorted(
        [
            "schema_version",
            "task_id",
            "source",
            "video",
            "analysis",
            "parameters",
            "proposer",
            "counts",
            "files",
            "worker",
        ]
    )
    assert parse_file_list(json.loads(manifest_json(manifest))) == {}


def test_build_manifest_reports_missing_and_shadowing_keys() -> None:
    with pytest.raises(ValueError, match=r"video\.fps, video\.frame_count"):
        _manifest(video={"width": 1, "height": 1})
    with pytest.raises(ValueError, match="shadows"):
        _manifest(extra={"counts": {}})


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("frames.jsonl", True),
        ("thumbs/f0000001_r0.jpg", True),
        ("", False),
        ("/etc/passwd", False),
        ("../x", False),
        ("thumbs/../../x", False),
        ("a//b", False),
        ("./a", False),
        ("a\0b", False),
        ("a\\b", False),
        (3, False),
    ],
)
def test_is_safe_member(name: object, safe: bool) -> None:
    assert is_safe_member(name) is safe


# --- verify_artifact_dir -------------------------------------------------------------------------


def _write_dir(path: Path) -> None:
    contents = {
        "frames.jsonl": FRAME_LINE.encode() + b"\n",
        "rejections.jsonl": b'{"from":0,"to":11,"reason":"static"}\n',
        "thumbs/f0000012_r0.jpg": b"\xff\xd8fake-jpeg\xff\xd9",
    }
    files = {}
    for name, data in contents.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
        files[name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (path / "manifest.json").write_bytes(manifest_json(_manifest(files=files)))


def test_verify_accepts_matching_directory(tmp_path: Path) -> None:
    _write_dir(tmp_path)
    (tmp_path / "notes.txt").write_text("not listed, ignored")
    assert verify_artifact_dir(tmp_path) == []
    assert verify_artifact_dir(str(tmp_path)) == []


def test_verify_detects_tampered_file_of_same_size(tmp_path: Path) -> None:
    _write_dir(tmp_path)
    thumb = tmp_path / "thumbs/f0000012_r0.jpg"
    data = bytearray(thumb.read_bytes())
    data[3] ^= 0x01
    thumb.write_bytes(bytes(data))
    problems = verify_artifact_dir(tmp_path)
    assert len(problems) == 1
    assert "f0000012_r0.jpg" in problems[0]
    assert "sha256" in problems[0]


def test_verify_detects_size_change_and_missing_file(tmp_path: Path) -> None:
    _write_dir(tmp_path)
    with open(tmp_path / "frames.jsonl", "ab") as stream:
        stream.write(b"\n")
    (tmp_path / "rejections.jsonl").unlink()
    problems = verify_artifact_dir(tmp_path)
    assert len(problems) == 2
    assert "frames.jsonl" in problems[0] and "size" in problems[0]
    assert "rejections.jsonl" in problems[1] and "missing" in problems[1]


def test_verify_detects_missing_or_broken_manifest(tmp_path: Path) -> None:
    assert "manifest missing" in verify_artifact_dir(tmp_path)[0]
    (tmp_path / "manifest.json").write_bytes(b'{"schema_version": 3, "files": ')
    assert "unparseable" in verify_artifact_dir(tmp_path)[0]
    (tmp_path / "manifest.json").write_bytes(b"[]")
    assert "not a JSON object" in verify_artifact_dir(tmp_path)[0]
    (tmp_path / "manifest.json").write_bytes(b'{"schema_version": 3}')
    assert "no 'files'" in verify_artifact_dir(tmp_path)[0]
    (tmp_path / "manifest.json").write_bytes(b'{"schema_version": 99, "files": {}}')
    assert "schema_version 99" in verify_artifact_dir(tmp_path)[0]


def test_verify_refuses_unsafe_names(tmp_path: Path) -> None:
    inner = tmp_path / "dir"
    inner.mkdir()
    (tmp_path / "outside.txt").write_bytes(b"x")
    entry = {"size": 1, "sha256": hashlib.sha256(b"x").hexdigest()}
    (inner / "manifest.json").write_bytes(
        manifest_json({"schema_version": 3, "files": {"../outside.txt": entry}})
    )
    problems = verify_artifact_dir(inner)
    assert len(problems) == 1 and "unsafe file name" in problems[0]


def test_track_line_exact_string_and_schema() -> None:
    from jsonschema import Draft202012Validator

    from platesift.artifact_schemas import SCHEMA_DIR
    from platesift.artifacts import track_line
    from platesift.tracking import Candidate, ClosedTrack

    track: ClosedTrack[None] = ClosedTrack(
        track=4,
        first_t=0.4,
        last_t=0.5200001,
        boxes=((10, (1, 2, 31, 9)), (13, (5, 2, 35, 9))),
        best=(
            Candidate(13, 1, (5, 2, 35, 9), 0.812345, {"size": 0.5, "edge": 1.0}),
            Candidate(10, 0, (1, 2, 31, 9), 0.5, {"size": -0.0}),
        ),
    )
    line = track_line(track, {(13, 1): "thumbs/f0000013_r1.jpg"})
    assert line == (
        '{"track":4,"first_frame":10,"last_frame":13,"first_t":0.4,"last_t":0.52,'
        '"boxes":[[10,1,2,31,9],[13,5,2,35,9]],"best":[{"frame":13,"region":1,'
        '"box":[5,2,35,9],"quality":0.8123,"parts":{"size":0.5,"edge":1.0},'
        '"thumb":"thumbs/f0000013_r1.jpg"},{"frame":10,"region":0,"box":[1,2,31,9],'
        '"quality":0.5,"parts":{"size":0.0},"thumb":null}]}'
    )
    schema = json.loads((SCHEMA_DIR / "track.schema.json").read_text())
    assert list(Draft202012Validator(schema).iter_errors(json.loads(line))) == []
