"""Starts the actors of one worker in dependency order, checks each answers, runs tasks, and
stops them in reverse order, whatever happens (the Mopidy start/stop discipline).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import cv2
import pykka

from actors.coral import CoralActor, CoralProxy
from actors.decoder import DecoderActor, DecoderProxy
from actors.messages import TaskOutcome, TaskSpec
from actors.motion import MotionActor, MotionProxy
from actors.nas import NASActor, NasProxy
from actors.task import Progress, TaskActor, TaskProxy, TaskRunner, TaskSink
from journal import Journal, JournalActor, JournalActorProxy, JournalEntry, journal_sink
from models.proposer import Proposer
from models.registry import make_proposer
from platesift.config import Settings
from platesift.errors import PlatesiftError, TransientError

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 30.0
TASK_TIMEOUT_S = 7 * 24 * 3600.0


class Worker:
    """One running set of actors: Journal, NAS, Decoder, Motion, Coral and Task."""

    def __init__(
        self,
        settings: Settings,
        *,
        proposer_factory: Callable[[], Proposer] | None = None,
        nas_root: Path | None = None,
        scratch: Path | None = None,
        wait_for_proposer: bool = False,
    ) -> None:
        self.settings = settings
        self._scratch = scratch or settings.scratch_path()
        segment = _segment_name(self._scratch)
        self._proposer_factory = proposer_factory or (
            lambda: make_proposer(settings.proposer, segment)
        )
        self._nas_root = nas_root
        self._wait_for_proposer = wait_for_proposer
        self._coral: CoralProxy | None = None
        self._refs: list[pykka.ActorRef[Any]] = []
        self.runner: TaskRunner | None = None
        self._task: TaskProxy | None = None
        self._journal: JournalActorProxy | None = None

    def start(self) -> None:
        s = self.settings
        # Our images are small; parallelism comes from the actors and FFmpeg's frame threads.
        # OpenCV's own thread pool would only fight FFmpeg for the cores (measured: -11% fps).
        cv2.setNumThreads(s.resources.opencv_threads)
        try:
            journal = self._start(
                JournalActor.start(Journal(s.journal_path()), s.resources.filter_nice)
            )
            self._journal = cast(JournalActorProxy, journal.proxy())
            self._prune_journal()
            # The service's own Nas checks the sentinel; the commits go through this one, so
            # it must check it too (without it an unmounted NAS took the artifacts).
            sentinel = s.paths.nas_sentinel or None
            nas = cast(
                NasProxy, self._start(NASActor.start(self._nas_root, sentinel=sentinel)).proxy()
            )
            decoder = cast(
                DecoderProxy, self._start(DecoderActor.start(s.analysis, s.resources)).proxy()
            )
            motion = cast(
                MotionProxy,
                self._start(
                    MotionActor.start(s.analysis, s.motion, s.quality, s.resources.filter_nice)
                ).proxy(),
            )
            coral = cast(
                CoralProxy,
                self._start(
                    CoralActor.start(self._proposer_factory, s.proposer.max_regions)
                ).proxy(),
            )
            self._coral = coral
            try:
                coral.load().get(timeout=START_TIMEOUT_S)  # backend errors surface here, clearly
            except TransientError as exc:
                if not self._wait_for_proposer:
                    raise
                logger.warning("%s; waiting for it before pulling tasks", exc.message)
            scratch = self._scratch
            self.runner = TaskRunner(
                s,
                decoder=decoder,
                motion=motion,
                coral=coral,
                nas=nas,
                record=journal_sink(journal).record,
                scratch=scratch,
            )
            self._task = cast(TaskProxy, self._start(TaskActor.start(self.runner)).proxy())
        except BaseException:
            self.stop()
            raise

    def _start(self, ref: pykka.ActorRef[Any]) -> pykka.ActorRef[Any]:
        """`ref`, once its actor has answered a message (reading a field through the proxy is
        a round trip through its inbox): a start that hangs or fails surfaces here."""
        self._refs.append(ref)
        ref.proxy().actor_urn.get(timeout=START_TIMEOUT_S)
        return ref

    def run(
        self, spec: TaskSpec, sink: TaskSink | None = None, progress: Progress | None = None
    ) -> TaskOutcome:
        if self._task is None:
            raise RuntimeError("Worker.run() before start()")
        outcome: TaskOutcome = self._task.run(spec, sink, progress).get(timeout=TASK_TIMEOUT_S)
        self._prune_journal()
        return outcome

    def _prune_journal(self) -> None:
        """Let the journal forget what is older than `journal.keep_days` (without waiting)."""
        if self._journal is not None:
            try:
                self._journal.prune(self.settings.journal.keep_days)  # the future is not awaited
            except pykka.ActorDeadError:  # the journal is for diagnostics: never fail for it
                logger.warning("journal actor is not running; nothing pruned")

    def refuse(
        self, task_id: str, attempt: int, exc: PlatesiftError, sink: TaskSink | None = None
    ) -> TaskOutcome:
        """Reject, through the state machine and the journal, a task unusable from the start."""
        if self._task is None:
            raise RuntimeError("Worker.refuse() before start()")
        outcome: TaskOutcome = self._task.refuse(task_id, attempt, exc, sink).get(
            timeout=START_TIMEOUT_S
        )
        return outcome

    def record(self, entry: JournalEntry) -> None:
        """Journal a service-level event (fire-and-forget; never raises)."""
        if self.runner is not None:
            self.runner.record(entry)

    def ensure_proposer(self) -> None:
        """Reopen the proposer's device if it is down; ProposerUnavailableError while it is."""
        if self._coral is None:
            raise RuntimeError("Worker.ensure_proposer() before start()")
        self._coral.ensure_ready().get(timeout=START_TIMEOUT_S)

    def cancel(self) -> None:
        """Ask the running task to stop at the next chunk (it fails as transient)."""
        if self.runner is not None:
            self.runner.cancel.set()

    def stop(self) -> None:
        for ref in reversed(self._refs):
            try:
                ref.stop(block=True, timeout=START_TIMEOUT_S)
            except pykka.Timeout:
                logger.error("actor %s did not stop in time", ref)
            except Exception:
                logger.exception("stopping actor %s failed", ref)
        self._refs.clear()
        self._task = None
        self._coral = None
        self._journal = None

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _segment_name(scratch: Path) -> str:
    """The shared-memory name of this worker's inference process: derived from the scratch
    directory, which the scratch lock gives to one process, so a killed worker's segment can be
    recognised and removed by the next one."""
    digest = hashlib.sha256(str(scratch.resolve()).encode()).hexdigest()[:16]
    return f"platesift-{digest}"


__all__ = ["Worker"]
