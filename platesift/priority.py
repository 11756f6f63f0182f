"""Thread priorities: optionally, the filtering threads give way to decoding.

Decoding is the one cost nobody can avoid, and it sets the pace. With `resources.filter_nice`
above 0, the threads that judge, bookkeep and journal (frame filter, task, journal) get a
higher nice value, so on a busy CPU they run on the time decoding leaves idle instead of
taking it from the decoder's threads; they never starve, because the decoder waits for them
once its few chunks ahead are done, but they do lag, and a proposer waiting on their verdicts
waits with them. It is off by default: with 8 decoding threads on 2 cores, lowering the filter
measured slower, not faster (see the README's Performance section). A per-thread nice value
is Linux's; elsewhere, or when the kernel refuses, nothing changes.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

logger = logging.getLogger(__name__)

MAX_NICE = 19


def lower_this_thread(nice: int) -> int | None:
    """Raise the calling thread's nice value by `nice` (capped at 19); the new value, or
    None when nothing changed (`nice` <= 0, not Linux, or refused)."""
    if nice <= 0 or not sys.platform.startswith("linux"):
        return None
    tid = threading.get_native_id()
    try:
        target = min(MAX_NICE, os.getpriority(os.PRIO_PROCESS, tid) + nice)
        os.setpriority(os.PRIO_PROCESS, tid, target)
    except OSError as exc:
        logger.debug("could not lower the priority of thread %d: %s", tid, exc)
        return None
    return target


__all__ = ["lower_this_thread"]
