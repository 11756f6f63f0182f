"""`platesift serve`: the long-running worker on the Jetson.

Boot: wipe the (marked, local) scratch directory, start the actors, tell systemd we are ready.
Loop: if the NAS is reachable, pull one task with a long-poll (exponential backoff with full
jitter while the server is unreachable), turn it into a validated task spec (or reject it
with a clear reason), run it with a heartbeat that extends the lease at a third of its length,
publish the heavy task with an idempotency key from the source task and its manifest, and only
then complete the source task. A lost lease cancels the work at once: nothing is published or
completed, and whoever holds the task now recomputes the same bytes.

SIGTERM/SIGINT stop pulling and cancel the current task (left to lease expiry); exit 0.
"""

from __future__ import annotations

import errno
import json
import logging
import random
import re
import signal
import socket
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from actors.messages import TaskOutcome, TaskSpec
from actors.nas import Nas
from journal import JournalEntry
from platesift import failpoints
from platesift.app import systemd
from platesift.app.client import Lease, TaskClient
from platesift.app.pacing import PullPacer
from platesift.app.worker import Worker
from platesift.artifacts import idempotency_key
from platesift.config import Settings, with_task_params
from platesift.errors import (
    ConfigError,
    FatalError,
    InvalidInputError,
    LeaseLostError,
    NasUnavailableError,
    PathNotAllowedError,
    PermanentError,
    PlatesiftError,
    ProtocolError,
    ServerUnavailableError,
    TransientError,
)
from platesift.scratch import ScratchLock, prepare_scratch, wipe_scratch

logger = logging.getLogger(__name__)

BACKOFF_BASE_S = 0.5
SIDECAR_MAX_BYTES = 1024 * 1024
_TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

EXIT_OK, EXIT_CONFIG = 0, 2


class _Interrupted(BaseException):
    """Raised by the signal handler to abort a blocking long-poll. A BaseException, so that
    no `except Exception` on the way (the HTTP client's) can mistake it for a server fault."""


class ServerSink:
    """Publishes and completes through the server, and refuses to once the lease is lost."""

    def __init__(self, client: TaskClient, lease: Lease, lost: threading.Event) -> None:
        self.client = client
        self.lease = lease
        self.lost = lost
        self.heavy_task_id: str | None = None

    def publish(self, heavy_task: dict[str, Any]) -> None:
        self._check()
        failpoints.hit("after_manifest")
        payload = heavy_task["payload"]
        key = idempotency_key(self.lease.task_id, str(payload["manifest_sha256"]))
        answer = self.client.publish(str(heavy_task["type"]), payload, key)
        self.heavy_task_id = str(answer.get("task_id"))
        failpoints.hit("after_publish")

    def complete(self, outcome: str, detail: dict[str, Any]) -> None:
        self._check()
        failpoints.hit("before_complete")
        if self.heavy_task_id:
            detail = {**detail, "heavy_task_id": self.heavy_task_id}
        self.client.complete(self.lease.lease_id, outcome, detail)

    def _check(self) -> None:
        if self.lost.is_set():
            raise LeaseLostError(f"lease of task {self.lease.task_id} was lost")


class Heartbeat(threading.Thread):
    """Extends the lease at about a third of its length; on loss, cancels the task."""

    def __init__(self, client: TaskClient, lease: Lease, on_lost: Any, on_beat: Any) -> None:
        super().__init__(name=f"heartbeat-{lease.task_id}", daemon=True)
        self.client = client
        self.lease = lease
        self.on_lost = on_lost
        self.on_beat = on_beat
        self.stopped = threading.Event()
        self.lost = threading.Event()

    def run(self) -> None:
        interval = max(0.05, self.lease.expires_in_s / 3)
        deadline = time.monotonic() + self.lease.expires_in_s
        while not self.stopped.wait(interval):
            try:
                expires = self.client.extend(self.lease.lease_id)
            except LeaseLostError as exc:
                self._lose(exc.message)
                return
            except PlatesiftError as exc:
                if time.monotonic() >= deadline:
                    self._lose(f"could not extend the lease in time: {exc.message}")
                    return
                logger.warning("heartbeat of %s failed: %s", self.lease.task_id, exc.message)
                interval = max(0.05, min(interval, (deadline - time.monotonic()) / 3))
                continue
            deadline = time.monotonic() + expires
            interval = max(0.05, expires / 3)
            self.on_beat()

    def _lose(self, why: str) -> None:
        self.lost.set()
        self.on_lost(why)

    def stop(self) -> None:
        self.stopped.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=5)


class Service:
    """The pull loop around one `Worker`."""

    def __init__(
        self,
        settings: Settings,
        *,
        once: bool = False,
        drain: bool = False,
        install_signals: bool = True,
    ) -> None:
        self.settings = settings
        self.once = once
        self.drain = drain
        self.install_signals = install_signals
        self.stopping = threading.Event()
        self.worker_id = settings.server.worker_id or socket.gethostname()
        self.last_healthy = time.monotonic()
        self._in_pull = False
        self._pacer = PullPacer()
        self._worker: Worker | None = None
        self._failures = 0

    # --- lifecycle --------------------------------------------------------------------------

    def run(self) -> int:
        s = self.settings
        if not s.paths.nas_root:
            raise ConfigError("paths.nas_root is not set: the service needs the NAS mount point")
        nas_root = Path(s.paths.nas_root)
        scratch = prepare_scratch(s.scratch_path(), nas_root, wipe=False)
        lock = ScratchLock(scratch).acquire()  # before the wipe: never wipe a live service's
        wipe_scratch(scratch)
        logger.info("scratch %s wiped", scratch)
        self.nas = Nas(nas_root, sentinel=s.paths.nas_sentinel or None)
        self.client = TaskClient(s.server, self.worker_id)
        self.beat_client = TaskClient(s.server, self.worker_id)
        previous = self._signals()
        watchdog = self._start_watchdog()
        try:
            with Worker(s, nas_root=nas_root, scratch=scratch, wait_for_proposer=True) as worker:
                self._worker = worker
                self._note("boot", {"worker": self.worker_id, "scratch": str(scratch)})
                systemd.notify("READY=1\nSTATUS=pulling tasks")
                return self._loop()
        finally:
            self.stopping.set()
            systemd.notify("STOPPING=1")
            if watchdog is not None:
                watchdog.join(timeout=2)
            self._restore(previous)
            self.client.close()
            self.beat_client.close()
            self._worker = None
            lock.release()

    def stop(self) -> None:
        self.stopping.set()
        if self._worker is not None:
            self._worker.cancel()

    def _loop(self) -> int:
        s = self.settings
        while not self.stopping.is_set():
            self.last_healthy = time.monotonic()
            try:
                self.nas.check_root()
                assert self._worker is not None
                self._worker.ensure_proposer()  # no pull while the Coral is down
                wait_s = min(s.server.wait_s, 1.0) if self.drain else s.server.wait_s
                self._in_pull = True
                started = time.monotonic()
                try:
                    lease = self.client.pull([s.server.task_type], wait_s)
                finally:
                    self._in_pull = False
            except _Interrupted:
                break
            except FatalError as exc:
                self._note("fatal", {"error": exc.message, "kind": exc.kind}, kind="error")
                logger.error("%s; stopping", exc.message)
                return EXIT_CONFIG
            except PlatesiftError as exc:
                self._back_off(exc)
                continue
            if lease is None:
                if self.drain:
                    break
                delay, back_off = self._pacer.after_empty(time.monotonic() - started, wait_s)
                if back_off:
                    self._back_off(
                        ServerUnavailableError(
                            f"the server answered {self._pacer.quick_in_a_row} pulls in a row at "
                            f"once with no task (asked to wait {wait_s:g} s): it does not "
                            "long-poll (a proxy?)"
                        )
                    )
                    continue
                self._failures = 0
                self.stopping.wait(delay)
                continue
            self._failures = 0
            self._pacer.after_task()
            outcome = self._handle(lease)
            if outcome is not None and outcome.fatal:
                logger.error("%s; stopping (the task is left for a fixed service)", outcome.detail)
                fatal = {"error": outcome.detail, "kind": outcome.error_kind}
                self._note("fatal", fatal, kind="error")
                return EXIT_CONFIG
            if self.once:
                break
        return EXIT_OK

    def _back_off(self, exc: PlatesiftError) -> None:
        self._failures += 1
        cap = min(self.settings.server.backoff_max_s, BACKOFF_BASE_S * 2 ** min(self._failures, 16))
        delay = random.uniform(cap / 2, cap)
        logger.warning("%s; retrying in %.1f s", exc.message, delay)
        self._note(
            "backoff",
            {"error": exc.message, "kind": exc.kind, "delay_s": round(delay, 2)},
            kind="error",
        )
        self.stopping.wait(delay)

    # --- one task -----------------------------------------------------------------------------

    def _handle(self, lease: Lease) -> TaskOutcome | None:
        worker = self._worker
        assert worker is not None
        lost = threading.Event()
        sink = ServerSink(self.client, lease, lost)
        try:
            spec = self.build_spec(lease)
        except PermanentError as exc:
            logger.warning("task %s rejected: %s", lease.task_id, exc.message)
            return worker.refuse(_safe_id(lease.task_id), lease.attempt, exc, sink)
        except TransientError as exc:
            logger.warning("task %s left for later: %s", lease.task_id, exc.message)
            self._note("deferred", {"error": exc.message, "kind": exc.kind}, task=lease.task_id)
            return None

        if self.stopping.is_set():
            return None  # stopping: leave the task to lease expiry, do not start it

        def on_lost(why: str) -> None:
            lost.set()
            worker.cancel()
            logger.warning("task %s: %s; abandoning it", lease.task_id, why)
            self._note("lease-lost", {"error": why}, task=spec.task_id, attempt=lease.attempt)

        beat = Heartbeat(self.beat_client, lease, on_lost, self._healthy)
        beat.start()
        try:
            outcome = worker.run(spec, sink, progress=lambda done, total: self._healthy())
        finally:
            beat.stop()
        if outcome.outcome == "done":
            logger.info("task %s done: %s", spec.task_id, outcome.counts)
        else:
            logger.warning("task %s %s: %s", spec.task_id, outcome.outcome, outcome.detail)
        return outcome

    def build_spec(self, lease: Lease) -> TaskSpec:
        """A validated task spec, or a PermanentError saying exactly what is wrong."""
        s = self.settings
        if lease.type != s.server.task_type:
            raise ProtocolError(f"unknown task type {lease.type!r}")
        if not _TASK_ID.match(lease.task_id):
            raise ProtocolError(f"task id {lease.task_id[:80]!r} is not a safe directory name")
        payload = lease.payload
        if not isinstance(payload, dict):
            raise InvalidInputError("task payload must be a JSON object")
        video = payload.get("video")
        if not isinstance(video, str) or not video:
            raise InvalidInputError('task payload needs "video": a path relative to the NAS root')
        params = payload.get("params", {})
        if not isinstance(params, dict):
            raise InvalidInputError('task payload "params" must be an object of settings')
        settings = with_task_params(s, params)
        source = self.nas.resolve(video)
        dest_name = f"{s.paths.artifact_root.strip('/')}/{lease.task_id}".lstrip("/")
        dest = self.nas.resolve(dest_name)
        if source == dest or dest in source.parents:
            raise PathNotAllowedError(f"video {video} lies inside the artifact directory")
        return TaskSpec(
            task_id=lease.task_id,
            source=str(source),
            source_name=video,
            dest=str(dest),
            dest_name=dest_name,
            attempt=lease.attempt,
            metadata=_sidecar(source),
            heavy_task_type=s.server.heavy_task_type,
            settings=settings,
        )

    # --- health, signals, journal ---------------------------------------------------------------

    def _healthy(self) -> None:
        self.last_healthy = time.monotonic()

    def _start_watchdog(self) -> threading.Thread | None:
        interval = systemd.watchdog_interval_s()
        if interval is None:
            return None

        def ping() -> None:
            while not self.stopping.wait(interval):
                # Only while the loop is making progress: a hung loop gets restarted.
                limit = max(4 * interval, self.settings.server.wait_s + 2 * interval)
                if time.monotonic() - self.last_healthy < limit:
                    systemd.notify("WATCHDOG=1")

        thread = threading.Thread(target=ping, name="watchdog", daemon=True)
        thread.start()
        return thread

    def _signals(self) -> dict[int, Any]:
        if not self.install_signals or threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum: int, frame: FrameType | None) -> None:
            logger.info("signal %d: stopping", signum)
            self.stop()
            if self._in_pull:
                raise _Interrupted()

        return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    @staticmethod
    def _restore(previous: dict[int, Any]) -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    def _note(
        self,
        event: str,
        detail: dict[str, Any],
        *,
        kind: str = "note",
        task: str = "(service)",
        attempt: int = 0,
    ) -> None:
        if self._worker is not None:
            self._worker.record(
                JournalEntry(
                    task_id=task,
                    attempt=attempt,
                    kind=kind,
                    event=event,
                    source="IDLE",
                    dest="IDLE",
                    detail=detail,
                )
            )


def _safe_id(task_id: str) -> str:
    return task_id if _TASK_ID.match(task_id) else "invalid-task-id"


def _sidecar(source: Path) -> dict[str, Any]:
    """The optional `<video>.json` next to the video, carried into the manifest."""
    path = source.with_name(source.name + ".json")
    try:
        with path.open("rb") as fh:
            raw = fh.read(SIDECAR_MAX_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:  # a legal video name, too long for ".json" after it
            return {}
        raise NasUnavailableError(f"sidecar {path.name}: {exc.strerror}") from None
    if len(raw) > SIDECAR_MAX_BYTES:
        raise InvalidInputError(f"sidecar {path.name} is larger than 1 MiB")
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidInputError(f"sidecar {path.name} is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"sidecar {path.name} must hold a JSON object")
    return data


__all__ = ["Heartbeat", "ServerSink", "Service"]
