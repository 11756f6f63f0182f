"""The task runner as a plain class, without threads: the order of side effects, and how
permanent and transient failures end."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pykka
import pytest

from actors.coral import RegionProposals
from actors.decoder import Decoder
from actors.messages import TaskSpec
from actors.motion import FrameFilter
from actors.nas import Nas
from actors.task import TaskRunner
from fsm.states import State
from journal import JournalEntry, MemoryJournal
from models.proposer import Box, NullProposer, Proposal, Proposer
from platesift.config import Settings, load_settings
from platesift.errors import (
    AuthError,
    ModelError,
    PlatesiftError,
    ProposerUnavailableError,
    ProtocolError,
)
from tests.conftest import FailingDisk, moving_box_frames, write_video


class Direct:
    """Calls a plain object at once and hands back a completed pykka future, like a proxy."""

    def __init__(self, target: object, before: Callable[[str], None] | None = None) -> None:
        self._target = target
        self._before = before

    def __getattr__(self, name: str) -> Callable[..., pykka.Future[Any]]:
        method = getattr(self._target, name)

        def call(*args: Any, **kwargs: Any) -> pykka.Future[Any]:
            future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()
            try:
                if self._before is not None:
                    self._before(name)
                future.set(method(*args, **kwargs))
            except Exception:
                future.set_exception()
            return future

        return call


class RecordingSink:
    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.calls: list[tuple[str, Any]] = []

    def publish(self, heavy_task: dict[str, Any]) -> None:
        # The manifest must already be durable on the NAS when we publish.
        assert (self.dest / "manifest.json").is_file()
        self.calls.append(("publish", heavy_task))

    def complete(self, outcome: str, detail: dict[str, Any]) -> None:
        self.calls.append(("complete", outcome))


class FailingProposer(Proposer):
    backend = "fake"

    def __init__(self, error: PlatesiftError | None = None) -> None:
        self.error = error or ProposerUnavailableError("the Edge TPU went away")

    def propose(self, luma: np.ndarray, rois: Sequence[Box]) -> list[Proposal]:
        raise self.error


def make_runner(
    settings: Settings,
    tmp: Path,
    proposer: Proposer | None = None,
    before: Callable[[str], None] | None = None,
    record: Callable[[JournalEntry], None] | None = None,
    nas: Nas | None = None,
) -> tuple[TaskRunner, MemoryJournal]:
    journal = MemoryJournal()
    runner = TaskRunner(
        settings,
        decoder=Direct(Decoder(settings.analysis), before),
        motion=Direct(FrameFilter(settings.analysis, settings.motion, settings.quality)),
        coral=Direct(RegionProposals(proposer or NullProposer())),
        nas=Direct(nas or Nas(None), before),
        record=record or journal.record,
        scratch=tmp / "scratch",
    )
    return runner, journal


def spec_for(video: Path, dest: Path) -> TaskSpec:
    return TaskSpec(task_id="t1", source=str(video), source_name=video.name, dest=str(dest))


@pytest.fixture
def settings() -> Settings:
    return load_settings(env={}, overrides=["analysis.width=160", "resources.chunk_mb=4"])


def test_manifest_then_publish_then_complete(settings: Settings, tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", moving_box_frames(60))
    dest = tmp_path / "out"
    runner, journal = make_runner(settings, tmp_path)
    sink = RecordingSink(dest)
    outcome = runner.run(spec_for(video, dest), sink)
    assert outcome.outcome == "done", outcome.detail
    assert [c[0] for c in sink.calls] == ["publish", "complete"]
    assert sink.calls[1] == ("complete", "done")
    heavy = sink.calls[0][1]
    assert heavy["payload"]["manifest_sha256"] == outcome.manifest_sha256
    assert heavy["payload"]["counts"]["decoded"] == 60
    assert runner.model.state is State.IDLE
    events = [(e.kind, e.event) for e in journal.entries]
    assert ("transition", "publish") in events and events[-1] == ("outcome", "done")
    assert not list((tmp_path / "scratch").glob("*/*"))  # staging cleaned up


def test_bad_input_is_rejected_and_nothing_published(settings: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "v.mp4"
    bad.write_text("not a video")
    runner, journal = make_runner(settings, tmp_path)
    sink = RecordingSink(tmp_path / "out")
    outcome = runner.run(spec_for(bad, tmp_path / "out"), sink)
    assert outcome.outcome == "rejected" and "not a video" in outcome.detail
    assert sink.calls == [("complete", "rejected")]
    assert [e.event for e in journal.entries if e.kind == "transition"][-2:] == ["reject", "finish"]
    assert not (tmp_path / "out").exists()  # no empty artifact directory left behind


class RefusingSink(RecordingSink):
    """A server that answers 422 to the publish or the completion (e.g. an idempotency key
    reused with another payload)."""

    def __init__(self, dest: Path, refuse: str) -> None:
        super().__init__(dest)
        self.refuse = refuse

    def publish(self, heavy_task: dict[str, Any]) -> None:
        super().publish(heavy_task)
        if self.refuse == "publish":
            raise ProtocolError("422: Idempotency-Key was used for another payload")
        if self.refuse == "publish-401":
            raise AuthError("the server refused the token (401)")

    def complete(self, outcome: str, detail: dict[str, Any]) -> None:
        super().complete(outcome, detail)
        if self.refuse == "complete":
            raise ProtocolError("409: lease not held")


@pytest.mark.parametrize("refuse", ["publish", "complete"])
def test_a_refused_publish_or_completion_never_rejects_the_task(
    settings: Settings, tmp_path: Path, refuse: str
) -> None:
    video = write_video(tmp_path / "v.mp4", moving_box_frames(60))
    dest = tmp_path / "out"
    runner, journal = make_runner(settings, tmp_path)
    sink = RefusingSink(dest, refuse)
    outcome = runner.run(spec_for(video, dest), sink)
    assert outcome.outcome == "failed" and outcome.error_kind == "DeliveryError", outcome
    assert ("complete", "rejected") not in sink.calls  # the artifacts stand: left for a retry
    assert (dest / "manifest.json").is_file()
    last = journal.entries[-1]
    assert (last.kind, last.event, last.detail["kind"]) == ("outcome", "failed", "DeliveryError")


def test_a_fatal_error_fails_the_task_flagged_fatal_and_never_rejects_it(
    settings: Settings, tmp_path: Path
) -> None:
    """The service's own model broken mid-task, or its token revoked at the publish: the task is
    not the problem, so it is neither rejected nor completed, and the outcome says `fatal`."""
    video = write_video(tmp_path / "v.mp4", moving_box_frames(60))
    broken = FailingProposer(ModelError("plates.tflite is not a usable TFLite model"))
    runner, journal = make_runner(settings, tmp_path, broken)
    sink = RecordingSink(tmp_path / "out")
    outcome = runner.run(spec_for(video, tmp_path / "out"), sink)
    assert (outcome.outcome, outcome.error_kind, outcome.fatal) == ("failed", "ModelError", True)
    assert sink.calls == []
    assert journal.entries[-1].detail["fatal"] is True

    runner, _ = make_runner(settings, tmp_path)
    refusing = RefusingSink(tmp_path / "out2", "publish-401")
    outcome = runner.run(spec_for(video, tmp_path / "out2"), refusing)
    assert (outcome.outcome, outcome.error_kind, outcome.fatal) == ("failed", "AuthError", True)
    assert [c[0] for c in refusing.calls] == ["publish"]  # never completed, let alone rejected


def test_proposer_fault_is_transient(settings: Settings, tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", moving_box_frames(60))
    runner, journal = make_runner(settings, tmp_path, FailingProposer())
    sink = RecordingSink(tmp_path / "out")
    outcome = runner.run(spec_for(video, tmp_path / "out"), sink)
    assert outcome.outcome == "failed" and outcome.error_kind == "ProposerUnavailableError"
    assert not outcome.fatal
    assert sink.calls == []  # not published, not completed: the task will be pulled again
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert runner.model.state is State.IDLE
    assert journal.entries[-1].event == "failed"


def test_a_nas_disk_failing_at_the_commit_fails_the_task_for_a_retry(
    settings: Settings, tmp_path: Path, failing_disk: FailingDisk
) -> None:
    """Real EIO from the artifact disk right before the commit: transient, nothing published,
    no manifest, and the retry on a working NAS gives the task its artifacts."""
    video = write_video(failing_disk.point / "v.mp4", moving_box_frames(60))
    dest = failing_disk.point / "out" / "t1"

    def before(name: str) -> None:
        if name == "commit":
            failing_disk.fail()

    runner, _ = make_runner(settings, tmp_path, nas=Nas(failing_disk.point), before=before)
    sink = RecordingSink(dest)
    outcome = runner.run(spec_for(video, dest), sink)
    assert (outcome.outcome, outcome.error_kind) == ("failed", "NasUnavailableError"), outcome
    assert sink.calls == []
    assert not any(failing_disk.point.rglob("manifest.json"))
    healthy = tmp_path / "nas"
    healthy.mkdir()
    video = write_video(healthy / "v.mp4", moving_box_frames(60))
    runner, _ = make_runner(settings, tmp_path, nas=Nas(healthy))
    dest = healthy / "out" / "t1"
    retried = runner.run(spec_for(video, dest), RecordingSink(dest))
    assert retried.outcome == "done", retried.detail


def test_cancel_stops_at_the_next_chunk(settings: Settings, tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", moving_box_frames(200))
    calls = []
    runner: TaskRunner

    def before(name: str) -> None:
        calls.append(name)
        if calls.count("next_chunk") == 3:
            runner.cancel.set()

    runner, _ = make_runner(settings, tmp_path, before=before)
    sink = RecordingSink(tmp_path / "out")
    outcome = runner.run(spec_for(video, tmp_path / "out"), sink)
    assert outcome.outcome == "failed" and outcome.error_kind == "CancelledError"
    assert sink.calls == []
    assert not (tmp_path / "out").exists() or not (tmp_path / "out" / "manifest.json").exists()


def test_a_broken_journal_never_fails_a_task(settings: Settings, tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", moving_box_frames(40))
    attempts = []

    def broken(entry: JournalEntry) -> None:
        attempts.append(entry)
        raise OSError("database is locked")

    runner, _ = make_runner(settings, tmp_path, record=broken)
    outcome = runner.run(spec_for(video, tmp_path / "out"))
    assert outcome.outcome == "done"
    assert attempts[-1].kind == "outcome"  # it was tried, and its failure was swallowed


def _peak_traced(settings: Settings, tmp: Path, frames: int) -> int:
    video = write_video(tmp / f"v{frames}.mp4", moving_box_frames(frames, h=240, w=320))
    runner, _ = make_runner(settings, tmp)
    tracemalloc.start()
    tracemalloc.reset_peak()
    outcome = runner.run(spec_for(video, tmp / f"out{frames}"))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert outcome.outcome == "done"
    return peak


def test_memory_does_not_grow_with_video_length(settings: Settings, tmp_path: Path) -> None:
    # numpy reports its buffers to tracemalloc: frames held anywhere show up in the peak.
    # 200 frames already fill the prefetch window (3 chunks of 43 frames at this budget).
    short = _peak_traced(settings, tmp_path, 200)
    long = _peak_traced(settings, tmp_path, 800)
    assert long <= short * 1.25 + 256 * 1024, (short, long)


def test_a_cancel_before_the_task_starts_is_not_lost(settings: Settings, tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", moving_box_frames(40))
    runner, _ = make_runner(settings, tmp_path)
    runner.cancel.set()  # e.g. SIGTERM between the pull and the start of the task
    first = runner.run(spec_for(video, tmp_path / "out"))
    assert first.outcome == "failed" and first.error_kind == "CancelledError"
    second = runner.run(spec_for(video, tmp_path / "out"))  # the flag was reset at the end
    assert second.outcome == "done"


def test_the_machine_resources_never_change_the_artifacts(tmp_path: Path) -> None:
    # 720p: a 4 MiB chunk holds 4 frames, fewer than the 12 that seed the background. The box
    # is moving from the first frame, so a seed from 4 frames would differ from one from 12.
    video = write_video(tmp_path / "v.mp4", moving_box_frames(40, h=720, w=1280, start=0))
    outputs = []
    for name, resources in (
        ("small", ["chunk_mb=4", "prefetch_chunks=1", "propose_backlog_mb=1", "decode_threads=1"]),
        (
            "large",
            ["chunk_mb=64", "prefetch_chunks=3", "propose_backlog_mb=64", "decode_threads=8"],
        ),
    ):
        s = load_settings(env={}, overrides=[f"resources.{r}" for r in resources])
        runner, _ = make_runner(s, tmp_path)
        dest = tmp_path / f"out-{name}"
        assert runner.run(spec_for(video, dest), RecordingSink(dest)).outcome == "done"
        manifest = json.loads((dest / "manifest.json").read_text())
        outputs.append(
            [(dest / n).read_bytes() for n in ("frames.jsonl", "rejections.jsonl")]
            + [manifest["parameters"]]
        )
    assert outputs[0] == outputs[1]
    assert "resources" not in outputs[0][2]  # the manifest's parameters: artifacts' only
    assert outputs[0][0]  # something was kept


def test_the_journal_keeps_the_first_chunk_cycle_and_samples_the_rest(tmp_path: Path) -> None:
    # 720p with 4 MiB chunks: a few chunks of a few frames each.
    video = write_video(tmp_path / "v.mp4", moving_box_frames(28, h=720, w=1280, start=0))
    extracts = {}
    for every_s in (0.0, 3600.0):
        s = load_settings(
            env={}, overrides=["resources.chunk_mb=4", f"journal.cycle_every_s={every_s}"]
        )
        runner, journal = make_runner(s, tmp_path)
        dest = tmp_path / f"out-{every_s}"
        assert runner.run(spec_for(video, dest), RecordingSink(dest)).outcome == "done"
        events = [e for e in journal.entries if e.kind == "transition"]
        extracts[every_s] = [e.detail["chunk"] for e in events if e.event == "extract"]
        assert [e.event for e in events][:3] == ["pull", "extract", "filter"]
        assert [e.event for e in events][-3:] == ["publish", "complete", "finish"]
    chunks = len(extracts[0.0]) - 1  # every chunk, then the end of the video
    assert chunks >= 3 and extracts[0.0] == list(range(chunks + 1))
    assert extracts[3600.0] == [0]


def test_frame_stride_carries_boxes_between_proposals_whatever_the_chunks(
    tmp_path: Path,
) -> None:
    from models.manifest import load_manifest
    from models.registry import SHIPPED_MANIFEST
    from models.tflite_detector import open_cpu
    from models.tflite_runtime import require_runtime
    from sim.scenes import preset, render

    video = tmp_path / "street.mp4"
    render(preset("street", seconds=6.0), str(video))
    results = {}
    for name, stride, chunk in (("1", 1, 4), ("3", 3, 4), ("3-big", 3, 64)):
        s = load_settings(
            env={}, overrides=[f"proposer.frame_stride={stride}", f"resources.chunk_mb={chunk}"]
        )
        detector = open_cpu(load_manifest(SHIPPED_MANIFEST), require_runtime())
        inferences: list[int] = []
        detector.watch_inferences(lambda sink=inferences: sink.append(1))
        runner, _ = make_runner(s, tmp_path, detector)
        dest = tmp_path / f"out-{name}"
        assert runner.run(spec_for(video, dest), RecordingSink(dest)).outcome == "done"
        frames = [json.loads(ln) for ln in (dest / "frames.jsonl").read_text().splitlines()]
        results[name] = (frames, len(inferences), (dest / "frames.jsonl").read_bytes())
    every, strided = results["1"][0], results["3"][0]
    assert [f["frame"] for f in every] == [f["frame"] for f in strided]  # same frames kept
    assert all(r["proposed_on"] == f["frame"] for f in every for r in f["regions"])
    carried = [r for f in strided for r in f["regions"] if r["proposed_on"] != f["frame"]]
    assert carried and all(
        0 < f["frame"] - r["proposed_on"] < 3
        for f in strided
        for r in f["regions"]
        if r["proposed_on"] != f["frame"]
    )
    assert results["3"][1] < 0.5 * results["1"][1]  # the model ran on about a third
    assert results["3"][2] == results["3-big"][2]  # carrying never depends on the chunks


def test_camera_masks_keep_motion_and_plates_out_of_their_area(tmp_path: Path) -> None:
    import cv2

    from models.manifest import load_manifest
    from models.registry import SHIPPED_MANIFEST
    from models.tflite_detector import open_cpu
    from models.tflite_runtime import require_runtime
    from sim.scenes import preset, render

    video = tmp_path / "street.mp4"
    render(preset("street", seconds=6.0), str(video))
    cap = cv2.VideoCapture(str(video))
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    half = width // 2
    runs = {}
    for name, masks in (
        ("none", ""),
        ("left", f"0,0 {half},0 {half},{height} 0,{height}"),
        ("all", f"0,0 {width},0 {width},{height} 0,{height}"),
    ):
        s = load_settings(env={}, overrides=[f"camera.masks={masks}"])
        detector = open_cpu(load_manifest(SHIPPED_MANIFEST), require_runtime())
        runner, _ = make_runner(s, tmp_path, detector)
        dest = tmp_path / f"out-{name}"
        assert runner.run(spec_for(video, dest), RecordingSink(dest)).outcome == "done"
        runs[name] = [json.loads(ln) for ln in (dest / "frames.jsonl").read_text().splitlines()]

    def centres(frames: list[dict]) -> list[float]:
        return [(r["box"][0] + r["box"][2]) / 2 for f in frames for r in f["regions"]]

    assert any(x < half for x in centres(runs["none"]))  # without a mask, plates on the left
    assert any(x >= half for x in centres(runs["none"]))
    assert centres(runs["left"]) and all(x >= half for x in centres(runs["left"]))
    assert runs["all"] == []  # nothing moves where everything is masked


def test_a_brief_track_is_listed_without_a_thumbnail(tmp_path: Path) -> None:
    from models.manifest import load_manifest
    from models.registry import SHIPPED_MANIFEST
    from models.tflite_detector import open_cpu
    from models.tflite_runtime import require_runtime
    from sim.scenes import preset, render

    video = tmp_path / "street.mp4"
    render(preset("street", seconds=6.0), str(video))
    tracks = {}
    for min_frames in (6, 1):
        s = load_settings(env={}, overrides=[f"tracking.min_frames={min_frames}"])
        runner, _ = make_runner(
            s, tmp_path, open_cpu(load_manifest(SHIPPED_MANIFEST), require_runtime())
        )
        dest = tmp_path / f"out-{min_frames}"
        assert runner.run(spec_for(video, dest), RecordingSink(dest)).outcome == "done"
        lines = (dest / "tracks.jsonl").read_text().splitlines()
        tracks[min_frames] = [json.loads(ln) for ln in lines]
        named = {c["thumb"] for t in tracks[min_frames] for c in t["best"] if c["thumb"]}
        assert named == {f"thumbs/{p.name}" for p in (dest / "thumbs").iterdir()}
    brief = [t for t in tracks[6] if len(t["boxes"]) < 6]
    lasting = [t for t in tracks[6] if len(t["boxes"]) >= 6]
    assert brief and lasting
    assert all(len(t["best"]) == 1 and t["best"][0]["thumb"] is None for t in brief)
    assert all(c["thumb"] for t in lasting for c in t["best"])
    assert all(c["thumb"] for t in tracks[1] for c in t["best"])  # min_frames 1: all have one
