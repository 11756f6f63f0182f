"""Plain-text rendering of the journal for `platesift journal tasks | show TASK | tail`, and
the same as JSON Lines (`--json`).

Columns have fixed widths (a value longer than its column pushes the rest of that line
right rather than being cut, except errors and details, which may be long); the task column
is as wide as the longest task id shown, because ids are copied from it. No dependencies.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from journal.entry import JournalEntry, TaskSummary

ERROR_WIDTH = 60
"""Errors in the task table are cut to this many characters (`show TASK` has them in full)."""

_ATTEMPTS = 3
_STATE = 10
_OUTCOME = 9
_TS = 24
_KIND = 10
_EVENT = 9
_MISSING = "-"


def format_tasks(tasks: Sequence[TaskSummary], *, error_width: int = ERROR_WIDTH) -> str:
    """A table of task summaries: task, attempts, last state, outcome, last update, error."""
    if not tasks:
        return "(no tasks in the journal)"
    task_w = max(len("TASK"), *(len(t.task_id) for t in tasks))
    header = _row(task_w, "TASK", "ATT", "STATE", "OUTCOME", "LAST UPDATE", "ERROR")
    lines = [header]
    for t in tasks:
        lines.append(
            _row(
                task_w,
                t.task_id,
                str(t.attempts),
                t.state or _MISSING,
                t.outcome or _MISSING,
                t.last_ts,
                _truncate(_one_line(t.error), error_width) if t.error else _MISSING,
            )
        )
    return "\n".join(lines)


def json_lines(items: Sequence[JournalEntry | TaskSummary]) -> str:
    """One JSON object per entry or task summary (`--json`), every field by its name, for
    scripts and `jq`; nothing when there is nothing (no placeholder line)."""
    lines = []
    for item in items:
        record = {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
        if "detail" in record:
            record["detail"] = dict(record["detail"])
        lines.append(json.dumps(record, sort_keys=True, default=str))
    return "\n".join(lines)


def format_events(
    entries: Sequence[JournalEntry],
    *,
    with_task: bool = True,
    detail_width: int | None = None,
) -> str:
    """One line per entry: ts, task, attempt, kind, source -> dest, event, compact detail.

    Used for both `show TASK` (pass `with_task=False` to drop the task column) and `tail`.
    `detail_width` cuts long details; by default they are shown in full.
    """
    if not entries:
        return "(no journal entries)"
    task_w = max(len(e.task_id) for e in entries)
    lines = []
    for e in entries:
        fields = [f"{e.ts:<{_TS}}"]
        if with_task:
            fields.append(f"{e.task_id:<{task_w}}")
        fields += [
            f"#{e.attempt:<{_ATTEMPTS - 1}}",
            f"{e.kind:<{_KIND}}",
            f"{e.source:<{_STATE}} -> {e.dest:<{_STATE}}",
            f"{e.event:<{_EVENT}}",
        ]
        detail = format_detail(e.detail)
        if detail_width is not None:
            detail = _truncate(detail, detail_width)
        fields.append(detail)
        lines.append("  ".join(fields).rstrip())
    return "\n".join(lines)


def format_detail(detail: Mapping[str, Any]) -> str:
    """`detail` as compact one-line JSON; empty string for an empty detail."""
    if not detail:
        return ""
    return json.dumps(dict(detail), separators=(",", ":"), ensure_ascii=False, default=str)


def _row(
    task_w: int,
    task: str,
    attempts: str,
    state: str,
    outcome: str,
    last_ts: str,
    error: str,
) -> str:
    cells = [
        f"{task:<{task_w}}",
        f"{attempts:>{_ATTEMPTS}}",
        f"{state:<{_STATE}}",
        f"{outcome:<{_OUTCOME}}",
        f"{last_ts:<{_TS}}",
        error,
    ]
    return "  ".join(cells).rstrip()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _truncate(text: str, width: int) -> str:
    if width <= 0 or len(text) <= width:
        return text
    return text[: width - 1] + "…"


__all__ = ["ERROR_WIDTH", "format_detail", "format_events", "format_tasks", "json_lines"]
