"""Failpoints: named places where a test (or the fault harness) can make the service die for
real at an exact moment, e.g. between publishing the heavy task and completing the source task.

Configured only through the environment, for example
`PLATESIFT_FAILPOINTS=after_publish=kill` (SIGKILL this process, as a power cut would) or
`after_manifest=exit` (exit at once, status 70). Unset in production: then `hit()` is a no-op.
"""

from __future__ import annotations

import os
import signal

ENV = "PLATESIFT_FAILPOINTS"
NAMES = ("after_manifest", "after_publish", "before_complete")


def hit(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    for item in spec.split(","):
        point, _, action = item.partition("=")
        if point.strip() != name:
            continue
        action = action.strip() or "kill"
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "exit":
            os._exit(70)


__all__ = ["ENV", "NAMES", "hit"]
