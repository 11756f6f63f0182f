"""The journal's SQLite file: schema, tolerant writes, and the read queries of the CLI.

`Journal` is a plain class (no threads) that owns one `sqlite_utils.Database` connection,
which belongs to the thread that opened it. The write side never raises: a failed write
returns False and is logged as a rate-limited warning, because the journal is diagnostics
only and nothing may fail because of it. The read side (`tasks`, `events`, `tail`) is for
the CLI and raises normally.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlite_utils
from sqlite_utils import Database

from journal.entry import JournalEntry, TaskSummary

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 1.0
"""How long a write waits for a lock held by another connection before it is given up."""

RETRY_AFTER_S = 2.0
"""After a storage failure, writes are dropped without touching the disk for this long, so
a locked or broken journal costs the actor one busy timeout, not one per entry."""

WARN_INTERVAL_S = 60.0
"""After the first failure is logged, at most one warning per this many seconds..."""

WARN_EVERY = 1000
"""...or one every this many failures, whichever comes first."""

MIGRATION_SET = "platesift.journal"
"""Name of the journal's set in sqlite-utils' `_sqlite_migrations` table."""

TABLE = "events"

# sqlite-utils >= 4 has `Migrations`; older releases fall back to PRAGMA user_version.
_Migrations: Any = getattr(sqlite_utils, "Migrations", None)


class JournalMissingError(FileNotFoundError):
    """There is no usable journal at the path the CLI asked to read."""

    def __init__(self, path: str | Path, reason: str = "no such file") -> None:
        super().__init__(f"no journal at {path}: {reason}")
        self.path = Path(path)


@dataclass(frozen=True)
class JournalStats:
    """Counters of one `Journal` since it was created, for status pages and tests."""

    path: str
    is_open: bool
    recorded: int
    failed: int


class RateLimitedWarning:
    """Logs failures of one thing at WARNING without flooding the log.

    The first failure is logged; after that at most one warning per `interval_s`, or one
    per `every` failures, each saying how many failures it stands for. When things work
    again after a warned-about failure, one INFO line says so. Thread-safe.
    """

    def __init__(
        self,
        what: str,
        *,
        interval_s: float = WARN_INTERVAL_S,
        every: int = WARN_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._what = what
        self._interval_s = interval_s
        self._every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._last_warning: float | None = None
        self._since_warning = 0
        self._streak = 0
        self._warned_in_streak = False
        self.total = 0

    def failure(self, reason: str) -> None:
        """Count one failure; log it if the first one or if a warning is due."""
        with self._lock:
            self.total += 1
            self._streak += 1
            self._since_warning += 1
            now = self._clock()
            due = (
                self._last_warning is None
                or now - self._last_warning >= self._interval_s
                or self._since_warning >= self._every
            )
            if not due:
                return
            count, total = self._since_warning, self.total
            self._last_warning = now
            self._since_warning = 0
            self._warned_in_streak = True
        logger.warning(
            "%s: %s (%d failure(s) since the last warning, %d in all); carrying on without it",
            self._what,
            reason,
            count,
            total,
        )

    def success(self) -> None:
        """Note that things work; log once if a failure streak had been warned about."""
        with self._lock:
            if not self._streak:
                return
            lost, warned = self._streak, self._warned_in_streak
            self._streak = 0
            self._warned_in_streak = False
        if warned:
            logger.info("%s: working again after %d failure(s)", self._what, lost)


class Journal:
    """The journal file: open it, `record()` entries (never raises), read it back.

    Use from one thread only: the SQLite connection belongs to the thread that opened it
    (in the worker, the `JournalActor`'s thread). `record()` opens the journal itself if it
    is not open yet or a previous open failed, and recreates the file if it was deleted while
    open. Read-only users (the CLI) use `Journal.open_existing(path)`, which never creates
    the file.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        retry_after_s: float = RETRY_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._retry_after_s = retry_after_s
        self._clock = clock
        self._db: Database | None = None
        self._file_id: tuple[int, int] | None = None
        self._closed = False
        self._retry_at: float | None = None
        self._last_reason = ""
        self._warnings = RateLimitedWarning(f"journal {self.path}", clock=clock)
        self._recorded = 0

    # --- lifecycle ---------------------------------------------------------------------------

    def open(self) -> None:
        """Create the parent directories, the file and the schema as needed, and connect.

        WAL mode is enabled; creating the schema is idempotent, so reopening keeps old rows.
        Raises (`OSError`, `sqlite3.Error`) if the journal cannot be opened; `try_open()` is
        the variant that does not.
        """
        self._closed = False
        if self._db is None:
            self._connect(create=True)

    def try_open(self) -> bool:
        """`open()`, but a failure is counted and logged like a failed `record()`, not raised."""
        try:
            self.open()
        except Exception as exc:
            self._storage_failed("cannot open", exc)
            return False
        return True

    @classmethod
    def open_existing(cls, path: str | Path, *, busy_timeout_s: float = BUSY_TIMEOUT_S) -> Journal:
        """Open an existing journal for reading; never creates a file or a directory.

        Raises `JournalMissingError` (a `FileNotFoundError`) with a one-line message if
        there is no file at `path` or it is not a journal.
        """
        journal = cls(path, busy_timeout_s=busy_timeout_s)
        journal._connect(create=False)
        return journal

    def close(self) -> None:
        """Close the connection (never raises); later `record()` calls return False."""
        self._closed = True
        self._disconnect()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._db is not None

    def stats(self) -> JournalStats:
        return JournalStats(
            path=str(self.path),
            is_open=self.is_open,
            recorded=self._recorded,
            failed=self._warnings.total,
        )

    # --- write side: never raises ------------------------------------------------------------

    def record(self, entry: JournalEntry) -> bool:
        """Append `entry`; True if it is in the file, False (logged, rate-limited) if not.

        Never raises, whatever the entry or the state of the disk. After a storage failure,
        entries are dropped without trying for `retry_after_s`, then the journal is reopened.
        """
        if self._closed:
            logger.debug("journal %s is closed; entry dropped: %r", self.path, entry)
            return False
        try:
            row = _to_row(entry)
        except Exception as exc:
            self._warnings.failure(f"entry not recordable ({_describe(exc)}): {_safe_repr(entry)}")
            return False
        if not self._retry_due():
            self._warnings.failure(f"{self._last_reason}; dropping entries until retry")
            return False
        try:
            db = self._ensure_open()
            db.table(TABLE).insert(row)
        except Exception as exc:
            self._storage_failed("cannot record", exc)
            return False
        self._recorded += 1
        self._warnings.success()
        return True

    def prune(self, before: str) -> int:
        """Delete the entries older than the ISO timestamp `before`; how many went (0 if the
        journal is not usable: like `record`, this never raises)."""
        if self._closed or not self._retry_due():
            return 0
        try:
            db = self._ensure_open()
            with db.conn:
                deleted = db.execute(f"DELETE FROM {TABLE} WHERE ts < ?", [before]).rowcount
        except Exception as exc:
            self._storage_failed("cannot prune", exc)
            return 0
        return int(deleted)

    def _retry_due(self) -> bool:
        """False while a storage failure is being waited out (`retry_after_s`); after that,
        True again: the next write tries the disk."""
        if self._retry_at is not None:
            if self._clock() < self._retry_at:
                return False
            self._retry_at = None
        return True

    # --- read side: for the CLI, raises ----------------------------------------------------

    def tasks(self, limit: int = 50) -> list[TaskSummary]:
        """One summary per task, the most recently active first; `limit <= 0` means all."""
        db = self._require_open()
        rows = list(db.query(_TASKS_SQL, [limit if limit > 0 else -1]))
        return [
            TaskSummary(
                task_id=row["task_id"],
                attempts=row["attempts"],
                first_ts=row["first_ts"],
                last_ts=row["last_ts"],
                state=row["state"],
                outcome=row["outcome"],
                error=self._last_error(db, row["task_id"]),
            )
            for row in rows
        ]

    def events(self, task_id: str) -> list[JournalEntry]:
        """Every entry of one task in the order recorded (empty if the task is unknown)."""
        db = self._require_open()
        sql = f"SELECT * FROM {TABLE} WHERE task_id = ? ORDER BY id"
        return [_from_row(row) for row in db.query(sql, [task_id])]

    def tail(self, n: int = 20) -> list[JournalEntry]:
        """The last `n` entries of all tasks, oldest first."""
        if n <= 0:
            return []
        db = self._require_open()
        sql = f"SELECT * FROM (SELECT * FROM {TABLE} ORDER BY id DESC LIMIT ?) ORDER BY id"
        return [_from_row(row) for row in db.query(sql, [n])]

    # --- internals ---------------------------------------------------------------------------

    def _connect(self, *, create: bool) -> None:
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=self._busy_timeout_s)
        else:
            if not self.path.is_file():
                raise JournalMissingError(self.path)
            # mode=rw: read-write (readers of a WAL file need the -shm), but never create.
            uri = self.path.resolve().as_uri() + "?mode=rw"
            conn = sqlite3.connect(uri, uri=True, timeout=self._busy_timeout_s)
        try:
            db = Database(conn, execute_plugins=False)
            if create:
                db.enable_wal()
                db.execute("PRAGMA synchronous=NORMAL")  # WAL-safe; fewer fsyncs on eMMC
                _migrate(db)
            else:
                try:
                    has_table = db.table(TABLE).exists()
                except sqlite3.DatabaseError as exc:
                    raise JournalMissingError(self.path, str(exc)) from exc
                if not has_table:
                    raise JournalMissingError(self.path, "the file holds no journal")
            file_id = _file_id(self.path)
        except BaseException:
            conn.close()
            raise
        self._db = db
        self._file_id = file_id

    def _ensure_open(self) -> Database:
        if self._db is not None and self._vanished():
            logger.warning("journal %s was removed while open; recreating it", self.path)
            self._disconnect()
        if self._db is None:
            self._connect(create=True)
        assert self._db is not None
        return self._db

    def _vanished(self) -> bool:
        try:
            return _file_id(self.path) != self._file_id
        except OSError:
            return True

    def _disconnect(self) -> None:
        db, self._db, self._file_id = self._db, None, None
        if db is None:
            return
        try:
            db.close()
        except Exception as exc:
            logger.debug("journal %s: error while closing: %s", self.path, _describe(exc))

    def _storage_failed(self, what: str, exc: BaseException) -> None:
        # Drop the connection: the next attempt reopens, which also recovers from a
        # remounted or recreated directory.
        self._disconnect()
        self._last_reason = f"{what} ({_describe(exc)})"
        self._retry_at = self._clock() + self._retry_after_s
        self._warnings.failure(self._last_reason)

    def _require_open(self) -> Database:
        if self._db is None:
            raise RuntimeError(f"journal {self.path} is not open")
        return self._db

    def _last_error(self, db: Database, task_id: str) -> str | None:
        sql = (
            f"SELECT detail FROM {TABLE} WHERE task_id = ? AND kind IN ('error', 'outcome') "
            "ORDER BY id DESC"
        )
        for row in db.query(sql, [task_id]):
            error = _load_detail(row["detail"]).get("error")
            if error is not None and error != "":
                return str(error)
        return None


# --- schema ------------------------------------------------------------------------------------


def m001_events(db: Database) -> None:
    """Schema version 1: the `events` table and its indexes (idempotent)."""
    db.table(TABLE).create(
        {
            "id": int,
            "ts": str,
            "task_id": str,
            "attempt": int,
            "kind": str,
            "event": str,
            "source": str,
            "dest": str,
            "detail": str,
        },
        pk="id",
        not_null={"ts", "task_id", "attempt", "kind", "event", "source", "dest", "detail"},
        if_not_exists=True,
    )
    db.table(TABLE).create_index(["task_id"], if_not_exists=True)
    db.table(TABLE).create_index(["ts"], if_not_exists=True)


_STEPS: tuple[Callable[[Database], None], ...] = (m001_events,)
SCHEMA_VERSION = len(_STEPS)
"""Also stored in `PRAGMA user_version`, for a quick look with the sqlite3 shell."""


def _migrate(db: Database) -> None:
    if _Migrations is not None:
        migrations = _Migrations(MIGRATION_SET)
        for step in _STEPS:
            migrations(name=step.__name__)(step)
        migrations.apply(db)
    else:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for step in _STEPS[version:]:
            step(db)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


# --- rows --------------------------------------------------------------------------------------

_TASKS_SQL = f"""
SELECT
  g.task_id, g.attempts, g.first_ts, g.last_ts,
  (SELECT e.dest FROM {TABLE} e WHERE e.task_id = g.task_id AND e.kind = 'transition'
   ORDER BY e.id DESC LIMIT 1) AS state,
  (SELECT e.event FROM {TABLE} e WHERE e.task_id = g.task_id AND e.kind = 'outcome'
   ORDER BY e.id DESC LIMIT 1) AS outcome
FROM (
  SELECT task_id, MAX(attempt) AS attempts, MIN(ts) AS first_ts, MAX(ts) AS last_ts,
         MAX(id) AS last_id
  FROM {TABLE} GROUP BY task_id ORDER BY last_id DESC LIMIT ?
) AS g
ORDER BY g.last_id DESC
"""


def _to_row(entry: JournalEntry) -> dict[str, Any]:
    detail = json.dumps(dict(entry.detail), default=str, separators=(",", ":"), ensure_ascii=False)
    return {
        "ts": str(entry.ts),
        "task_id": str(entry.task_id),
        "attempt": int(entry.attempt),
        "kind": str(entry.kind),
        "event": str(entry.event),
        "source": str(entry.source),
        "dest": str(entry.dest),
        "detail": detail,
    }


def _from_row(row: Mapping[str, Any]) -> JournalEntry:
    return JournalEntry(
        task_id=row["task_id"],
        attempt=row["attempt"],
        kind=row["kind"],
        event=row["event"],
        source=row["source"],
        dest=row["dest"],
        detail=_load_detail(row["detail"]),
        ts=row["ts"],
    )


def _load_detail(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {"unparsed": text}
    return value if isinstance(value, dict) else {"value": value}


def _file_id(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _safe_repr(obj: object, limit: int = 200) -> str:
    try:
        text = repr(obj)
    except Exception as exc:
        text = f"<unrepresentable {type(obj).__name__}: {_describe(exc)}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


__all__ = [
    "BUSY_TIMEOUT_S",
    "MIGRATION_SET",
    "RETRY_AFTER_S",
    "SCHEMA_VERSION",
    "WARN_EVERY",
    "WARN_INTERVAL_S",
    "Journal",
    "JournalMissingError",
    "JournalStats",
    "RateLimitedWarning",
]
