"""The command line, run as a real process: every bad input gives one clear error line, a
non-zero exit, a journal entry, no artifacts that look complete, and nothing of the user's
lost."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from journal import Journal
from tests.conftest import moving_box_frames, write_timed_video, write_video

PLATESIFT = str(Path(sys.executable).with_name("platesift"))


def run(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATESIFT_")}
    env["PLATESIFT_PATHS__JOURNAL"] = str(home / "journal.db")
    env["PLATESIFT_PATHS__SCRATCH"] = str(home / "scratch")
    return subprocess.run(
        [PLATESIFT, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def journal_errors(home: Path) -> list[str]:
    with Journal.open_existing(home / "journal.db") as journal:
        return [
            str(e.detail.get("error", ""))
            for e in journal.tail(100)
            if e.kind in ("error", "outcome") and e.event in ("rejected", "failed")
        ]


def bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (extra args before --out, expected fragment of the error line)."""
    empty = tmp / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp / "notes.mp4"
    text.write_text("not a video at all\n" * 50)
    rng = np.random.default_rng(0)
    good = write_video(
        tmp / "good.avi",
        [rng.integers(0, 255, (120, 160, 3), np.uint8) for _ in range(60)],
        fourcc="MJPG",
    )
    data = good.read_bytes()
    truncated = tmp / "truncated.avi"
    truncated.write_bytes(data[: len(data) // 2])
    absurd = tmp / "absurd.avi"
    patched = bytearray(data)
    struct.pack_into("<II", patched, patched.index(b"strh") + 28, 1, 100000)
    absurd.write_bytes(bytes(patched))
    ok = write_video(tmp / "ok.mp4", moving_box_frames(20))
    return {
        "missing": ([str(tmp / "nope.mp4")], "does not exist"),
        "empty": ([str(empty)], "empty"),
        "directory": ([str(tmp)], "is a directory"),
        "not-video": ([str(text)], "not a video"),
        "truncated": ([str(truncated)], "truncated or corrupt"),
        "absurd-fps": ([str(absurd)], "absurd frame rate"),
        "negative-threshold": (
            [str(ok), "--set", "motion.threshold=-5"],
            "motion.threshold must be at least",
        ),
        "unknown-key": ([str(ok), "--set", "motion.treshold=5"], "did you mean motion.threshold"),
        "wrong-type": (
            [str(ok), "--set", "analysis.width=wide"],
            "analysis.width must be a whole number",
        ),
        "missing-config": ([str(ok), "--config", str(tmp / "none.toml")], "does not exist"),
    }


CASES = [
    "missing",
    "empty",
    "directory",
    "not-video",
    "truncated",
    "absurd-fps",
    "negative-threshold",
    "unknown-key",
    "wrong-type",
    "missing-config",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input(tmp_path: Path, case: str) -> None:
    args, fragment = bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("the user's own file")
    result = run(["preprocess", *args, "--out", str(out)], tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("platesift: error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (out / "manifest.json").exists()
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    assert (out / "mine.txt").read_text() == "the user's own file"
    assert any(fragment in e for e in journal_errors(tmp_path)), journal_errors(tmp_path)


def test_output_directory_not_writable(tmp_path: Path) -> None:
    video = write_video(tmp_path / "ok.mp4", moving_box_frames(20))
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be")
    result = run(["preprocess", str(video), "--out", str(blocker / "out")], tmp_path)
    assert result.returncode == 3
    assert len(result.stderr.strip().splitlines()) == 1
    assert "platesift: error:" in result.stderr
    assert blocker.read_text() == "a file where a directory should be"


def test_rerun_replaces_our_artifacts_and_keeps_the_users(tmp_path: Path) -> None:
    video = write_video(tmp_path / "ok.mp4", moving_box_frames(60))
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    first = run(["preprocess", str(video), "--out", str(out)], tmp_path)
    assert first.returncode == 0, first.stderr
    assert "decoded" in first.stdout
    again = run(
        ["preprocess", str(video), "--out", str(out), "--set", "motion.threshold=40"], tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert (out / "mine.txt").read_text() == "keep me"
    assert (out / "manifest.json").is_file()


def test_journal_commands(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", moving_box_frames(30))
    assert run(["preprocess", str(video), "--out", str(tmp_path / "o")], tmp_path).returncode == 0
    tasks = run(["journal", "tasks"], tmp_path)
    assert tasks.returncode == 0 and "clip" in tasks.stdout and "done" in tasks.stdout
    from platesift.app.cli import local_task_id

    show = run(["journal", "show", local_task_id(str(video))], tmp_path)
    assert show.returncode == 0
    for state in ("PULLED", "EXTRACTING", "FILTERING", "PUBLISHING", "COMPLETING", "IDLE"):
        assert state in show.stdout
    assert run(["journal", "tail", "-n", "3"], tmp_path).stdout.count("\n") == 3
    missing = run(["journal", "show", "nope"], tmp_path)
    assert missing.returncode == 2 and "no task 'nope'" in missing.stderr


def test_journal_commands_speak_json_lines(tmp_path: Path) -> None:
    from platesift.app.cli import local_task_id

    video = write_video(tmp_path / "clip.mp4", moving_box_frames(30))
    assert run(["preprocess", str(video), "--out", str(tmp_path / "o")], tmp_path).returncode == 0
    task = local_task_id(str(video))
    tasks = [
        json.loads(x) for x in run(["journal", "tasks", "--json"], tmp_path).stdout.splitlines()
    ]
    assert [(t["task_id"], t["outcome"], t["attempts"]) for t in tasks] == [(task, "done", 1)]
    shown = run(["journal", "show", task, "--json"], tmp_path).stdout.splitlines()
    events = [json.loads(x) for x in shown]
    assert {e["task_id"] for e in events} == {task} and len(events) >= 7
    assert [e["dest"] for e in events if e["kind"] == "transition"][:2] == ["PULLED", "EXTRACTING"]
    outcome = [e for e in events if e["kind"] == "outcome"]
    assert outcome[-1]["event"] == "done" and isinstance(outcome[-1]["detail"], dict)
    tail = run(["journal", "tail", "-n", "4", "--json"], tmp_path).stdout.splitlines()
    assert [json.loads(x) for x in tail] == events[-4:]


def test_journal_options_work_after_the_subcommand_too(tmp_path: Path) -> None:
    """`journal tasks --set paths.journal=...` (what `make demo` prints) as well as
    `journal --set ... tasks`."""
    video = write_video(tmp_path / "clip.mp4", moving_box_frames(30))
    journal = tmp_path / "elsewhere" / "journal.db"
    where = f"paths.journal={journal}"
    done = run(["preprocess", str(video), "--out", str(tmp_path / "o"), "--set", where], tmp_path)
    assert done.returncode == 0, done.stderr
    after = run(["journal", "tasks", "--set", where], tmp_path)
    before = run(["journal", "--set", where, "tasks"], tmp_path)
    assert after.returncode == before.returncode == 0, after.stderr + before.stderr
    assert "clip" in after.stdout and after.stdout == before.stdout
    from platesift.app.cli import local_task_id

    shown = run(["journal", "show", local_task_id(str(video)), "--set", where], tmp_path)
    assert shown.returncode == 0, shown.stderr


def test_two_cameras_same_file_name_are_two_local_tasks(tmp_path: Path) -> None:
    ids = set()
    for camera in ("north", "south"):
        (tmp_path / camera).mkdir()
        video = write_video(tmp_path / camera / "00001.mp4", moving_box_frames(20))
        out = tmp_path / f"out-{camera}"
        assert run(["preprocess", str(video), "--out", str(out)], tmp_path).returncode == 0
        ids.add(json.loads((out / "manifest.json").read_text())["task_id"])
    assert len(ids) == 2 and all(i.startswith("00001-") for i in ids), ids
    tasks = run(["journal", "tasks"], tmp_path).stdout
    assert all(i in tasks for i in ids), tasks


def test_verbose_logs_are_not_state_machine_noise(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", moving_box_frames(30))
    result = run(["-v", "preprocess", str(video), "--out", str(tmp_path / "o")], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "INFO" in result.stderr  # -v does say more
    assert "transitions" not in result.stderr  # but not every state change: the journal has them


def test_journal_missing_is_one_line(tmp_path: Path) -> None:
    result = run(["journal", "tasks"], tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1


def test_settings_lists_every_key(tmp_path: Path) -> None:
    result = run(["settings", "--set", "motion.threshold=30"], tmp_path)
    assert result.returncode == 0
    assert "motion.threshold" in result.stdout and "(now 30.0)" in result.stdout


def test_usage_error_is_one_line(tmp_path: Path) -> None:
    result = run(["preprocess"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("platesift: error:")


def test_console_script_exists() -> None:
    assert shutil.which(PLATESIFT)


# --- model backends ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def street(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sim.scenes import preset, render

    video = tmp_path_factory.mktemp("street") / "street.mp4"
    render(preset("street", seconds=6.0), video)
    return video


def test_tflite_runs_a_real_model_and_is_deterministic(
    tmp_path: Path, street: Path, plate_model: Path
) -> None:
    import json

    out = tmp_path / "out"
    snapshots = []
    for _ in range(2):
        result = run(
            [
                "preprocess",
                str(street),
                "--out",
                str(out),
                "--proposer",
                "tflite",
                "--model",
                str(plate_model),
                "--task-id",
                "street",
            ],
            tmp_path,
        )
        assert result.returncode == 0, result.stderr
        snapshots.append({p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert snapshots[0] == snapshots[1]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["proposer"]["backend"] == "tflite"
    assert manifest["proposer"]["model"].startswith("platesift-synthetic-plates (plates-cpu.tflite")
    from importlib import metadata

    runtime = manifest["proposer"]["runtime"]  # the runtime that ran it, as installed
    assert runtime in {f"{d} {metadata.version(d)}" for d in ("ai-edge-litert",)}, runtime
    assert "libedgetpu" not in manifest["proposer"]  # the CPU model needs none
    frames = [json.loads(ln) for ln in (out / "frames.jsonl").read_text().splitlines()]
    assert sum(bool(f["regions"]) for f in frames) > len(frames) // 2


def model_error_cases(tmp: Path, plate_model: Path) -> dict[str, tuple[list[str], str, int]]:
    wrong = tmp / "wrong.toml"
    text = plate_model.read_text()
    wrong.write_text(
        text.replace('cpu_file = "plates-cpu.tflite"', 'cpu_file = "plates-cpu_edgetpu.tflite"')
    )
    for f in plate_model.parent.glob("*.tflite"):
        shutil.copy(f, tmp / f.name)
    cut = tmp / "cut"
    cut.mkdir()
    for f in plate_model.parent.glob("*.tflite"):
        data = f.read_bytes()
        (cut / f.name).write_bytes(data if "edgetpu" in f.name else data[: len(data) // 2])
    truncated = cut / "plates.toml"
    truncated.write_text(text)
    control = tmp / "tpu"
    control.mkdir()
    (control / "absent").touch()
    return {
        "edgetpu-without-coral": (
            ["--proposer", "edgetpu", "--model", str(plate_model)],
            "libedgetpu.so.1 is not installed: install libedgetpu1-std",
            2,
        ),
        "missing-manifest": (
            ["--proposer", "tflite", "--model", str(tmp / "absent.toml")],
            "absent.toml does not exist",
            2,
        ),
        "truncated-model": (
            ["--proposer", "tflite", "--model", str(truncated)],
            "is not a usable TFLite model",
            2,
        ),
        "edgetpu-model-on-cpu": (
            ["--proposer", "tflite", "--model", str(wrong)],
            "is compiled for the Edge TPU, but it is the manifest's cpu_file",
            2,
        ),
        "coral-absent": (
            [
                "--proposer",
                "fake-edgetpu",
                "--model",
                str(plate_model),
                "--set",
                f"proposer.fake_control={control}",
            ],
            "no Edge TPU answered",
            4,
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "edgetpu-without-coral",
        "missing-manifest",
        "truncated-model",
        "edgetpu-model-on-cpu",
        "coral-absent",
    ],
)
def test_model_backend_problems_are_one_line_at_start(
    tmp_path: Path, street: Path, plate_model: Path, case: str
) -> None:
    if case == "edgetpu-without-coral":
        from models.tflite_runtime import edgetpu_library_found

        if edgetpu_library_found():
            pytest.skip("this machine has libedgetpu")
    args, fragment, code = model_error_cases(tmp_path, plate_model)[case]
    out = tmp_path / "out"
    result = run(["preprocess", str(street), "--out", str(out), *args], tmp_path)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("platesift: error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (out / "manifest.json").exists()


def test_frame_times_and_rotation_reach_the_artifacts(tmp_path: Path, street: Path) -> None:
    """A variable-frame-rate, rotated recording (the street scene's frames, a 3 s gap in the
    middle, then 10 fps): each kept frame's `t` is its own timestamp, not index / fps, and the
    manifest says how the video is rotated for display."""
    import json

    import cv2

    cap = cv2.VideoCapture(str(street))
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1])
    half = len(frames) // 2
    times = [i * 0.04 for i in range(half)] + [
        half * 0.04 + 3.0 + i * 0.1 for i in range(len(frames) - half)
    ]
    video = write_timed_video(tmp_path / "vfr.mp4", frames, times, rotation_ccw=90)
    out = tmp_path / "out"
    result = run(["preprocess", str(video), "--out", str(out), "--proposer", "none"], tmp_path)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["schema_version"] == 3 and manifest["video"]["rotation"] == 270
    assert manifest["parameters"]["analysis"]["decoder"] == "auto"
    assert manifest["video"]["decoder"] == "pyav"  # what auto chose here, not "auto"
    kept = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    assert len(kept) > 20
    assert all(f["t"] == round(times[f["frame"]], 4) for f in kept), kept[:3]
    assert any(f["frame"] >= half for f in kept)  # frames after the gap are there


def test_a_resolution_change_is_rejected_in_one_line(tmp_path: Path) -> None:
    from tests.actors.test_decoder import two_sizes_ts

    video = two_sizes_ts(tmp_path)
    out = tmp_path / "out"
    result = run(["preprocess", str(video), "--out", str(out)], tmp_path)
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "frame size changes mid-stream at frame 20" in lines[0], lines
    assert not (out / "manifest.json").exists()


def test_a_transport_stream_cut_off_mid_packet_is_flagged_not_silent(
    tmp_path: Path, street: Path
) -> None:
    """A `.ts` recording cut off (a power loss at the camera's recorder) declares no frame
    count to compare against, and FFmpeg just ends: the half packet at the end is the tell."""
    import cv2

    cap = cv2.VideoCapture(str(street))
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1])
    whole = write_timed_video(
        tmp_path / "whole.ts", frames, [i / 25 for i in range(len(frames))], container="mpegts"
    )
    data = whole.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: len(data) * 6 // 10 // 188 * 188 + 100])  # ends inside a packet
    results = {}
    for video in (whole, cut):
        out = tmp_path / f"out-{video.stem}"
        result = run(["preprocess", str(video), "--out", str(out), "--proposer", "none"], tmp_path)
        assert result.returncode == 0, result.stderr  # its frames are still worth having
        results[video.stem] = (result, json.loads((out / "manifest.json").read_text()))
    assert results["whole"][1]["video"]["damaged"] is None
    assert "warning" not in results["whole"][0].stdout
    result, manifest = results["cut"]
    assert "ends inside a packet (100 of 188 bytes)" in manifest["video"]["damaged"]
    assert "warning   source damaged: the transport stream ends inside a packet" in result.stdout
    events = run(["journal", "tail", "-n", "5"], tmp_path).stdout
    assert "damaged" in events, events


def test_thumbnail_modes_best_all_and_none(tmp_path: Path, street: Path) -> None:
    def preprocess(mode: str) -> tuple[Path, list[dict], list[dict], dict]:
        out = tmp_path / mode
        done = run(
            ["preprocess", str(street), "--out", str(out), "--set", f"output.thumbnails={mode}"],
            tmp_path,
        )
        assert done.returncode == 0, done.stderr
        frames = [json.loads(x) for x in (out / "frames.jsonl").read_text().splitlines()]
        tracks = [json.loads(x) for x in (out / "tracks.jsonl").read_text().splitlines()]
        return out, frames, tracks, json.loads((out / "manifest.json").read_text())

    def jpegs(out: Path) -> set[str]:
        return {f"thumbs/{p.name}" for p in (out / "thumbs").glob("*.jpg")}

    best_out, best_frames, best_tracks, best_manifest = preprocess("best")
    all_out, all_frames, all_tracks, all_manifest = preprocess("all")
    none_out, none_frames, none_tracks, none_manifest = preprocess("none")
    assert [f["regions"] for f in none_frames] == [f["regions"] for f in best_frames]
    regions = [r for f in all_frames for r in f["regions"]]
    # all: one JPEG per region, named in frames.jsonl; the tracks name their best ones too.
    assert jpegs(all_out) == {r["thumb"] for r in regions} and len(regions) > 20
    assert {c["thumb"] for t in all_tracks for c in t["best"]} <= jpegs(all_out)
    # best: only the tracks' best, at most three each; frames.jsonl names none.
    assert jpegs(best_out) == {c["thumb"] for t in best_tracks for c in t["best"] if c["thumb"]}
    # ... and none for a brief track (fewer than tracking.min_frames kept frames).
    assert all(
        (c["thumb"] is None) == (len(t["boxes"]) < 6) for t in best_tracks for c in t["best"]
    )
    assert len(jpegs(best_out)) <= 3 * len(best_tracks) < len(regions)
    assert all(r["thumb"] is None for f in best_frames for r in f["regions"])
    # none: no JPEG, but the same tracks and best crops, by frame and box.
    assert not jpegs(none_out) and none_manifest["counts"]["thumbnails"] == 0
    strip = [[{**c, "thumb": None} for c in t["best"]] for t in best_tracks]
    assert [t["best"] for t in none_tracks] == strip
    # The three modes see the same tracks; the best crops' bytes are the same JPEGs.
    assert [t["boxes"] for t in best_tracks] == [t["boxes"] for t in all_tracks]
    for name in jpegs(best_out):
        assert (best_out / name).read_bytes() == (all_out / name).read_bytes()
    assert best_manifest["counts"]["thumbnails"] == len(jpegs(best_out))
    assert all_manifest["counts"]["tracks"] == best_manifest["counts"]["tracks"] == len(best_tracks)


def test_best_crops_are_in_the_source_videos_colours_with_pyav(
    tmp_path: Path, street: Path
) -> None:
    import cv2

    def thumbs(*settings: str) -> tuple[Path, list[dict]]:
        out = tmp_path / "-".join(settings or ("default",)).replace("=", "_")
        args = ["preprocess", str(street), "--out", str(out), "--set", "output.thumb_margin=0"]
        for setting in settings:
            args += ["--set", setting]
        done = run(args, tmp_path)
        assert done.returncode == 0, done.stderr
        tracks = [json.loads(x) for x in (out / "tracks.jsonl").read_text().splitlines()]
        return out, [c for t in tracks for c in t["best"] if c["thumb"]]

    out, best = thumbs()
    capture = cv2.VideoCapture(str(street))
    frames = []
    while (got := capture.read())[0]:
        frames.append(got[1])
    compared = 0
    for crop in best:
        jpeg = cv2.imread(str(out / crop["thumb"]), cv2.IMREAD_UNCHANGED)
        assert jpeg.ndim == 3
        x1, y1, x2, y2 = crop["box"]
        x1, y1, x2, y2 = x1 - x1 % 2, y1 - y1 % 2, x2 + x2 % 2, y2 + y2 % 2
        if jpeg.shape[:2] != (y2 - y1, x2 - x1):
            continue  # scaled down (wider than output.thumb_max_width)
        source = frames[crop["frame"]][y1:y2, x1:x2].astype(int)
        assert np.abs(jpeg.astype(int) - source).mean() < 10, crop
        compared += 1
    assert compared >= 5
    for settings in (("analysis.decoder=opencv",), ("output.colour=false",)):
        _, grey = thumbs(*settings)
        assert grey
        for crop in grey:
            image = cv2.imread(
                str(tmp_path / "-".join(settings).replace("=", "_") / crop["thumb"]),
                cv2.IMREAD_UNCHANGED,
            )
            assert image.ndim == 2, settings
