"""The task states and the only transitions allowed between them."""

from __future__ import annotations

from enum import Enum


class State(str, Enum):
    """Where a task is in its life; the worker holds at most one task at a time."""

    IDLE = "IDLE"  # no task
    PULLED = "PULLED"  # a task is leased and validated, nothing computed yet
    EXTRACTING = "EXTRACTING"  # waiting for the next chunk of decoded frames
    FILTERING = "FILTERING"  # judging the frames of the current chunk
    PROPOSING = "PROPOSING"  # proposing plate regions on the chunk's kept frames
    PUBLISHING = "PUBLISHING"  # committing artifacts to the NAS, then publishing downstream
    COMPLETING = "COMPLETING"  # telling the task source the outcome


WORKING = [s for s in State if s is not State.IDLE]

TRANSITIONS: list[dict[str, object]] = [
    {"trigger": "pull", "source": State.IDLE, "dest": State.PULLED},
    {
        "trigger": "extract",
        "source": [State.PULLED, State.FILTERING, State.PROPOSING],
        "dest": State.EXTRACTING,
    },
    {"trigger": "filter", "source": State.EXTRACTING, "dest": State.FILTERING},
    {"trigger": "propose", "source": State.FILTERING, "dest": State.PROPOSING},
    {"trigger": "publish", "source": State.EXTRACTING, "dest": State.PUBLISHING},
    {"trigger": "complete", "source": State.PUBLISHING, "dest": State.COMPLETING},
    # A permanent failure: the input can never succeed, report it as rejected.
    {
        "trigger": "reject",
        "source": [
            State.PULLED,
            State.EXTRACTING,
            State.FILTERING,
            State.PROPOSING,
            State.PUBLISHING,
        ],
        "dest": State.COMPLETING,
    },
    {"trigger": "finish", "source": State.COMPLETING, "dest": State.IDLE},
    # A transient failure or cancellation: drop the task, it will be pulled again.
    {"trigger": "fail", "source": WORKING, "dest": State.IDLE},
]

__all__ = ["TRANSITIONS", "WORKING", "State"]
