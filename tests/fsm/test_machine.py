"""The task state machine: the allowed path, refused shortcuts, and journaling of both."""

from __future__ import annotations

import pytest
from transitions import MachineError

from fsm.machine import TaskModel, build_machine
from fsm.states import State
from journal.entry import JournalEntry


def make() -> tuple[TaskModel, list[JournalEntry]]:
    entries: list[JournalEntry] = []
    model = TaskModel()
    model.task_id, model.attempt = "t1", 2
    build_machine(model, entries.append)
    return model, entries


def test_full_happy_path_with_chunk_cycles() -> None:
    model, entries = make()
    model.pull(source="a.mp4")
    for _ in range(3):
        model.extract()
        model.filter()
        model.propose()
    model.extract()
    model.filter()  # a chunk with no kept frame skips PROPOSING
    model.extract()
    model.publish()
    model.complete()
    model.finish(outcome="done")
    assert model.state is State.IDLE
    assert all(e.kind == "transition" for e in entries)
    assert [e.dest for e in entries[:2]] == ["PULLED", "EXTRACTING"]
    assert entries[0].detail == {"source": "a.mp4"}
    assert entries[-1].source == "COMPLETING" and entries[-1].dest == "IDLE"
    assert {e.task_id for e in entries} == {"t1"} and {e.attempt for e in entries} == {2}


@pytest.mark.parametrize(
    ("steps", "bad"),
    [
        ([], "extract"),  # cannot work without a task
        ([], "publish"),
        (["pull"], "publish"),  # cannot publish before any frame was extracted
        (["pull", "extract", "filter"], "publish"),  # nor in the middle of a chunk
        (["pull", "extract"], "complete"),  # cannot complete before publishing
        (["pull"], "finish"),
        ([], "fail"),  # nothing to fail in IDLE
    ],
)
def test_shortcuts_are_refused_and_journaled(steps: list[str], bad: str) -> None:
    model, entries = make()
    for step in steps:
        getattr(model, step)()
    before = model.state
    with pytest.raises(MachineError):
        getattr(model, bad)()
    assert model.state is before
    assert entries[-1].kind == "refused"
    assert entries[-1].event == bad
    assert entries[-1].source == entries[-1].dest == before.value
    assert "Can't trigger event" in entries[-1].detail["error"]


@pytest.mark.parametrize(
    "where",
    [
        ["pull"],
        ["pull", "extract"],
        ["pull", "extract", "filter"],
        ["pull", "extract", "filter", "propose"],
        ["pull", "extract", "publish"],
        ["pull", "extract", "publish", "complete"],
    ],
)
def test_fail_returns_to_idle_from_any_working_state(where: list[str]) -> None:
    model, entries = make()
    for step in where:
        getattr(model, step)()
    model.fail(error="NAS gone")
    assert model.state is State.IDLE
    assert entries[-1].event == "fail" and entries[-1].detail == {"error": "NAS gone"}


def test_reject_goes_through_completing() -> None:
    model, _ = make()
    model.pull()
    model.extract()
    model.reject(error="not a video")
    assert model.state is State.COMPLETING
    model.finish(outcome="rejected")
    assert model.state is State.IDLE


def test_no_auto_transitions() -> None:
    model, _ = make()
    assert not hasattr(model, "to_PUBLISHING")


def test_a_failing_journal_never_breaks_a_transition() -> None:
    model = TaskModel()

    def broken(entry: JournalEntry) -> None:
        raise OSError("disk full")

    build_machine(model, broken)
    model.pull()
    model.extract()
    assert model.state is State.EXTRACTING


def test_chunk_cycles_are_journaled_once_per_interval() -> None:
    now = [100.0]
    entries: list[JournalEntry] = []
    model = TaskModel()
    build_machine(model, entries.append, cycle_every_s=5.0, clock=lambda: now[0])
    model.pull()
    for second in range(12):  # one cycle a second, the odd ones without kept frames
        now[0] = 100.0 + second
        model.extract(chunk=second)
        model.filter(chunk=second)
        if second % 2 == 0:
            model.propose(chunk=second)
    model.extract(chunk=12)
    model.publish()
    with pytest.raises(MachineError):
        model.filter()  # refused: always journaled
    journaled = [(e.event, e.detail.get("chunk")) for e in entries if e.kind == "transition"]
    assert journaled == [
        ("pull", None),
        ("extract", 0), ("filter", 0), ("propose", 0),  # the first cycle
        ("extract", 5), ("filter", 5),  # 5 s later: a whole cycle
        ("extract", 10), ("filter", 10), ("propose", 10),
        ("publish", None),  # every other transition, always
    ]  # fmt: skip
    assert entries[-1].kind == "refused" and entries[-1].event == "filter"
