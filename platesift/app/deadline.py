"""A whole-call deadline for `requests`: its timeouts bound each socket read, so a server that
drips its headers or body a byte at a time can hold a call for minutes. `DeadlineAdapter`
tracks the sockets of its connections; `within(seconds)` shuts them down when the time is up,
which ends any read blocked on them at once."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class DeadlineAdapter(HTTPAdapter):
    """An HTTPAdapter whose calls can be cut off by a deadline (see `within`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[Any] = set()
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        track = self._track

        class Conn(HTTPConnection):
            def connect(self) -> None:
                track(self)
                super().connect()

        class TlsConn(HTTPSConnection):
            def connect(self) -> None:
                track(self)
                super().connect()

        class Pool(HTTPConnectionPool):
            ConnectionCls = Conn

        class TlsPool(HTTPSConnectionPool):
            ConnectionCls = TlsConn

        self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": TlsPool}

    def _track(self, conn: Any) -> None:
        with self._lock:
            self._live.add(conn)

    def abort(self) -> None:
        """Shut down every socket of this adapter's connections (a blocked read returns)."""
        with self._lock:
            conns = list(self._live)
            self._live.clear()
        for conn in conns:
            sock = getattr(conn, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    @contextlib.contextmanager
    def within(self, seconds: float) -> Iterator[threading.Event]:
        """Run the body with a deadline; the event yielded is set if the deadline cut it off."""
        expired = threading.Event()

        def cut() -> None:
            expired.set()
            self.abort()

        timer = threading.Timer(seconds, cut)
        timer.daemon = True
        timer.start()
        try:
            yield expired
        finally:
            timer.cancel()


__all__ = ["DeadlineAdapter"]
