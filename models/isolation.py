"""Runs a model backend in a child process, with a deadline on every request and a restart
with backoff after a fault: an abort, a crash or a hang of the Edge TPU cannot take the
service down, and costs only the current task (failed as transient, pulled again later).

Crops travel through one shared-memory segment (copied once, from the frame's crop into the
segment) and a small message over a pipe; a whole batch of frames is one round trip, so the
device works on a batch while the decoder keeps decoding.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any

import numpy as np

from models.backends import BackendSpec
from models.proposer import Box, Proposal, Proposer, propose_in_rois
from platesift import errors
from platesift.errors import PlatesiftError, ProposerUnavailableError

logger = logging.getLogger(__name__)

MIN_SEGMENT_BYTES = 4 << 20
BACKOFF_BASE_S = 0.5
_SIGNALS = {
    6: "aborted (SIGABRT: libedgetpu aborts when a USB transfer fails)",
    9: "killed",
    11: "crashed (SIGSEGV: e.g. a libedgetpu built for another TFLite runtime version)",
}


class IsolatedProposer(Proposer):
    """The parent side: owns the child process, the pipe and the shared-memory segment."""

    def __init__(
        self,
        spec: BackendSpec,
        *,
        deadline_s: float = 1.0,
        start_timeout_s: float = 30.0,
        backoff_max_s: float = 30.0,
        segment_name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.backend = spec.backend
        self.deadline_s = deadline_s
        self.start_timeout_s = start_timeout_s
        self.backoff_max_s = backoff_max_s
        self.segment_name = segment_name
        self.clock = clock
        self.restarts = 0  # child processes started after the first one
        self.faults = 0  # faults seen since the last good answer
        self._next_start = 0.0
        self._started_once = False
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self._shm: SharedMemory | None = None
        self._generation = 0
        if segment_name:  # at boot, not at the first proposal: a killed worker's segment goes
            _unlink_stale(segment_name)

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def ensure_ready(self) -> None:
        if self.alive:
            return
        self._reap()
        wait = self._next_start - self.clock()
        if wait > 0:
            raise ProposerUnavailableError(
                f"{self.backend} inference process is down; restarting it in {wait:.1f} s"
            )
        self._start()

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        from models.inference_child import serve

        proc = ctx.Process(
            target=serve, args=(child, self.spec), name=f"platesift-{self.backend}", daemon=True
        )
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        if self._started_once:
            self.restarts += 1
        self._started_once = True
        reply = self._receive(self.start_timeout_s, "did not start")
        if reply[0] == "ready":
            _, self.backend, self.model = reply
            logger.info("%s inference process %s ready: %s", self.backend, proc.pid, self.model)
            return
        self._kill()
        error = _error(reply)
        if not error.permanent:
            self._schedule_restart()
        raise error

    def close(self) -> None:
        if self._conn is not None and self.alive:
            with contextlib.suppress(OSError):
                self._conn.send(("stop",))
            assert self._proc is not None
            self._proc.join(timeout=2.0)
        self._kill()
        if self._shm is not None:
            self._shm.close()
            with contextlib.suppress(FileNotFoundError):
                self._shm.unlink()
            self._shm = None

    # --- requests -----------------------------------------------------------------------------

    def propose(self, luma: np.ndarray, rois: Sequence[Box]) -> list[Proposal]:
        return propose_in_rois(self.propose_many, luma, rois)

    def propose_many(self, images: Sequence[np.ndarray]) -> list[list[Proposal]]:
        if not images:
            return []
        self.ensure_ready()
        assert self._conn is not None
        layout = self._pack(images)
        assert self._shm is not None
        try:
            self._conn.send(("propose", self._shm.name, layout))
        except OSError:
            self._fault("stopped listening")
        reply = self._receive(self.deadline_s, "missed its deadline")
        while reply[0] == "tick":  # per inference and image: each has its own deadline
            reply = self._receive(self.deadline_s, "missed its deadline")
        if reply[0] != "ok":
            error = _error(reply)
            if not error.permanent:
                self._fault(f"failed: {error.message}")
            raise error
        self.faults = 0
        return [[Proposal(_box(box), float(score)) for box, score in frame] for frame in reply[1]]

    def _pack(self, images: Sequence[np.ndarray]) -> list[tuple[int, int, int]]:
        """Copy the images into the segment (grown when too small); their layout."""
        sizes = [int(img.shape[0]) * int(img.shape[1]) for img in images]
        need = sum(sizes)
        if self._shm is None or self._shm.size < need:
            self._new_segment(max(MIN_SEGMENT_BYTES, need * 2))
        assert self._shm is not None
        layout, offset = [], 0
        for img, size in zip(images, sizes):
            h, w = int(img.shape[0]), int(img.shape[1])
            np.ndarray((h, w), np.uint8, buffer=self._shm.buf, offset=offset)[:] = img
            layout.append((offset, h, w))
            offset += size
        return layout

    def _new_segment(self, size: int) -> None:
        if self._shm is not None:
            self._shm.close()
            self._shm.unlink()
            self._shm = None
        name = None
        if self.segment_name:
            self._generation += 1
            name = f"{self.segment_name}-{self._generation}"
        self._shm = SharedMemory(name=name, create=True, size=size)

    # --- faults -------------------------------------------------------------------------------

    def _receive(self, timeout: float, what: str) -> Any:
        assert self._conn is not None
        try:
            if self._conn.poll(timeout):
                return self._conn.recv()
        except (EOFError, OSError):
            self._fault(self._death())
        if not self.alive:
            self._fault(self._death())
        self._fault(f"{what} ({timeout:.1f} s): hung")

    def _death(self) -> str:
        assert self._proc is not None
        self._proc.join(timeout=5.0)
        code = self._proc.exitcode
        if code is None:
            return "stopped answering"
        if code < 0:
            return _SIGNALS.get(-code, f"killed by signal {-code}")
        return f"exited with status {code}"

    def _fault(self, what: str) -> Any:
        """Kill the child, schedule its restart, fail the request as transient."""
        self._kill()
        delay = self._schedule_restart()
        message = f"{self.backend} inference process {what}; restarting it in {delay:.1f} s"
        logger.error("%s", message)
        raise ProposerUnavailableError(message)

    def _schedule_restart(self) -> float:
        self.faults += 1
        delay = min(self.backoff_max_s, BACKOFF_BASE_S * 2 ** min(self.faults - 1, 16))
        self._next_start = self.clock() + delay
        return delay

    def _kill(self) -> None:
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join(timeout=5.0)
        self._reap()

    def _reap(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._proc is not None and not self._proc.is_alive():
            self._proc.close()
            self._proc = None


def _box(values: Sequence[int]) -> Box:
    x1, y1, x2, y2 = (int(v) for v in values)
    return (x1, y1, x2, y2)


def _error(reply: Any) -> PlatesiftError:
    _, kind, message, permanent = reply
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, PlatesiftError) and cls.permanent == permanent:
        return cls(message)
    return errors.ModelError(message) if permanent else ProposerUnavailableError(message)


def _unlink_stale(prefix: str) -> None:
    """Remove segments `prefix-*` left by a killed process. The caller owns the prefix (it is
    derived from the scratch directory, which the scratch lock gives to one process)."""
    shm_dir = Path("/dev/shm")
    for path in sorted(shm_dir.glob(f"{prefix}-*")) if shm_dir.is_dir() else []:
        try:
            path.unlink()
            logger.info("removed stale shared memory %s", path)
        except OSError:
            pass


__all__ = ["IsolatedProposer"]
