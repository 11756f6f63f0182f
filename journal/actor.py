"""The journal inside the worker: the actor that owns the SQLite connection, and the sinks.

Everything that journals depends only on `JournalSink` (one method, `record`, which never
blocks and never raises). In the worker the sink is `journal_sink(actor_ref)`, which sends
each entry to the `JournalActor` with tell semantics; in tests it is a `MemoryJournal`;
`NullJournal` records nothing.

Sending to the actor, the pykka way: entries travel *up* the stack (from the task actors to
the journal), so they are never `ask`ed: `proxy.record.defer(entry)` queues the call with
`tell` semantics, no future is created and the caller never waits. `proxy.record(entry)`
returns a future of whether the entry landed, for tests and tools that need to know. The
actor's `record` cannot raise, so no entry can kill it; `actor_ref.stop(block=True)`
processes every entry sent before it, then closes the file.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Protocol

import pykka
from pykka.typing import ActorMemberMixin, proxy_method

from journal.entry import JournalEntry, now_iso
from journal.store import Journal, JournalStats, RateLimitedWarning
from platesift.priority import lower_this_thread

logger = logging.getLogger(__name__)


class JournalSink(Protocol):
    """Where components send journal entries. `record` must not block and must not raise."""

    def record(self, entry: JournalEntry) -> None: ...


class NullJournal:
    """A sink that records nothing."""

    def record(self, entry: JournalEntry) -> None:
        """Discard `entry`."""


class MemoryJournal:
    """A sink that keeps entries in memory, for tests of the components that journal.

    Thread-safe; `wait_for` lets a test wait (with a timeout, never a sleep) until entries
    recorded from another thread satisfy a condition.
    """

    def __init__(self) -> None:
        self._entries: list[JournalEntry] = []
        self._changed = threading.Condition()

    def record(self, entry: JournalEntry) -> None:
        """Append `entry` and wake up waiters."""
        with self._changed:
            self._entries.append(entry)
            self._changed.notify_all()

    @property
    def entries(self) -> list[JournalEntry]:
        """A copy of every entry recorded so far, in order."""
        with self._changed:
            return list(self._entries)

    def of_task(self, task_id: str) -> list[JournalEntry]:
        """The entries of one task, in order."""
        return [e for e in self.entries if e.task_id == task_id]

    def wait_for(self, predicate: Callable[[Sequence[JournalEntry]], bool], timeout: float) -> bool:
        """Wait until `predicate(entries)` is true; False if `timeout` seconds pass first."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self._entries), timeout)

    def clear(self) -> None:
        """Forget every entry."""
        with self._changed:
            self._entries.clear()


class JournalActor(pykka.ThreadingActor):
    """Owns a `Journal`: opens it on its own thread, records what it is sent, closes it.

    A journal that cannot be opened does not stop the actor: the failure is logged and
    each `record` tries again (after the journal's retry delay).
    """

    def __init__(self, journal: Journal, nice: int = 0) -> None:
        super().__init__()
        self._journal = journal  # private: not exposed through proxies
        self._nice = nice

    def on_start(self) -> None:
        lower_this_thread(self._nice)  # diagnostics must never slow decoding
        self._journal.try_open()

    def on_stop(self) -> None:
        self._journal.close()

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._journal.close()

    def record(self, entry: JournalEntry) -> bool:
        """Append `entry` to the journal; True if it landed. Never raises."""
        try:
            return self._journal.record(entry)
        except Exception:  # Journal.record does not raise; this is the last line of defence
            logger.exception("journal actor: unexpected error recording an entry")
            return False

    def prune(self, keep_days: float) -> int:
        """Delete the entries older than `keep_days` days (none when it is 0 or less); how
        many went. Never raises."""
        if keep_days <= 0:
            return 0
        try:
            return self._journal.prune(now_iso(days_ago=keep_days))
        except Exception:  # Journal.prune does not raise; this is the last line of defence
            logger.exception("journal actor: unexpected error pruning")
            return 0

    def stats(self) -> JournalStats:
        """The journal's counters (entries recorded and failed, whether it is open)."""
        return self._journal.stats()


class JournalActorProxy(ActorMemberMixin, pykka.ActorProxy[JournalActor]):
    """Typed proxy of `JournalActor`: `cast(JournalActorProxy, actor_ref.proxy())`."""

    record = proxy_method(JournalActor.record)
    prune = proxy_method(JournalActor.prune)
    stats = proxy_method(JournalActor.stats)


class ActorJournalSink:
    """A `JournalSink` that sends entries to a `JournalActor` without waiting.

    If the actor is not running (stopped too early, or crashed), entries are dropped and a
    rate-limited warning says so; nothing is raised into the caller.
    """

    def __init__(self, actor_ref: pykka.ActorRef[JournalActor]) -> None:
        self._actor_ref = actor_ref
        self._proxy: Any = None
        self._warnings = RateLimitedWarning(f"journal sink for {actor_ref}")

    def record(self, entry: JournalEntry) -> None:
        """Queue `entry` for the actor (`proxy.record.defer`); never blocks, never raises."""
        try:
            if self._proxy is None:
                self._proxy = self._actor_ref.proxy()
            self._proxy.record.defer(entry)
        except pykka.ActorDeadError:
            self._warnings.failure("the journal actor is not running; entry dropped")
        except Exception as exc:
            self._warnings.failure(f"entry dropped ({type(exc).__name__}: {exc})")
        else:
            self._warnings.success()


def journal_sink(actor_ref: pykka.ActorRef[JournalActor]) -> JournalSink:
    """A sink whose `record` sends to the journal actor fire-and-forget (see the module doc)."""
    return ActorJournalSink(actor_ref)


__all__ = [
    "ActorJournalSink",
    "JournalActor",
    "JournalActorProxy",
    "JournalSink",
    "MemoryJournal",
    "NullJournal",
    "journal_sink",
]
