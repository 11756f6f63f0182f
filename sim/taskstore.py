"""The simulated main server's task queue in SQLite: tasks, leases, idempotency keys.

`TaskStore` owns one SQLite file (WAL) and the lease rules of docs/protocol.md: a pulled task
is leased for `lease_s` seconds and invisible to other workers; when the lease runs out the
task is pending again, or `dead` once it has been leased `max_attempts` times.

Threading: ONE connection (`check_same_thread=False`) guarded by one lock. Every method is a
short transaction, so serialising them costs nothing at a simulator's request rate, and it
makes "find the oldest pending task, then lease it" atomic without relying on SQLite's
busy handling between connections. WAL still lets an operator read the file with the
`sqlite3` shell while the server runs. One server per database file.

Time: lease deadlines are values of the injected monotonic `clock` (tests pass a fake one).
They are kept in the `lease_deadline` column but mean nothing to another process, so when a
store is opened every outstanding lease gets a fresh deadline of `clock() + lease_s`: a
restarted server gives each lease a full lease period from its start-up. `created_at` and
`updated_at` are wall-clock ISO-8601 UTC strings for people; no rule depends on them.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from platesift.errors import LeaseLostError, PermanentError

logger = logging.getLogger(__name__)

Task = dict[str, Any]
"""A task as the protocol shows it (see `TASK_FIELDS`)."""

TASK_FIELDS = (
    "task_id",
    "type",
    "state",
    "payload",
    "attempts",
    "outcome",
    "detail",
    "created_at",
    "updated_at",
    "idempotency_key",
)
STATES = ("pending", "leased", "done", "rejected", "dead")
OUTCOMES = ("done", "rejected")
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,  -- creation order, never reused
    task_id         TEXT NOT NULL UNIQUE,
    type            TEXT NOT NULL,
    state           TEXT NOT NULL,
    payload         TEXT NOT NULL,                      -- JSON object
    attempts        INTEGER NOT NULL DEFAULT 0,         -- times leased so far
    lease_id        TEXT UNIQUE,                        -- current (or final) lease
    lease_deadline  REAL,                               -- store clock, rewritten at start-up
    outcome         TEXT,
    detail          TEXT,                               -- JSON (object, string or null)
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,                        -- kept forever
    content_hash    TEXT NOT NULL                       -- sha256 of (type, payload)
);
CREATE INDEX IF NOT EXISTS tasks_pending ON tasks (state, type, seq);
CREATE TABLE IF NOT EXISTS leases (
    lease_id   TEXT PRIMARY KEY,
    task_id    TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    worker     TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    ended_at   TEXT,
    end_reason TEXT                                     -- completed, expired, dead
);
"""


_ENDED = {
    "expired": "expired (the task was put back in the queue)",
    "dead": "expired and the task is dead (too many attempts)",
}


class TaskStoreError(PermanentError):
    """A store operation that cannot succeed as asked."""


class LeaseLost(LeaseLostError):
    """The lease is not (or no longer) the current lease of an unfinished task."""


class IdempotencyConflict(TaskStoreError):
    """An idempotency key was reused for a different task type or payload."""


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(type_: str, payload: Any) -> str:
    """What "the same task" means for idempotency: the same type and the same JSON payload."""
    return hashlib.sha256(_canonical([type_, payload]).encode()).hexdigest()


class TaskStore:
    """Tasks and leases in one SQLite file; every method is thread-safe."""

    def __init__(
        self,
        path: str | Path,
        *,
        lease_s: float = 60.0,
        max_attempts: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not lease_s > 0:
            raise ValueError(f"lease_s must be > 0, not {lease_s!r}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, not {max_attempts!r}")
        self.path = Path(path)
        self.lease_s = float(lease_s)
        self.max_attempts = int(max_attempts)
        self.clock = clock
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a 201 means the task survives a power cut, not only a process crash.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            self._db.close()
            raise TaskStoreError(
                f"{self.path}: task database schema {version}, this server knows {SCHEMA_VERSION}"
            )
        with self._tx():
            for statement in _SCHEMA.split(";\n"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            # Deadlines from a previous process are meaningless: give each lease a full period.
            restarted = self._db.execute(
                "UPDATE tasks SET lease_deadline = ? WHERE state = 'leased'",
                (self.clock() + self.lease_s,),
            ).rowcount
        if restarted:
            logger.info("%d outstanding lease(s) restarted with %.0f s each", restarted, lease_s)

    # --- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> TaskStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One write transaction under the store lock (BEGIN IMMEDIATE .. COMMIT)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- the protocol -------------------------------------------------------------------------

    def submit(
        self, type: str, payload: dict[str, Any], idempotency_key: str | None = None
    ) -> tuple[Task, bool]:
        """Add a pending task; `(task, created)`. A known key returns the original task.

        Raises `IdempotencyConflict` if the key was used for a different type or payload.
        """
        digest = content_hash(type, payload)
        with self._tx():
            if idempotency_key is not None:
                row = self._db.execute(
                    "SELECT * FROM tasks WHERE idempotency_key = ?", (idempotency_key,)
                ).fetchone()
                if row is not None:
                    if row["content_hash"] != digest:
                        raise IdempotencyConflict(
                            f"Idempotency-Key {idempotency_key!r} was used for task "
                            f"{row['task_id']} with a different type or payload"
                        )
                    return _task(row), False
            now = _now_iso()
            while True:
                task_id = "t-" + secrets.token_hex(6)
                try:
                    self._db.execute(
                        "INSERT INTO tasks (task_id, type, state, payload, created_at, "
                        "updated_at, idempotency_key, content_hash) "
                        "VALUES (?, ?, 'pending', ?, ?, ?, ?, ?)",
                        (task_id, type, _canonical(payload), now, now, idempotency_key, digest),
                    )
                    break
                except sqlite3.IntegrityError:  # a 48-bit id collision: draw again
                    continue
            return self._get(task_id), True

    def pull(self, types: Sequence[str], worker: str) -> dict[str, Any] | None:
        """Lease the oldest pending task of one of `types`, or None if there is none.

        Expired leases are handled first, so a task whose lease ran out can be pulled again.
        """
        if not types:
            return None
        with self._tx():
            now = self.clock()
            self._expire(now)
            marks = ",".join("?" * len(types))
            row = self._db.execute(
                f"SELECT * FROM tasks WHERE state = 'pending' AND type IN ({marks}) "
                "ORDER BY seq LIMIT 1",
                tuple(types),
            ).fetchone()
            if row is None:
                return None
            lease_id = "l-" + secrets.token_hex(16)
            attempt = row["attempts"] + 1
            stamp = _now_iso()
            self._db.execute(
                "UPDATE tasks SET state = 'leased', attempts = ?, lease_id = ?, "
                "lease_deadline = ?, updated_at = ? WHERE seq = ?",
                (attempt, lease_id, now + self.lease_s, stamp, row["seq"]),
            )
            self._db.execute(
                "INSERT INTO leases (lease_id, task_id, attempt, worker, granted_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (lease_id, row["task_id"], attempt, worker, stamp),
            )
            return {
                "task_id": row["task_id"],
                "type": row["type"],
                "payload": json.loads(row["payload"]),
                "lease_id": lease_id,
                "attempt": attempt,
                "expires_in_s": self.lease_s,
            }

    def extend(self, lease_id: str) -> float:
        """Restart the lease's period; returns seconds until it expires. Raises `LeaseLost`."""
        with self._tx():
            now = self.clock()
            self._expire(now)
            row = self._current(lease_id)
            if row["state"] != "leased":
                raise LeaseLost(
                    f"lease {lease_id}: task {row['task_id']} is already {row['state']}"
                )
            self._db.execute(
                "UPDATE tasks SET lease_deadline = ?, updated_at = ? WHERE seq = ?",
                (now + self.lease_s, _now_iso(), row["seq"]),
            )
            return self.lease_s

    def complete(self, lease_id: str, outcome: str, detail: Any = None) -> Task:
        """Finish the leased task as `done` or `rejected`; returns the task.

        Idempotent: completing again with the same lease and outcome returns the finished task
        unchanged (the first detail is kept). Raises `LeaseLost` if the lease expired, was
        never granted, or the task was finished with the other outcome.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
        with self._tx():
            now = self.clock()
            self._expire(now)
            row = self._current(lease_id)
            if row["state"] == "leased":
                stamp = _now_iso()
                self._db.execute(
                    "UPDATE tasks SET state = ?, outcome = ?, detail = ?, lease_deadline = NULL, "
                    "updated_at = ? WHERE seq = ?",
                    (outcome, outcome, json.dumps(detail, ensure_ascii=False), stamp, row["seq"]),
                )
                self._end_lease(lease_id, "completed", stamp)
                return self._get(row["task_id"])
            if row["outcome"] == outcome:
                return _task(row)
            raise LeaseLost(
                f"lease {lease_id}: task {row['task_id']} was already completed as {row['outcome']}"
            )

    def expire(self) -> bool:
        """Move leases past their deadline to pending (or dead); True if any became pending."""
        with self._tx():
            return self._expire(self.clock())

    def next_expiry_in(self) -> float | None:
        """Seconds (store clock) until the earliest outstanding lease expires, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(lease_deadline) FROM tasks WHERE state = 'leased'"
            ).fetchone()
            return None if row[0] is None else float(row[0]) - self.clock()

    def get(self, task_id: str) -> Task | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
            return None if row is None else _task(row)

    def list(self, type: str | None = None, state: str | None = None) -> builtins.list[Task]:
        """Tasks in creation order, optionally only of one type and/or state."""
        where: builtins.list[str] = []
        args: builtins.list[str] = []
        if type is not None:
            where.append("type = ?")
            args.append(type)
        if state is not None:
            where.append("state = ?")
            args.append(state)
        sql = "SELECT * FROM tasks" + (" WHERE " + " AND ".join(where) if where else "")
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY seq", args).fetchall()
        return [_task(r) for r in rows]

    def leases(self, task_id: str) -> builtins.list[dict[str, Any]]:
        """Every lease ever granted on a task, oldest first (for operators and tests)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM leases WHERE task_id = ? ORDER BY attempt", (task_id,)
            ).fetchall()
        return [dict(r) for r in rows]

    # --- internals (caller holds the lock, inside a transaction) ------------------------------

    def _expire(self, now: float) -> bool:
        rows = self._db.execute(
            "SELECT seq, task_id, lease_id, attempts FROM tasks "
            "WHERE state = 'leased' AND lease_deadline <= ?",
            (now,),
        ).fetchall()
        became_pending = False
        stamp = _now_iso()
        for row in rows:
            if row["attempts"] >= self.max_attempts:
                self._db.execute(
                    "UPDATE tasks SET state = 'dead', lease_id = NULL, lease_deadline = NULL, "
                    "detail = ?, updated_at = ? WHERE seq = ?",
                    (
                        json.dumps(
                            f"lease expired on attempt {row['attempts']} of "
                            f"{self.max_attempts}: dead-lettered"
                        ),
                        stamp,
                        row["seq"],
                    ),
                )
                self._end_lease(row["lease_id"], "dead", stamp)
                logger.warning("task %s is dead after %d attempts", row["task_id"], row["attempts"])
            else:
                self._db.execute(
                    "UPDATE tasks SET state = 'pending', lease_id = NULL, lease_deadline = NULL, "
                    "updated_at = ? WHERE seq = ?",
                    (stamp, row["seq"]),
                )
                self._end_lease(row["lease_id"], "expired", stamp)
                became_pending = True
                logger.info("lease %s of task %s expired", row["lease_id"], row["task_id"])
        return became_pending

    def _end_lease(self, lease_id: str, reason: str, stamp: str) -> None:
        self._db.execute(
            "UPDATE leases SET ended_at = ?, end_reason = ? WHERE lease_id = ?",
            (stamp, reason, lease_id),
        )

    def _current(self, lease_id: str) -> sqlite3.Row:
        """The task whose current (or final) lease is `lease_id`; else `LeaseLost`."""
        row = self._db.execute("SELECT * FROM tasks WHERE lease_id = ?", (lease_id,)).fetchone()
        if row is not None:
            return row
        old = self._db.execute(
            "SELECT task_id, end_reason FROM leases WHERE lease_id = ?", (lease_id,)
        ).fetchone()
        if old is None:
            raise LeaseLost(f"lease {lease_id} is unknown")
        why = _ENDED.get(old["end_reason"], "is no longer current")
        raise LeaseLost(f"lease {lease_id} of task {old['task_id']} {why}")

    def _get(self, task_id: str) -> Task:
        row = self._db.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        return _task(row)


def _task(row: sqlite3.Row) -> Task:
    task = {k: row[k] for k in TASK_FIELDS}
    task["payload"] = json.loads(row["payload"])
    task["detail"] = None if row["detail"] is None else json.loads(row["detail"])
    return task


__all__ = [
    "OUTCOMES",
    "STATES",
    "TASK_FIELDS",
    "IdempotencyConflict",
    "LeaseLost",
    "Task",
    "TaskStore",
    "TaskStoreError",
    "content_hash",
]
