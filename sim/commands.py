"""The `platesift sim server|submit|tasks` commands: run the simulated main server, queue a
video for the worker, and list the queue.

`add_parsers(subparsers)` adds the three sub-commands to the `platesift sim` group; each
parser's `sim_func` default is its command function, which takes the parsed Namespace and
returns an exit code (0 done, 2 usage error or request refused by the server (HTTP 4xx),
4 server unreachable or failing (retry later)). Errors are one line
`platesift: error: ...` on stderr.

The bearer token never comes from the command line (it would show in the process list):
it is read from `--token-file FILE` or the environment (`PLATESIFT_SERVER_TOKEN`, or the
worker's settings variable `PLATESIFT_SERVER__TOKEN`), and never printed or logged.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import re
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import requests

from sim.server import TaskServer
from sim.taskstore import STATES, TaskStoreError

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_USAGE, EXIT_TRANSIENT = 0, 2, 4

TOKEN_ENV = ("PLATESIFT_SERVER_TOKEN", "PLATESIFT_SERVER__TOKEN")
"""Environment variables holding the bearer token, in order of precedence."""

URL_ENV = ("PLATESIFT_SERVER_URL", "PLATESIFT_SERVER__URL")
"""Environment variables holding the server URL, in order of precedence."""

DEFAULT_URL = "http://127.0.0.1:8750"
DEFAULT_PORT = 8750
TASK_TYPE = "PREPROCESS_VIDEO"

TIMEOUT_S = 10.0
"""Connect and read timeout of every call the client commands make."""

DETAIL_WIDTH = 60
"""The `tasks` table cuts the detail column to this many characters."""


class CommandError(Exception):
    """A command failure: one line for stderr and the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# --- argparse ---------------------------------------------------------------------------------


class _RefuseToken(argparse.Action):
    """`--token` is refused without echoing its value (argparse would print it back)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        parser.error(
            f"{option_string} is not accepted: a token on the command line shows in the process "
            f"list; use ${TOKEN_ENV[0]} or --token-file FILE"
        )


def add_parsers(subparsers: Any) -> None:
    """Add `server`, `submit` and `tasks` to the `platesift sim` sub-command group."""

    def token_args(p: argparse.ArgumentParser, help: str) -> None:
        p.add_argument("--token-file", metavar="FILE", help=help)
        p.add_argument("--token", nargs="?", action=_RefuseToken, help=argparse.SUPPRESS)

    def client_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--server",
            metavar="URL",
            help=f"server base URL (default: ${URL_ENV[0]} or {DEFAULT_URL})",
        )
        token_args(p, f"file holding the bearer token (default: ${TOKEN_ENV[0]})")

    # allow_abbrev=False: no option may be reached by a prefix (`--tok` for `--token-file`).
    p = subparsers.add_parser(
        "server", help="run the simulated main server (task queue)", allow_abbrev=False
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0 = any free port)")
    p.add_argument("--db", required=True, metavar="FILE", help="SQLite file of the task queue")
    p.add_argument("--lease-s", type=float, default=60.0, metavar="S", help="lease duration")
    p.add_argument(
        "--max-attempts",
        type=int,
        default=5,
        metavar="N",
        help="leases per task before it goes to dead",
    )
    token_args(p, f"file holding the bearer token clients must send (default: ${TOKEN_ENV[0]})")
    p.set_defaults(sim_func=cmd_server)

    p = subparsers.add_parser(
        "submit", help=f"queue a {TASK_TYPE} task for a video", allow_abbrev=False
    )
    p.add_argument("video", help="video path relative to the NAS root (sent as given)")
    p.add_argument(
        "--params",
        metavar="JSON",
        help="settings overrides as a JSON object, e.g. '{\"motion.threshold\": 25}'",
    )
    p.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="submitting again with the same key returns the first task",
    )
    client_args(p)
    p.set_defaults(sim_func=cmd_submit)

    p = subparsers.add_parser("tasks", help="list the server's tasks", allow_abbrev=False)
    p.add_argument("--json", action="store_true", help="print the task objects as JSON")
    p.add_argument("--type", metavar="T", help="only tasks of this type")
    p.add_argument("--state", choices=STATES, help="only tasks in this state")
    client_args(p)
    p.set_defaults(sim_func=cmd_tasks)


# --- commands ---------------------------------------------------------------------------------


def cmd_server(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT, then stop cleanly and return 0."""
    try:
        token = _token(args)
        if not 0 <= args.port <= 65535:
            raise CommandError(f"--port must be between 0 and 65535, not {args.port}", EXIT_USAGE)
        if not args.lease_s > 0:
            raise CommandError(f"--lease-s must be > 0, not {args.lease_s:g}", EXIT_USAGE)
        if args.max_attempts < 1:
            raise CommandError(f"--max-attempts must be >= 1, not {args.max_attempts}", EXIT_USAGE)
        server = _open_server(args, token)
    except CommandError as exc:
        return _fail(exc.message, exc.code)
    if token is None and not _is_loopback(server.host):
        print(
            f"platesift: warning: serving on {server.host} without a token: anyone who can "
            f"reach it can take and complete tasks (set {TOKEN_ENV[0]})",
            file=sys.stderr,
        )
    # One line per request, and lease expiries, even when the CLI logs only warnings.
    for name in ("sim.server", "sim.taskstore"):
        logging.getLogger(name).setLevel(logging.INFO)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Never stop from inside the handler: stop() waits for the serving thread.
        threading.Thread(target=server.stop, name="sim-server-stop", daemon=True).start()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        server.start()
        print(f"platesift sim server: listening on {server.url} (db {args.db})", flush=True)
        server.serve_forever()
    finally:
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print("platesift sim server: stopped", flush=True)
    return EXIT_OK


def cmd_submit(args: argparse.Namespace) -> int:
    """POST one PREPROCESS_VIDEO task and print its id."""
    try:
        params: Any = {}
        if args.params is not None:
            try:
                params = json.loads(args.params)
            except ValueError as exc:
                raise CommandError(f"--params is not valid JSON: {exc}", EXIT_USAGE) from None
            if not isinstance(params, dict):
                raise CommandError("--params must be a JSON object", EXIT_USAGE)
        if not args.video.strip():
            raise CommandError("the video path is empty", EXIT_USAGE)
        headers = {}
        if args.idempotency_key is not None:
            headers["Idempotency-Key"] = args.idempotency_key
        status, task = _call(
            args,
            "POST",
            "/v1/tasks",
            body={"type": TASK_TYPE, "payload": {"video": args.video, "params": params}},
            headers=headers,
        )
    except CommandError as exc:
        return _fail(exc.message, exc.code)
    if status == 200:
        print(f"platesift: already submitted with this key: {task['task_id']}", file=sys.stderr)
    print(task["task_id"])
    return EXIT_OK


def cmd_tasks(args: argparse.Namespace) -> int:
    """Print the server's tasks as a table (or JSON), oldest first."""
    query = {k: v for k, v in (("type", args.type), ("state", args.state)) if v}
    try:
        _, body = _call(args, "GET", "/v1/tasks", query=query)
        tasks = body.get("tasks")
        if not isinstance(tasks, list):
            raise CommandError("the server answered without a task list", EXIT_TRANSIENT)
    except CommandError as exc:
        return _fail(exc.message, exc.code)
    if args.json:
        print(json.dumps(tasks, indent=2, ensure_ascii=False))
    else:
        print(format_tasks(tasks))
    return EXIT_OK


COMMANDS = {"server": cmd_server, "submit": cmd_submit, "tasks": cmd_tasks}
"""`sim_command` -> command function, for the CLI's dispatcher."""


def format_tasks(tasks: list[dict[str, Any]]) -> str:
    """The `tasks` table: id, type, state, attempts, outcome, detail cut to one line."""
    if not tasks:
        return "no tasks"
    header = ("ID", "TYPE", "STATE", "ATTEMPTS", "OUTCOME", "DETAIL")
    rows = [header] + [
        (
            str(t.get("task_id", "?")),
            str(t.get("type", "?")),
            str(t.get("state", "?")),
            str(t.get("attempts", "?")),
            str(t.get("outcome") or "-"),
            one_line(t.get("detail")),
        )
        for t in tasks
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows
    )


def one_line(detail: Any, width: int = DETAIL_WIDTH) -> str:
    """A detail (object, string or null) as one line of at most `width` characters."""
    if detail is None or detail == "" or detail == {}:
        return "-"
    text = detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False)
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= width else text[: width - 1] + "…"


# --- plumbing ---------------------------------------------------------------------------------


def _fail(message: str, code: int) -> int:
    print(f"platesift: error: {message}", file=sys.stderr)
    return code


def _token(args: argparse.Namespace) -> str | None:
    """The bearer token from `--token-file` or the environment; None if there is none."""
    path = getattr(args, "token_file", None)
    if path:
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise CommandError(f"token file {path} does not exist", EXIT_USAGE) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read token file {path}: {exc}", EXIT_USAGE) from None
        if not token or len(token.split()) != 1:
            raise CommandError(f"token file {path} must hold one token on one line", EXIT_USAGE)
        return token
    for name in TOKEN_ENV:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _base_url(args: argparse.Namespace) -> str:
    url = args.server or next((os.environ[n] for n in URL_ENV if os.environ.get(n)), DEFAULT_URL)
    if not url.startswith(("http://", "https://")):
        raise CommandError(f"server URL {url!r} must start with http:// or https://", EXIT_USAGE)
    return str(url).rstrip("/")


def _open_server(args: argparse.Namespace, token: str | None) -> TaskServer:
    try:
        return TaskServer(
            args.host,
            args.port,
            args.db,
            token=token,
            lease_s=args.lease_s,
            max_attempts=args.max_attempts,
        )
    except (TaskStoreError, sqlite3.Error) as exc:
        raise CommandError(f"cannot open task database {args.db}: {exc}", EXIT_USAGE) from None
    except OSError as exc:
        raise CommandError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", EXIT_TRANSIENT
        ) from None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _call(
    args: argparse.Namespace,
    method: str,
    path: str,
    *,
    body: Any = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """One request; `(status, JSON object)` on 2xx, else `CommandError` (4xx -> 2, else 4)."""
    base = _base_url(args)
    token = _token(args)
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    session = requests.Session()
    session.trust_env = False  # no proxy or .netrc credentials picked up silently
    try:
        response = session.request(
            method,
            base + path,
            json=body,
            params=query,
            headers=all_headers,
            timeout=TIMEOUT_S,
        )
    except requests.exceptions.Timeout:
        raise CommandError(
            f"the server at {base} did not answer within {TIMEOUT_S:g} s", EXIT_TRANSIENT
        ) from None
    except requests.exceptions.ConnectionError as exc:
        if "refused" in str(exc) or "NewConnectionError" in str(exc):
            message = f"cannot connect to the server at {base} (is `platesift sim server` running?)"
        else:
            message = f"connection to the server at {base} failed: {_short(exc)}"
        raise CommandError(message, EXIT_TRANSIENT) from None
    except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema) as exc:
        raise CommandError(f"invalid server URL {base!r}: {_short(exc)}", EXIT_USAGE) from None
    except requests.RequestException as exc:
        raise CommandError(f"request to {base} failed: {_short(exc)}", EXIT_TRANSIENT) from None
    finally:
        session.close()
    data: Any = None
    if response.content:
        try:
            data = response.json()
        except ValueError:
            data = None
    status = response.status_code
    if status >= 400:
        error = data.get("error") if isinstance(data, dict) else None
        reason = f"HTTP {status}" + (f": {_short(str(error))}" if error else "")
        if status < 500:
            raise CommandError(f"the server refused {method} {path} ({reason})", EXIT_USAGE)
        raise CommandError(f"the server failed {method} {path} ({reason})", EXIT_TRANSIENT)
    if not isinstance(data, dict):
        raise CommandError(f"the server answered {method} {path} without JSON", EXIT_TRANSIENT)
    return status, data


def _short(exc: object) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


__all__ = [
    "COMMANDS",
    "TOKEN_ENV",
    "URL_ENV",
    "CommandError",
    "add_parsers",
    "cmd_server",
    "cmd_submit",
    "cmd_tasks",
    "format_tasks",
    "one_line",
]
