"""The worker's side of the task protocol (docs/protocol.md): pull, extend, publish, complete.

Every call has a deadline for the whole exchange (connect, headers, body: a server that drips
its answer cannot hold a call longer), not only a timeout per read. Failures map onto the
error taxonomy: connection errors, timeouts, 5xx and garbage answers are transient
(`ServerUnavailableError`: back off and try again);
401/403 are `AuthError` (permanent: never retried in a loop); 409 is `LeaseLostError`; other
4xx are `ProtocolError`. Redirects are not followed (3xx is transient, with the Location in
the message). The token goes in a header only and never into a log line or error.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

import requests

from platesift.app.deadline import DeadlineAdapter
from platesift.config import ServerSettings
from platesift.errors import AuthError, LeaseLostError, ProtocolError, ServerUnavailableError

logger = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Lease:
    """A task leased to this worker."""

    task_id: str
    type: str
    payload: Any
    lease_id: str
    attempt: int
    expires_in_s: float


class TaskClient:
    """A small, strict HTTP client for the main server."""

    def __init__(self, settings: ServerSettings, worker_id: str) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self.base = settings.url.rstrip("/")
        self.session = requests.Session()
        self.adapter = DeadlineAdapter()
        self.session.mount("http://", self.adapter)
        self.session.mount("https://", self.adapter)
        self.session.trust_env = False  # no proxies or netrc credentials picked up silently
        if settings.token:
            self.session.headers["Authorization"] = f"Bearer {settings.token}"
        if not settings.tls_verify:
            self.session.verify = False
            logger.warning("TLS certificate verification is OFF for %s", self.base)
        elif settings.ca_bundle:
            self.session.verify = settings.ca_bundle

    def close(self) -> None:
        self.session.close()

    # --- the protocol -------------------------------------------------------------------------

    def pull(self, types: list[str], wait_s: float) -> Lease | None:
        status, body = self._call(
            "POST",
            "/v1/tasks/pull",
            {"types": types, "worker": self.worker_id, "wait_s": wait_s},
            read_timeout=wait_s + self.settings.timeout_s,
        )
        if status == 204:
            return None
        try:
            return Lease(
                task_id=_text(body["task_id"]),
                type=_text(body["type"]),
                payload=body["payload"],
                lease_id=_text(body["lease_id"]),
                attempt=int(body["attempt"]),
                expires_in_s=float(body["expires_in_s"]),
            )
        except (KeyError, TypeError, ValueError):
            raise ServerUnavailableError(
                "the server answered a pull with a malformed task"
            ) from None

    def extend(self, lease_id: str) -> float:
        _, body = self._call("POST", f"/v1/leases/{lease_id}/extend", {})
        try:
            return float(body["expires_in_s"])
        except (KeyError, TypeError, ValueError):
            raise ServerUnavailableError(
                "the server answered an extend without expires_in_s"
            ) from None

    def publish(self, type_: str, payload: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        _, body = self._call(
            "POST",
            "/v1/tasks",
            {"type": type_, "payload": payload},
            headers={"Idempotency-Key": idempotency_key},
        )
        if not isinstance(body, dict) or "task_id" not in body:
            raise ServerUnavailableError("the server answered a publish without a task id")
        return body

    def complete(self, lease_id: str, outcome: str, detail: Any) -> dict[str, Any]:
        _, body = self._call(
            "POST", f"/v1/leases/{lease_id}/complete", {"outcome": outcome, "detail": detail}
        )
        return body if isinstance(body, dict) else {}

    def check(self) -> None:
        """Reachable and token accepted (for start-up and `doctor`)."""
        self._call("GET", "/v1/tasks?state=leased", None)

    # --- plumbing -------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        read_timeout: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        url = self.base + path
        timeout = (self.settings.timeout_s, read_timeout or self.settings.timeout_s)
        total = sum(timeout)  # connect, then the whole answer: headers and body
        with self.adapter.within(total) as expired:
            status, raw, location = self._exchange(method, url, body, headers, timeout, expired)
        if expired.is_set():
            raise ServerUnavailableError(
                f"{method} {path}: no complete answer from {self.base} within {total:g} s"
            )
        return self._answer(method, path, status, raw, location)

    def _exchange(
        self,
        method: str,
        url: str,
        body: Any,
        headers: dict[str, str] | None,
        timeout: tuple[float, float],
        expired: threading.Event,
    ) -> tuple[int, bytes, str]:
        try:
            response = self.session.request(
                method,
                url,
                json=body,
                headers=headers,
                timeout=timeout,
                stream=True,
                allow_redirects=False,  # a redirect never moves the worker to another server
            )
            raw = response.raw.read(MAX_RESPONSE_BYTES + 1, decode_content=True)
            response.close()
        except Exception as exc:
            if expired.is_set():
                return 0, b"", ""  # cut off by the deadline: the caller says so
            if isinstance(exc, requests.exceptions.SSLError):
                raise ServerUnavailableError(
                    f"TLS error talking to {self.base}: {_short(exc)}"
                ) from None
            if isinstance(exc, requests.RequestException):
                raise ServerUnavailableError(f"cannot reach {self.base}: {_short(exc)}") from None
            # urllib3 protocol errors surface as various types
            raise ServerUnavailableError(f"broken answer from {self.base}: {_short(exc)}") from None
        return response.status_code, raw, str(response.headers.get("Location", "?"))

    def _answer(
        self, method: str, path: str, status: int, raw: bytes, location: str
    ) -> tuple[int, Any]:
        if len(raw) > MAX_RESPONSE_BYTES:
            raise ServerUnavailableError(f"{method} {path}: answer larger than 1 MiB")
        data: Any = None
        if raw:
            try:
                data = json.loads(raw)
            except ValueError:
                if status < 300:
                    raise ServerUnavailableError(f"{method} {path}: answer is not JSON") from None
        error = data.get("error") if isinstance(data, dict) else None
        reason = f"{method} {path}: HTTP {status}" + (f": {str(error)[:200]}" if error else "")
        if status in (401, 403):
            raise AuthError(f"{reason} (check server.token)")
        if status == 409:
            raise LeaseLostError(reason)
        if status >= 500 or status in (408, 429):
            raise ServerUnavailableError(reason)
        if status >= 400:
            raise ProtocolError(reason)
        if 300 <= status < 400:
            where = location[:200]
            raise ServerUnavailableError(
                f"{reason}: a redirect to {where}, not followed (set server.url to the "
                "server's own address)"
            )
        if status not in (200, 201, 204):
            raise ServerUnavailableError(reason)
        if status != 204 and not isinstance(data, dict):
            raise ServerUnavailableError(f"{method} {path}: answer is not a JSON object")
        return status, data


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected text")
    return value


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


__all__ = ["Lease", "TaskClient"]
