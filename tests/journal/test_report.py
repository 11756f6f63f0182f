"""The CLI's plain-text rendering of task summaries and journal entries."""

from __future__ import annotations

from pathlib import Path

from journal.entry import JournalEntry, TaskSummary
from journal.report import format_detail, format_events, format_tasks
from journal.store import Journal

TS1 = "2024-05-01T10:00:00.000Z"
TS2 = "2024-05-01T10:00:01.250Z"


def summary(task: str, error: str | None = None, **kw: object) -> TaskSummary:
    fields: dict[str, object] = {
        "task_id": task,
        "attempts": 1,
        "first_ts": TS1,
        "last_ts": TS2,
        "state": "IDLE",
        "outcome": "done",
        "error": error,
    }
    fields.update(kw)
    return TaskSummary(**fields)  # type: ignore[arg-type]


def test_task_table_has_the_key_fields_in_aligned_columns() -> None:
    long_error = "NasUnavailableError: cannot read\n/nas/cam1/a.mp4 " + "x" * 200
    text = format_tasks(
        [
            summary("0f8e2c1a-long-task-id", error=long_error, attempts=3, state="EXTRACTING"),
            summary("t2", outcome=None, state=None),
        ]
    )
    header, first, second = text.splitlines()
    assert header.split() == ["TASK", "ATT", "STATE", "OUTCOME", "LAST", "UPDATE", "ERROR"]
    assert first.startswith("0f8e2c1a-long-task-id")
    for word in ("3", "EXTRACTING", "done", TS2, "NasUnavailableError: cannot read /nas/cam1"):
        assert word in first
    assert first.endswith("…") and len(first) < 200  # the error is cut, on one line
    assert second.split()[:4] == ["t2", "1", "-", "-"]
    # Columns line up: each header starts where its values start.
    for column, value in (("STATE", "EXTRACTING"), ("LAST UPDATE", TS2), ("ERROR", "Nas")):
        assert header.index(column) == first.index(value)
    assert header.index("LAST UPDATE") == second.index(TS2)


def test_empty_task_table_says_so() -> None:
    assert format_tasks([]) == "(no tasks in the journal)"


def test_event_lines_have_the_key_fields() -> None:
    entries = [
        JournalEntry("task-1", 2, "transition", "extract", "PULLED", "EXTRACTING", {}, TS1),
        JournalEntry(
            "task-1", 2, "refused", "publish", "FILTERING", "FILTERING", {"error": "no"}, TS2
        ),
        JournalEntry("task-22", 2, "outcome", "done", "IDLE", "IDLE", {"regions": 4}, TS2),
    ]
    text = format_events(entries)
    lines = text.splitlines()
    assert len(lines) == 3
    first, second, third = lines
    for word in (TS1, "task-1", "#2", "transition", "PULLED", "->", "EXTRACTING", "extract"):
        assert word in first
    assert second.endswith('{"error":"no"}') and "refused" in second
    assert third.endswith('{"regions":4}')
    assert {line.index("->") for line in lines} == {first.index("->")}  # stable widths
    without_task = format_events(entries, with_task=False)
    assert "task-1" not in without_task and without_task.splitlines()[0].startswith(TS1)
    assert format_events(entries, detail_width=5).splitlines()[2].endswith('{"re…')
    assert format_events([]) == "(no journal entries)"


def test_detail_is_compact_one_line_json() -> None:
    assert format_detail({}) == ""
    assert format_detail({"error": "a\nb", "p": Path("/x")}) == '{"error":"a\\nb","p":"/x"}'


def test_report_of_a_real_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with Journal(path) as journal:
        journal.open()
        journal.record(JournalEntry("t9", 1, "transition", "pull", "IDLE", "PULLED"))
        journal.record(
            JournalEntry("t9", 1, "outcome", "rejected", "PULLED", "PULLED", {"error": "bad"})
        )
    with Journal.open_existing(path) as journal:
        table = format_tasks(journal.tasks())
        lines = format_events(journal.events("t9"), with_task=False)
    task, attempts, state, outcome, last_update, error = table.splitlines()[1].split()
    assert (task, attempts, state, outcome, error) == ("t9", "1", "PULLED", "rejected", "bad")
    assert last_update.endswith("Z")
    assert "pull" in lines and '{"error":"bad"}' in lines
