"""Builds the task state machine on a plain model and journals its events from one hook.

`finalize_event` sees successful transitions, refused ones (a trigger not allowed in the
current state) and errors alike; whatever the journal does, it cannot break a transition.

Every event is journaled except most chunk cycles: EXTRACTING -> FILTERING -> PROPOSING
repeats for every few frames (about 600 times per minute of 1080p video, which would be close
to a million journal rows a day from one camera). The first cycle of a task is journaled, then
at most one cycle per `cycle_every_s`; refusals, errors and every other transition always.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from transitions import EventData, Machine, MachineError

from fsm.states import TRANSITIONS, State
from journal.entry import JournalEntry

logger = logging.getLogger(__name__)


class TaskModel:
    """The object the machine drives: which task, which attempt, and its current state."""

    state: State

    def __init__(self) -> None:
        self.task_id = ""
        self.attempt = 0

    if TYPE_CHECKING:  # bound at runtime by `transitions`; declared for type checkers only

        def pull(self, **detail: Any) -> bool: ...
        def extract(self, **detail: Any) -> bool: ...
        def filter(self, **detail: Any) -> bool: ...
        def propose(self, **detail: Any) -> bool: ...
        def publish(self, **detail: Any) -> bool: ...
        def complete(self, **detail: Any) -> bool: ...
        def reject(self, **detail: Any) -> bool: ...
        def finish(self, **detail: Any) -> bool: ...
        def fail(self, **detail: Any) -> bool: ...


Recorder = Callable[[JournalEntry], None]


CYCLE_EVENTS = frozenset({"extract", "filter", "propose"})


class CycleSampler:
    """Decides which chunk cycles are journaled: the first of a task, then one cycle (all its
    transitions) per `every_s` seconds; `every_s` <= 0 journals every cycle."""

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self.clock = clock
        self._last_start: float | None = None
        self._journaling = True

    def admit(self, event: str, source: str) -> bool:
        """Whether a successful transition `event` (from state `source`) is journaled."""
        if event not in CYCLE_EVENTS:
            self._journaling = True
            return True
        if event == "extract":  # a cycle starts
            now = self.clock()
            first = source == State.PULLED.value
            due = self._last_start is None or now - self._last_start >= self.every_s
            self._journaling = first or self.every_s <= 0 or due
            if self._journaling:
                self._last_start = now
        return self._journaling


def build_machine(
    model: TaskModel,
    record: Recorder,
    cycle_every_s: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
) -> Machine:
    """Attach the task state machine to `model`; its events go to `record` (chunk cycles
    sampled, see `CycleSampler`)."""
    sampler = CycleSampler(cycle_every_s, clock)

    def journal(event: EventData) -> None:
        error = event.error
        # After a transition `event.state` is the new state; the transition knows the old one.
        source = _name(event.transition.source if event.transition else event.state)
        if error is None:
            kind, dest = "transition", _name(model.state)
        elif isinstance(error, MachineError):
            kind, dest = "refused", source
        else:
            kind, dest = "error", _name(model.state)
        name = event.event.name if event.event else ""
        if error is None and not sampler.admit(name, source):
            return
        detail = dict(event.kwargs)
        if error is not None:
            detail["error"] = str(getattr(error, "value", error))
        record(
            JournalEntry(
                task_id=model.task_id,
                attempt=model.attempt,
                kind=kind,
                event=name,
                source=source,
                dest=dest,
                detail=detail,
            )
        )

    return Machine(
        model=model,
        states=State,
        transitions=TRANSITIONS,
        initial=State.IDLE,
        auto_transitions=False,
        send_event=True,
        finalize_event=journal,
        model_override=False,
    )


def _name(state: object) -> str:
    if isinstance(state, State):
        return state.value
    name = getattr(state, "name", state)
    return str(getattr(name, "value", name))


__all__ = ["CYCLE_EVENTS", "CycleSampler", "Recorder", "TaskModel", "build_machine"]
