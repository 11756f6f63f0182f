"""The journal actor and the sinks: fire-and-forget recording, and nothing can kill it."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pykka
import pytest

from journal.actor import (
    JournalActor,
    JournalActorProxy,
    JournalSink,
    MemoryJournal,
    NullJournal,
    journal_sink,
)
from journal.entry import JournalEntry, now_iso
from journal.store import Journal

TIMEOUT = 5.0


def entry(task: str = "t1", event: str = "pull", **detail: Any) -> JournalEntry:
    return JournalEntry(
        task_id=task,
        attempt=1,
        kind="transition",
        event=event,
        source="IDLE",
        dest="PULLED",
        detail=detail,
    )


def on_disk(path: Path, task: str = "t1") -> list[str]:
    with Journal.open_existing(path) as journal:
        return [e.event for e in journal.events(task)]


@pytest.fixture(autouse=True)
def stop_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=TIMEOUT)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal" / "journal.db"


def test_fire_and_forget_entries_are_on_disk_after_stop(path: Path) -> None:
    journal = Journal(path)
    ref = JournalActor.start(journal)
    sink = journal_sink(ref)
    for i in range(200):
        sink.record(entry(event=f"e{i}"))
    assert ref.stop(block=True, timeout=TIMEOUT) is True  # drains the inbox first
    assert not journal.is_open  # closed in on_stop
    assert on_disk(path) == [f"e{i}" for i in range(200)]


def test_bad_entries_do_not_kill_the_actor(path: Path) -> None:
    circular: dict[str, Any] = {}
    circular["self"] = circular
    ref = JournalActor.start(Journal(path))
    sink = journal_sink(ref)
    sink.record(entry(event="bad", loop=circular))
    sink.record("not an entry")  # type: ignore[arg-type]
    sink.record(entry(event="good"))
    proxy = cast(JournalActorProxy, ref.proxy())
    assert proxy.record(entry(event="asked")).get(timeout=TIMEOUT) is True
    assert ref.is_alive()
    stats = proxy.stats().get(timeout=TIMEOUT)
    assert (stats.recorded, stats.failed) == (2, 2)
    ref.stop(block=True, timeout=TIMEOUT)
    assert on_disk(path) == ["good", "asked"]


def test_an_unopenable_journal_does_not_stop_the_actor(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    ref = JournalActor.start(Journal(blocker / "journal.db"))
    sink = journal_sink(ref)
    for _ in range(3):
        sink.record(entry())
    proxy = cast(JournalActorProxy, ref.proxy())
    stats = proxy.stats().get(timeout=TIMEOUT)
    assert not stats.is_open and stats.recorded == 0 and stats.failed == 4  # open + 3 records
    assert ref.stop(block=True, timeout=TIMEOUT) is True
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_sink_of_a_stopped_actor_drops_entries_with_one_warning(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ref = JournalActor.start(Journal(path))
    sink = journal_sink(ref)
    sink.record(entry(event="kept"))
    ref.stop(block=True, timeout=TIMEOUT)
    for _ in range(3):
        sink.record(entry(event="late"))  # must not raise ActorDeadError
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "not running" in warnings[0].getMessage()
    assert on_disk(path) == ["kept"]


def test_memory_journal_waits_for_entries_from_another_thread() -> None:
    memory = MemoryJournal()
    sinks: list[JournalSink] = [memory, NullJournal()]

    def produce() -> None:
        for task in ("a", "b", "a"):
            for sink in sinks:
                sink.record(entry(task=task))

    worker = threading.Thread(target=produce)
    worker.start()
    assert memory.wait_for(lambda entries: len(entries) == 3, timeout=TIMEOUT)
    worker.join(TIMEOUT)
    assert [e.task_id for e in memory.entries] == ["a", "b", "a"]
    assert len(memory.of_task("a")) == 2
    assert not memory.wait_for(lambda entries: len(entries) > 3, timeout=0.01)
    memory.clear()
    assert memory.entries == []


def test_prune_keeps_the_last_days(path: Path) -> None:
    ref = JournalActor.start(Journal(path))
    proxy = cast(JournalActorProxy, ref.proxy())
    for event, days_ago in (("old", 40.0), ("recent", 2.0), ("now", 0.0)):
        old = dataclasses.replace(entry(event=event), ts=now_iso(days_ago=days_ago))
        assert proxy.record(old).get(timeout=TIMEOUT) is True
    assert proxy.prune(0).get(timeout=TIMEOUT) == 0  # 0 = keep everything
    assert proxy.prune(30).get(timeout=TIMEOUT) == 1
    ref.stop(block=True, timeout=TIMEOUT)
    assert on_disk(path) == ["recent", "now"]
