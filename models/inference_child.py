"""The inference process: opens one model backend and answers proposal requests.

It runs in its own process because libedgetpu calls abort() when a USB transfer fails and
`invoke()` can hang: either would take the whole service down if it ran inside it. The parent
(`models.isolation.IsolatedProposer`) sends the region crops through shared memory and a small
message over a pipe, waits with a deadline, and kills and restarts this process on a fault.

Protocol (pickled tuples over a `multiprocessing` pipe):
    child -> parent: ("ready", backend, model) | ("error", kind, message, permanent)
    parent -> child: ("propose", shm_name, [(offset, height, width), ...]) | ("stop",)
    child -> parent: ("tick",) after each image, then
                     ("ok", [[(box, score), ...] per image]) | ("error", ...)
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from models.backends import BackendSpec, open_backend
from models.proposer import Proposer
from platesift.errors import PlatesiftError

PR_SET_PDEATHSIG = 1


def serve(conn: Connection, spec: BackendSpec) -> None:
    """The child's main function (the target of the spawned process)."""
    _die_with_parent()
    import cv2

    cv2.setNumThreads(1)
    try:
        proposer = open_backend(spec)
    except PlatesiftError as exc:
        conn.send(("error", exc.kind, exc.message, exc.permanent))
        return
    except Exception as exc:  # an unexpected runtime failure: treat as the device's fault
        conn.send(("error", "ProposerUnavailableError", f"{type(exc).__name__}: {exc}", False))
        return
    conn.send(("ready", proposer.backend, proposer.model))
    proposer.watch_inferences(lambda: conn.send(("tick",)))
    shm: SharedMemory | None = None
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            if message[0] != "propose":
                return
            _, name, layout = message
            if shm is None or shm.name.lstrip("/") != name.lstrip("/"):
                if shm is not None:
                    shm.close()
                shm = _attach(name)
            conn.send(_propose(proposer, conn, shm, layout))
    finally:
        if shm is not None:
            shm.close()
        proposer.close()


def _propose(
    proposer: Proposer, conn: Connection, shm: SharedMemory, layout: list[tuple[int, int, int]]
) -> Any:
    """Answer one batch; a ("tick",) after each inference (from `watch_inferences`) and after
    each image lets the parent hold every single inference to its deadline, however long the
    batch and however many tiles an image takes."""
    images: list[np.ndarray] = [
        np.ndarray((h, w), np.uint8, buffer=shm.buf, offset=offset) for offset, h, w in layout
    ]
    found = []
    try:
        for i in range(len(images)):
            found.append(proposer.propose(images[i], ()))
            conn.send(("tick",))
    except PlatesiftError as exc:
        return ("error", exc.kind, exc.message, exc.permanent)
    finally:
        del images  # release the views before the segment can be closed
    return ("ok", [[(p.box, p.score) for p in frame] for frame in found])


def _attach(name: str) -> SharedMemory:
    """Attach to the parent's segment without adopting it (the parent owns and unlinks it)."""
    try:
        return SharedMemory(name=name, track=False)  # type: ignore[call-arg]  # Python >= 3.13
    except TypeError:
        # Before 3.13 attaching registers the segment with the resource tracker, but a spawned
        # child shares its parent's tracker, where the parent's own registration is the same
        # entry: unregistering here would make the parent's unlink fail in the tracker
        # (a KeyError traceback on stderr at exit). So leave it registered, once, as it is.
        return SharedMemory(name=name)


def _die_with_parent() -> None:
    """Never outlive the service: SIGKILL when the parent dies, even mid-`invoke()`."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) == 0
    except (OSError, AttributeError):
        armed = False
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)
    if armed:
        return

    def watch() -> None:  # not Linux: watch the parent instead
        stop = threading.Event()
        while not stop.wait(1.0):
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


__all__ = ["serve"]
