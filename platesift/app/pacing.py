"""How often the service pulls when there is no work: a server (or a proxy in front of it)
that answers a long-poll at once with "no task" must not make the worker spin.

At least MIN_INTERVAL_S passes between the starts of two pulls; after QUICK_EMPTY_LIMIT empty
answers in a row that came back in less than half the wait asked for, the service backs off
as it does after an error, until a pull long-polls again or brings a task.
"""

from __future__ import annotations

MIN_INTERVAL_S = 1.0
QUICK_EMPTY_LIMIT = 3


class PullPacer:
    """Counts quick empty answers and says how long to wait before the next pull."""

    def __init__(
        self, min_interval_s: float = MIN_INTERVAL_S, quick_limit: int = QUICK_EMPTY_LIMIT
    ) -> None:
        self.min_interval_s = min_interval_s
        self.quick_limit = quick_limit
        self.quick_in_a_row = 0

    def after_empty(self, took_s: float, asked_s: float) -> tuple[float, bool]:
        """After a pull that took `took_s` of the `asked_s` long-poll and brought no task:
        (seconds to wait before the next pull, whether to back off as after an error)."""
        if took_s < asked_s / 2:
            self.quick_in_a_row += 1
        else:
            self.quick_in_a_row = 0
        if self.quick_in_a_row >= self.quick_limit:
            return 0.0, True
        return max(0.0, self.min_interval_s - took_s), False

    def after_task(self) -> None:
        self.quick_in_a_row = 0


__all__ = ["MIN_INTERVAL_S", "QUICK_EMPTY_LIMIT", "PullPacer"]
