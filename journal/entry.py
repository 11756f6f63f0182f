"""The journal's record types: one `JournalEntry` per event, one `TaskSummary` per task.

Plain frozen dataclasses with no I/O, so the state machine can build entries without
importing SQLite, and the CLI can format them without a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

KINDS = ("transition", "refused", "error", "outcome", "note")
"""The values `JournalEntry.kind` takes (not enforced: the journal records whatever it gets)."""


def now_iso(days_ago: float = 0.0) -> str:
    """The current time (or `days_ago` days before it) as ISO-8601 UTC with milliseconds, e.g.
    `2024-05-01T12:00:00.123Z`.

    The format sorts lexicographically in time order, so the `ts` column can be compared as text.
    """
    when = datetime.now(timezone.utc) - timedelta(days=days_ago)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class JournalEntry:
    """One event in the life of one task attempt.

    `kind` is one of `KINDS`: a `transition` that happened, a trigger `refused` in the
    current state (then `dest == source`), an `error` raised during a transition, the task's
    `outcome`, or a free-form `note`. `event` is the trigger or outcome name. `detail` holds
    anything else; it should be JSON-serialisable (values that are not are stored as their
    `str()`).
    """

    task_id: str
    attempt: int
    kind: str
    event: str
    source: str
    dest: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    ts: str = field(default_factory=now_iso)


@dataclass(frozen=True)
class TaskSummary:
    """What the journal knows about one task, for `platesift journal tasks`.

    `attempts` is the highest attempt number seen; `state` the destination of the last
    transition; `outcome` the event of the last outcome entry; `error` the last error message
    recorded (from an `error` entry or an outcome carrying `detail["error"]`).
    """

    task_id: str
    attempts: int
    first_ts: str
    last_ts: str
    state: str | None
    outcome: str | None
    error: str | None


__all__ = ["KINDS", "JournalEntry", "TaskSummary", "now_iso"]
