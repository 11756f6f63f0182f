"""The journal's SQLite file: schema, round trips, summaries, and tolerance of failures."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from journal import store
from journal.entry import JournalEntry, now_iso
from journal.store import (
    MIGRATION_SET,
    RETRY_AFTER_S,
    SCHEMA_VERSION,
    Journal,
    JournalMissingError,
    RateLimitedWarning,
)
from tests.conftest import FakeClock


def entry(
    task: str = "t1",
    attempt: int = 1,
    kind: str = "transition",
    event: str = "pull",
    source: str = "IDLE",
    dest: str = "PULLED",
    ts: str | None = None,
    **detail: Any,
) -> JournalEntry:
    return JournalEntry(
        task_id=task,
        attempt=attempt,
        kind=kind,
        event=event,
        source=source,
        dest=dest,
        detail=detail,
        ts=ts or now_iso(),
    )


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING]


def rows(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "platesift" / "journal.db"


# --- schema -----------------------------------------------------------------------------------


def test_open_creates_dirs_wal_schema_and_version(path: Path) -> None:
    with Journal(path) as journal:
        journal.open()
        assert journal.is_open
    assert path.is_file()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        columns = {row[1]: row[2] for row in conn.execute("PRAGMA table_info(events)")}
        assert columns == {
            "id": "INTEGER",
            "ts": "TEXT",
            "task_id": "TEXT",
            "attempt": "INTEGER",
            "kind": "TEXT",
            "event": "TEXT",
            "source": "TEXT",
            "dest": "TEXT",
            "detail": "TEXT",
        }
    finally:
        conn.close()
    db = sqlite_utils.Database(path)
    try:
        indexed = {tuple(index.columns) for index in db.table("events").indexes}
        assert {("task_id",), ("ts",)} <= indexed
        if hasattr(sqlite_utils, "Migrations"):
            applied = list(
                db.table("_sqlite_migrations").rows_where("migration_set = ?", [MIGRATION_SET])
            )
            assert [row["name"] for row in applied] == ["m001_events"]
    finally:
        db.close()


def test_reopening_keeps_old_rows(path: Path) -> None:
    with Journal(path) as journal:
        journal.open()
        assert journal.record(entry(event="pull"))
        assert journal.record(entry(event="extract", source="PULLED", dest="EXTRACTING"))
    with Journal(path) as journal:
        journal.open()
        assert journal.record(entry(event="filter", source="EXTRACTING", dest="FILTERING"))
        assert [e.event for e in journal.events("t1")] == ["pull", "extract", "filter"]
    db = sqlite_utils.Database(path)
    try:
        if hasattr(sqlite_utils, "Migrations"):  # the migration ran once, not per open
            assert db.table("_sqlite_migrations").count == 1
    finally:
        db.close()


def test_user_version_fallback_without_sqlite_utils_migrations(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "_Migrations", None)
    for _ in range(2):  # idempotent on reopen
        with Journal(path) as journal:
            journal.open()
            assert journal.record(entry())
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 2
    finally:
        conn.close()


# --- round trips and queries ------------------------------------------------------------------


def test_records_round_trip_with_json_detail(path: Path) -> None:
    detail: dict[str, Any] = {"source": "cam1/a.mp4", "frames": 1200, "ratio": 0.25}
    detail["tags"] = ["a", "é"]
    original = entry(attempt=3, **detail, nested={"k": [1, None, True]})
    with Journal(path) as journal:
        journal.open()
        assert journal.record(original)
        assert journal.events("t1") == [original]
        # Values JSON cannot hold are stored as their str(), not lost.
        assert journal.record(entry(task="t2", where=Path("/nas/x.mp4")))
        assert journal.events("t2")[0].detail == {"where": "/nas/x.mp4"}
        assert journal.stats().recorded == 2


def test_tasks_summarises_attempts_outcomes_and_errors(path: Path) -> None:
    with Journal(path) as journal:
        journal.open()
        rec = journal.record
        # t1, attempt 1: fails on a transient error.
        rec(entry("t1", 1, ts="2024-05-01T10:00:00.000Z"))
        rec(entry("t1", 1, event="extract", source="PULLED", dest="EXTRACTING"))
        rec(entry("t1", 1, "error", "publish", "EXTRACTING", "EXTRACTING", error="NAS gone"))
        rec(entry("t1", 1, event="fail", source="EXTRACTING", dest="IDLE"))
        rec(entry("t1", 1, "outcome", "failed", "IDLE", "IDLE", error="NAS gone"))
        # t2: rejected; the refusal changes nothing.
        rec(entry("t2", 1))
        rec(entry("t2", 1, "refused", "publish", "PULLED", "PULLED", error="not allowed"))
        rec(entry("t2", 1, event="reject", source="PULLED", dest="COMPLETING"))
        rec(entry("t2", 1, "outcome", "rejected", "COMPLETING", "COMPLETING", error="no video"))
        # t3: still in progress.
        rec(entry("t3", 1))
        # t1, attempt 2: succeeds; the most recently active task.
        rec(entry("t1", 2))
        rec(entry("t1", 2, event="finish", source="COMPLETING", dest="IDLE"))
        rec(entry("t1", 2, "outcome", "done", "IDLE", "IDLE", ts="2099-01-01T00:00:00.000Z"))

        summaries = journal.tasks()
        assert [s.task_id for s in summaries] == ["t1", "t3", "t2"]
        t1, t3, t2 = summaries
        assert (t1.attempts, t1.state, t1.outcome, t1.error) == (2, "IDLE", "done", "NAS gone")
        assert (t1.first_ts, t1.last_ts) == ("2024-05-01T10:00:00.000Z", "2099-01-01T00:00:00.000Z")
        assert (t2.attempts, t2.state, t2.outcome, t2.error) == (
            1,
            "COMPLETING",
            "rejected",
            "no video",
        )
        assert (t3.attempts, t3.state, t3.outcome, t3.error) == (1, "PULLED", None, None)
        assert [s.task_id for s in journal.tasks(limit=2)] == ["t1", "t3"]
        assert len(journal.tasks(limit=0)) == 3


def test_events_and_tail_order(path: Path) -> None:
    with Journal(path) as journal:
        journal.open()
        for i in range(5):
            journal.record(entry(task=f"t{i % 2}", event=f"e{i}"))
        assert [e.event for e in journal.events("t0")] == ["e0", "e2", "e4"]
        assert [e.event for e in journal.tail(3)] == ["e2", "e3", "e4"]
        assert [e.event for e in journal.tail()] == [f"e{i}" for i in range(5)]
        assert journal.tail(0) == []
        assert journal.events("unknown") == []


def test_reader_sees_rows_while_the_writer_is_open(path: Path) -> None:
    with Journal(path) as writer:
        writer.open()
        writer.record(entry())
        with Journal.open_existing(path) as reader:
            assert [s.task_id for s in reader.tasks()] == ["t1"]
            writer.record(entry(task="t2"))
            assert [e.task_id for e in reader.tail()] == ["t1", "t2"]


def test_open_existing_never_creates(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "journal.db"
    with pytest.raises(JournalMissingError) as info:
        Journal.open_existing(missing)
    assert isinstance(info.value, FileNotFoundError)
    assert str(missing) in str(info.value) and "\n" not in str(info.value)
    assert not missing.parent.exists()

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JournalMissingError, match=r"garbage\.db"):
        Journal.open_existing(garbage)

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).execute("CREATE TABLE other (x)").connection.close()
    with pytest.raises(JournalMissingError, match="holds no journal"):
        Journal.open_existing(empty)


def test_read_side_requires_an_open_journal(path: Path) -> None:
    with pytest.raises(RuntimeError, match="not open"):
        Journal(path).tasks()


# --- failures never reach the caller ----------------------------------------------------------


def test_locked_database_is_tolerated_and_recovers(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="journal.store")
    clock = FakeClock()
    journal = Journal(path, busy_timeout_s=0.05, clock=clock)
    journal.open()
    assert journal.record(entry(event="before"))

    locker = sqlite3.connect(path, isolation_level=None, timeout=0)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        assert journal.record(entry(event="locked")) is False
        for _ in range(5):  # within the retry delay: dropped at once, not logged again
            assert journal.record(entry(event="dropped")) is False
    finally:
        locker.execute("COMMIT")
        locker.close()
    warnings = warnings_of(caplog)
    assert len(warnings) == 1
    assert "database is locked" in warnings[0].getMessage()
    assert str(path) in warnings[0].getMessage()

    clock.advance(RETRY_AFTER_S)
    assert journal.record(entry(event="after")) is True
    assert any("working again after 6 failure(s)" in r.getMessage() for r in caplog.records)
    assert [e.event for e in journal.events("t1")] == ["before", "after"]
    assert journal.stats().failed == 6
    journal.close()


def test_parent_that_is_a_file_is_tolerated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file where a directory should be")
    journal = Journal(blocker / "journal.db", retry_after_s=0.0)
    with pytest.raises(OSError):
        journal.open()  # the explicit open raises...
    assert journal.try_open() is False  # ...the tolerant one does not
    for _ in range(3):
        assert journal.record(entry()) is False
    assert len(warnings_of(caplog)) == 1
    assert journal.stats().failed == 4
    journal.close()


def test_file_that_is_not_a_database_is_tolerated(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00garbage" * 512)
    journal = Journal(path)
    assert journal.record(entry()) is False
    assert len(warnings_of(caplog)) == 1
    assert "DatabaseError" in warnings_of(caplog)[0].getMessage()
    journal.close()


def test_vanished_directory_is_recreated(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal(path)
    journal.open()
    assert journal.record(entry(event="first"))
    shutil.rmtree(path.parent)
    assert journal.record(entry(event="second")) is True
    journal.close()
    assert rows(path) == 1
    assert any("removed while open" in r.getMessage() for r in warnings_of(caplog))


def test_bad_entries_are_refused_without_raising(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    circular: dict[str, Any] = {}
    circular["self"] = circular
    with Journal(path) as journal:
        journal.open()
        assert journal.record(entry(event="bad", loop=circular)) is False
        assert journal.record("not an entry") is False  # type: ignore[arg-type]
        assert journal.record(entry(event="good")) is True
        assert [e.event for e in journal.events("t1")] == ["good"]
    assert len(warnings_of(caplog)) == 1


def test_record_after_close_is_dropped_quietly(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = Journal(path)
    journal.open()
    journal.close()
    assert journal.record(entry()) is False
    assert warnings_of(caplog) == []
    assert not journal.is_open


def test_warnings_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="journal.store")
    clock = FakeClock()
    limiter = RateLimitedWarning("thing", interval_s=60.0, every=1000, clock=clock)
    limiter.failure("broken")
    assert len(warnings_of(caplog)) == 1  # the first failure
    for _ in range(999):
        limiter.failure("broken")
    assert len(warnings_of(caplog)) == 1
    limiter.failure("broken")  # the 1000th since the last warning
    assert len(warnings_of(caplog)) == 2
    assert "1000 failure(s) since the last warning, 1001 in all" in caplog.records[-1].getMessage()
    clock.advance(59.0)
    limiter.failure("broken")
    assert len(warnings_of(caplog)) == 2
    clock.advance(1.0)  # a minute after the last warning
    limiter.failure("broken")
    assert len(warnings_of(caplog)) == 3
    limiter.success()
    limiter.success()
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1 and "working again after 1003 failure(s)" in infos[0].getMessage()


def test_prune_deletes_only_what_is_older(path: Path) -> None:
    with Journal(path) as journal:
        for ts in (
            "2026-01-01T00:00:00.000Z",
            "2026-02-01T00:00:00.000Z",
            "2026-03-01T12:00:00.000Z",
        ):
            assert journal.record(entry(ts=ts))
        assert journal.prune("2026-02-01T00:00:00.000Z") == 1
        assert [e.ts for e in journal.tail(10)] == [
            "2026-02-01T00:00:00.000Z",
            "2026-03-01T12:00:00.000Z",
        ]
        journal.close()
        assert journal.prune("2027-01-01T00:00:00.000Z") == 0  # closed: nothing, no raise
