"""The reference server's request vocabulary: its routes, the one-line HTTP errors, the
validation of JSON fields, and the fault switches of `/v1/admin/faults`."""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

logger = logging.getLogger(__name__)

FAULT_MODES = ("none", "error500", "stall", "close", "unauthorized")
MAX_TEXT = 200
"""Longest task type, worker id or idempotency key."""

ROUTES: tuple[tuple[str, str, str], ...] = (
    ("POST", "/v1/tasks/pull", "pull"),
    ("POST", "/v1/tasks", "submit"),
    ("GET", "/v1/tasks", "list"),
    ("GET", "/v1/tasks/{task_id}", "get"),
    ("POST", "/v1/leases/{lease_id}/extend", "extend"),
    ("POST", "/v1/leases/{lease_id}/complete", "complete"),
    ("POST", "/v1/admin/faults", "faults"),
)
"""(method, path template, handler) of every endpoint; templates as in docs/openapi.yaml."""


def compile_route(template: str) -> re.Pattern[str]:
    return re.compile(
        "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template.replace(".", r"\.")) + "$"
    )


COMPILED_ROUTES = [(method, compile_route(tpl), tpl, name) for method, tpl, name in ROUTES]


class HttpError(Exception):
    """A request that ends in an error status with a one-line message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def bad_request(message: str) -> HttpError:
    return HttpError(400, message)


def text_field(body: dict[str, Any], name: str, pattern: re.Pattern[str] | None = None) -> str:
    if name not in body:
        raise bad_request(f"missing field '{name}'")
    value = body[name]
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"field '{name}' must be a non-empty string")
    if len(value) > MAX_TEXT:
        raise bad_request(f"field '{name}' is longer than {MAX_TEXT} characters")
    if not value.isprintable():
        raise bad_request(f"field '{name}' must not hold control characters")
    if pattern is not None and not pattern.match(value):
        raise bad_request(f"field '{name}' must match {pattern.pattern}")
    return value


def only_fields(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in body:
        if key not in allowed:
            raise bad_request(f"unknown field '{key}'")


class Faults:
    """The fault switches: the next `count` non-admin requests misbehave as `mode`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.mode = "none"
        self.count = 0

    def set(self, mode: str, count: int) -> dict[str, Any]:
        with self._lock:
            self.mode, self.count = (mode, count) if mode != "none" and count > 0 else ("none", 0)
            return {"mode": self.mode, "count": self.count}

    def take(self) -> str | None:
        with self._lock:
            if self.mode == "none" or self.count <= 0:
                return None
            self.count -= 1
            mode = self.mode
            if self.count == 0:
                self.mode = "none"
            return mode


def json_object(body: Any) -> dict[str, Any]:
    if body is None:
        raise bad_request("a JSON object body is required")
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    return body


def reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


__all__ = [
    "COMPILED_ROUTES",
    "FAULT_MODES",
    "MAX_TEXT",
    "ROUTES",
    "Faults",
    "HttpError",
    "bad_request",
    "json_object",
    "only_fields",
    "reject_constant",
    "text_field",
]
