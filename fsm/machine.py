"""Builds the task state machine on a plain model and journals every event from one hook.

`finalize_event` sees successful transitions, refused ones (a trigger not allowed in the
current state) and errors alike; whatever the journal does, it cannot break a transition.
"""

from __future__ import annotations

import logging
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


def build_machine(model: TaskModel, record: Recorder) -> Machine:
    """Attach the task state machine to `model`; every event goes to `record`."""

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
        detail = dict(event.kwargs)
        if error is not None:
            detail["error"] = str(getattr(error, "value", error))
        record(
            JournalEntry(
                task_id=model.task_id,
                attempt=model.attempt,
                kind=kind,
                event=event.event.name if event.event else "",
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


__all__ = ["Recorder", "TaskModel", "build_machine"]
