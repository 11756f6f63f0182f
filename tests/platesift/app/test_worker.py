"""The worker's own duties around tasks: here, keeping the journal from growing for ever."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from journal import Journal
from journal.entry import JournalEntry, now_iso
from platesift.app.worker import Worker
from platesift.config import load_settings


def test_a_starting_worker_prunes_the_journal_to_keep_days(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with Journal(path) as journal:
        for task, days_ago in (("ancient", 90.0), ("last-week", 7.0)):
            e = JournalEntry(task, 1, "note", "boot", "", "", {})
            assert journal.record(dataclasses.replace(e, ts=now_iso(days_ago=days_ago)))
    settings = load_settings(
        env={},
        overrides=[f"paths.journal={path}", "proposer.backend=none", "journal.keep_days=30"],
    )
    with Worker(settings, scratch=tmp_path / "scratch"):
        pass  # stopping drains the journal actor's inbox, prune included
    with Journal.open_existing(path) as journal:
        assert [s.task_id for s in journal.tasks()] == ["last-week"]


def test_the_worker_checks_the_nas_sentinel_before_it_writes(tmp_path: Path) -> None:
    # the NAS is "unmounted": its mount point is an empty local directory without the sentinel
    from actors.messages import TaskSpec
    from sim.scenes import preset, render

    nas = tmp_path / "nas"
    (nas / "cam").mkdir(parents=True)
    video = nas / "cam" / "a.mp4"
    render(preset("street", seconds=0.4), video)
    settings = load_settings(
        env={},
        overrides=[
            f"paths.journal={tmp_path / 'j.db'}",
            "proposer.backend=none",
            "paths.nas_sentinel=.platesift-nas",
        ],
    )
    with Worker(settings, nas_root=nas, scratch=tmp_path / "scratch") as worker:
        spec = TaskSpec("t", str(video), "cam/a.mp4", str(nas / "out" / "t"))
        outcome = worker.run(spec)
    assert outcome.outcome == "failed", outcome
    assert outcome.error_kind == "NasUnavailableError"
    assert not (nas / "out").exists()  # nothing written in the NAS's place
