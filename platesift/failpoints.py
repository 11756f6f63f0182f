"""Failpoints: named places where a test (or the fault harness) can make the service die for
real at an exact moment, e.g. between publishing the heavy task and completing the source task,
or hold it there until the test has done what it came to do.

Configured only through the environment, for example
`PLATESIFT_FAILPOINTS=after_publish=kill` (SIGKILL this process, as a power cut would),
`after_manifest=exit` (exit at once, status 70) or `mid_task=hold:/tmp/held` (create the file
`/tmp/held`, then wait there until it is removed or the task is cancelled). Unset in
production: then `hit()` is a no-op.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

ENV = "PLATESIFT_FAILPOINTS"
NAMES = ("mid_task", "after_manifest", "after_publish", "before_complete")
HOLD_POLL_S = 0.02


def _action(name: str) -> str | None:
    spec = os.environ.get(ENV)
    if not spec:
        return None
    for item in spec.split(","):
        point, _, action = item.partition("=")
        if point.strip() == name:
            return action.strip() or "kill"
    return None


def hit(name: str, cancel: threading.Event | None = None) -> None:
    """Do what the environment says at failpoint `name`: `kill`, `exit` or `hold:FILE`."""
    action = _action(name)
    if action is None:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "exit":
        os._exit(70)
    elif action.startswith("hold:"):
        held = Path(action[len("hold:") :])
        held.touch()  # the test waits for this file: the process is now exactly here
        stop = cancel or threading.Event()
        while held.exists() and not stop.wait(HOLD_POLL_S):
            pass


__all__ = ["ENV", "NAMES", "hit"]
