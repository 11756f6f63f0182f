"""The simulated main server: the HTTP task protocol of docs/protocol.md over a `TaskStore`.

`TaskServer` owns a `ThreadingHTTPServer` (one daemon thread per connection), the store,
the condition variable that long-polling pulls wait on, and the fault switches of the
fault-injection harness. The request handler validates everything a client sends and never
lets an exception escape: bad input is a 4xx with `{"error": "..."}`, a bug is a 500 with a
one-line error (the traceback goes to the server log). One INFO line per request; the
token is never logged.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sim.server_requests import (
    COMPILED_ROUTES,
    FAULT_MODES,
    MAX_TEXT,
    ROUTES,
    Faults,
    HttpError,
    bad_request,
    json_object,
    only_fields,
    reject_constant,
    text_field,
)
from sim.taskstore import OUTCOMES, STATES, IdempotencyConflict, LeaseLost, TaskStore

logger = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
"""Largest request body accepted (bytes); larger ones get 413."""

DRAIN_LIMIT = 16 * MAX_BODY
"""A too-large body up to this size is read and discarded before the 413, so the client can
read the answer instead of seeing a connection reset; beyond it the connection is closed."""

MAX_WAIT_S = 20.0
"""Longest long-poll a pull may ask for."""

STALL_S = 30.0
"""How long the `stall` fault holds a request before answering 503."""

SOCKET_TIMEOUT_S = 30.0
"""A connection idle (or sending its request) for this long is closed."""

_TYPE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class TaskServer:
    """The HTTP server, its store and its long-poll condition; `start()`/`stop()` or
    `serve_forever()`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8750,
        db_path: str | Path = "tasks.db",
        token: str | None = None,
        lease_s: float = 60.0,
        max_attempts: int = 5,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if token is not None and not token.strip():
            raise ValueError("the token must not be empty (use None for no token)")
        self._token = token.strip().encode() if token is not None else None
        self.store = TaskStore(db_path, lease_s=lease_s, max_attempts=max_attempts, clock=clock)
        self.faults = Faults()
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        try:
            self._httpd = _HTTPServer((host, port), _Handler, self)
        except BaseException:
            self.store.close()
            raise
        address = self._httpd.server_address
        self.host: str = str(address[0])
        self.port: int = int(address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def has_token(self) -> bool:
        return self._token is not None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> TaskServer:
        """Serve from a daemon thread; returns once the socket is listening."""
        if self._thread is not None:
            raise RuntimeError("the server is already started")
        # The socket listens since __init__; the thread only accepts.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"task-server-{self.port}",
        )
        self._thread.start()
        logger.info(
            "listening on %s (db %s, lease %.0f s, max attempts %d, %s)",
            self.url,
            self.store.path,
            self.store.lease_s,
            self.store.max_attempts,
            "token required" if self.has_token else "NO TOKEN",
        )
        return self

    def serve_forever(self) -> None:
        """Start, then block until `stop()` is called (from another thread or a signal)."""
        if self._thread is None:
            self.start()
        self._stopped.wait()

    def stop(self) -> None:
        """Stop accepting, release long-polls and stalls, close the store. Idempotent."""
        with self._stop_lock:
            first = not self._stopping.is_set()
            self._stopping.set()
        if not first:
            self._stopped.wait()
            return
        logger.info("stopping: releasing waiting requests")
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()
        self.store.close()  # waits for a request inside a store transaction
        logger.info("stopped")
        self._stopped.set()

    def __enter__(self) -> TaskServer:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- operations (called by the handler) ------------------------------------------------------

    def wake(self) -> None:
        """Wake every long-polling pull so it looks at the queue again."""
        with self._cond:
            self._cond.notify_all()

    def check_token(self, header: str | None) -> None:
        if self._token is None:
            return
        if header is None:
            raise HttpError(401, "missing Authorization header", {"WWW-Authenticate": "Bearer"})
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            value.strip().encode(), self._token
        ):
            raise HttpError(401, "invalid bearer token", {"WWW-Authenticate": "Bearer"})

    def pull(self, types: list[str], worker: str, wait_s: float) -> dict[str, Any] | None:
        """Lease a task, waiting up to `wait_s` for one (woken by submits and expiries)."""
        if self.store.expire():
            self.wake()
        deadline = time.monotonic() + wait_s
        waiting = False
        with self._cond:
            while True:
                if self._stopping.is_set():
                    raise HttpError(503, "the server is shutting down")
                task = self.store.pull(types, worker)
                if task is not None:
                    return task
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                if not waiting:
                    waiting = True
                    logger.debug("pull by %s waits up to %.1f s for %s", worker, wait_s, types)
                # Also wake when the next lease runs out: its task may be pullable then.
                expiry = self.store.next_expiry_in()
                timeout = remaining if expiry is None else min(remaining, max(expiry, 0.001))
                self._cond.wait(timeout)

    def submit(
        self, type_: str, payload: dict[str, Any], key: str | None
    ) -> tuple[dict[str, Any], bool]:
        task, created = self.store.submit(type_, payload, key)
        if created:
            self.wake()
        return task, created

    def expire(self) -> None:
        if self.store.expire():
            self.wake()

    def stall(self) -> None:
        """Hold a request for `STALL_S`, or until the server stops."""
        self._stopping.wait(STALL_S)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], app: TaskServer
    ) -> None:
        self.app = app
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "platesift-sim/1"
    timeout = SOCKET_TIMEOUT_S
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms stalls
    server: _HTTPServer

    # Every method goes through one dispatcher; unknown methods get a JSON 501 from send_error.
    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def version_string(self) -> str:
        return self.server_version

    @property
    def app(self) -> TaskServer:
        return self.server.app

    # --- plumbing -------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        started = time.monotonic()
        self._status = 0
        self._consumed = False
        path = urlsplit(self.path).path
        try:
            if self.app.stopping:
                self.close_connection = True
                raise HttpError(503, "the server is shutting down")
            if not path.startswith("/v1/admin/"):
                fault = self.app.faults.take()
                if fault is not None and self._fault(fault):
                    return
            self.app.check_token(self.headers.get("Authorization"))
            name, params = self._route(path)
            body = self._body()
            status, payload = getattr(self, f"_op_{name}")(params, body)
            self._send(status, payload)
        except HttpError as exc:
            if not self._consumed:  # keep-alive: the unread body must not pass for a request
                self._drain_small_body()
            self._send(exc.status, {"error": exc.message}, exc.headers)
        except Exception as exc:
            logger.exception("%s %s failed", self.command, path)
            self.close_connection = True
            line = f"internal error: {type(exc).__name__}: {exc}".splitlines()[0][:300]
            self._send(500, {"error": line})
        finally:
            logger.info(
                "%s %s %s %s %.1f ms",
                self.client_address[0],
                self.command,
                self.path[:300],
                self._status or "-",
                (time.monotonic() - started) * 1000,
            )

    def _fault(self, mode: str) -> bool:
        """Apply an injected fault; True if the request is finished."""
        logger.info("injected fault: %s on %s %s", mode, self.command, self.path[:300])
        self._drain_small_body()
        if mode == "error500":
            self._send(500, {"error": "injected fault: error500"})
        elif mode == "stall":
            self.app.stall()
            self._send(503, {"error": "injected fault: stall"})
        elif mode == "unauthorized":  # the token revoked
            self._send(401, {"error": "injected fault: unauthorized"})
        else:  # close: no answer at all
            self.close_connection = True
        return True

    def _drain_small_body(self) -> None:
        self._consumed = True
        length = self._length()
        if length is not None and length <= MAX_BODY:
            self.rfile.read(length)
        else:
            self.close_connection = True

    def _length(self) -> int | None:
        text = self.headers.get("Content-Length")
        if text is None:
            return 0
        try:
            length = int(text)
        except ValueError:
            return None
        return length if length >= 0 else None

    def _route(self, path: str) -> tuple[str, dict[str, str]]:
        allowed = []
        for method, pattern, _, name in COMPILED_ROUTES:
            match = pattern.match(path)
            if match is None:
                continue
            if method == self.command:
                return name, match.groupdict()
            allowed.append(method)
        if allowed:
            raise HttpError(
                405,
                f"method {self.command} not allowed on {path} (allowed: {', '.join(allowed)})",
                {"Allow": ", ".join(allowed)},
            )
        raise HttpError(404, f"no such endpoint: {path}")

    def _body(self) -> Any:
        """The request's JSON body, or None if it has none."""
        self._consumed = True
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise HttpError(411, "chunked bodies are not supported: send Content-Length")
        length = self._length()
        if length is None:
            self.close_connection = True
            raise bad_request("Content-Length is not a non-negative integer")
        if length > MAX_BODY:
            self.close_connection = True
            if length <= DRAIN_LIMIT:
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 65536))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            raise HttpError(413, f"request body of {length} bytes is larger than {MAX_BODY}")
        raw = self.rfile.read(length) if length else b""
        if len(raw) < length:
            self.close_connection = True
            raise bad_request("request body is shorter than its Content-Length")
        if not raw.strip():
            return None
        try:
            return json.loads(raw, parse_constant=reject_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad_request(
                f"request body is not valid JSON: {str(exc).splitlines()[0]}"
            ) from None

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._status = status
        data = b"" if payload is None else (json.dumps(payload) + "\n").encode()
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        try:
            self.end_headers()
            if data and self.command != "HEAD":
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client is gone (e.g. killed mid long-poll)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors of http.server (bad request line, 501, ...) as JSON too."""
        try:
            short = HTTPStatus(code).phrase
        except ValueError:
            short = "error"
        self.close_connection = True
        self._consumed = True
        self._send(code, {"error": (message or short).splitlines()[0][:300]})

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Requests are logged once, by `_dispatch`, without headers."""

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.client_address[0], format % args)

    # --- endpoints ------------------------------------------------------------------------------

    def _op_pull(self, params: dict[str, str], body: Any) -> tuple[int, Any]:
        body = json_object(body)
        only_fields(body, ("types", "worker", "wait_s"))
        types = body.get("types")
        if "types" not in body:
            raise bad_request("missing field 'types'")
        if not isinstance(types, list) or not types:
            raise bad_request("field 'types' must be a non-empty list of task types")
        for t in types:
            if not isinstance(t, str) or not _TYPE_RE.match(t):
                raise bad_request(f"field 'types' must hold task types matching {_TYPE_RE.pattern}")
        worker = text_field(body, "worker")
        wait_s = body.get("wait_s", 0)
        if isinstance(wait_s, bool) or not isinstance(wait_s, (int, float)):
            raise bad_request("field 'wait_s' must be a number")
        if not 0 <= wait_s <= MAX_WAIT_S:
            raise bad_request(f"field 'wait_s' must be between 0 and {MAX_WAIT_S:g}")
        task = self.app.pull(types, worker, float(wait_s))
        return (204, None) if task is None else (200, task)

    def _op_submit(self, params: dict[str, str], body: Any) -> tuple[int, Any]:
        body = json_object(body)
        only_fields(body, ("type", "payload"))
        type_ = text_field(body, "type", _TYPE_RE)
        if "payload" not in body:
            raise bad_request("missing field 'payload'")
        if not isinstance(body["payload"], dict):
            raise bad_request("field 'payload' must be a JSON object")
        key = self.headers.get("Idempotency-Key")
        if key is not None and (not key.strip() or len(key) > MAX_TEXT or not key.isprintable()):
            raise bad_request(
                f"header 'Idempotency-Key' must be 1 to {MAX_TEXT} printable characters"
            )
        try:
            task, created = self.app.submit(type_, body["payload"], key)
        except IdempotencyConflict as exc:
            raise HttpError(422, exc.message) from None
        return (201 if created else 200), task

    def _op_list(self, params: dict[str, str], body: Any) -> tuple[int, Any]:
        query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        filters: dict[str, str | None] = {"type": None, "state": None}
        for name, values in query.items():
            if name not in filters:
                raise bad_request(f"unknown query parameter '{name}'")
            if len(values) != 1:
                raise bad_request(f"query parameter '{name}' given more than once")
            filters[name] = values[0] or None
        if filters["state"] is not None and filters["state"] not in STATES:
            raise bad_request(f"query parameter 'state' must be one of {', '.join(STATES)}")
        self.app.expire()
        return 200, {"tasks": self.app.store.list(type=filters["type"], state=filters["state"])}

    def _op_get(self, params: dict[str, str], body: Any) -> tuple[int, Any]:
        self.app.expire()
        task = self.app.store.get(params["task_id"])
        if task is None:
            raise HttpError(404, f"no task {params['task_id']}")
        return 200, task

    def _op_extend(self, params: dict[str, str], body: Any) -> tuple[int, Any]:
        if body is not None:
            only_fields(json_object(body), ())
        self.app.expire()
        try:
            return 200, {"expires_in_s": self.app.store.extend(params["lease_id"])}
        except LeaseLost as exc:
            raise HttpError(409, exc.message) from None

    def _op_complete(self, params: dict[str, str], body: Any) -> tuple[int, Any]:
        body = json_object(body)
        only_fields(body, ("outcome", "detail"))
        outcome = text_field(body, "outcome")
        if outcome not in OUTCOMES:
            raise bad_request(f"field 'outcome' must be one of {', '.join(OUTCOMES)}")
        detail = body.get("detail")
        if detail is not None and not isinstance(detail, (dict, str)):
            raise bad_request("field 'detail' must be an object, a string or null")
        self.app.expire()
        try:
            return 200, self.app.store.complete(params["lease_id"], outcome, detail)
        except LeaseLost as exc:
            raise HttpError(409, exc.message) from None

    def _op_faults(self, params: dict[str, str], body: Any) -> tuple[int, Any]:
        body = json_object(body)
        only_fields(body, ("mode", "count"))
        mode = text_field(body, "mode")
        if mode not in FAULT_MODES:
            raise bad_request(f"field 'mode' must be one of {', '.join(FAULT_MODES)}")
        count = body.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 1_000_000:
            raise bad_request("field 'count' must be an integer between 0 and 1000000")
        state = self.app.faults.set(mode, count)
        logger.warning("fault injection: next %d request(s): %s", state["count"], state["mode"])
        return 200, state


__all__ = ["FAULT_MODES", "MAX_BODY", "ROUTES", "HttpError", "TaskServer"]
