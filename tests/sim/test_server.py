"""The simulated main server over real HTTP on loopback with a real SQLite file: leases,
long-poll, idempotency, dead-lettering, validation, auth, restart and fault switches.

Nothing sleeps: waits are on futures, on log records (`LogWatcher`) or on a fake clock that
the test advances to expire leases.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from sim.server import MAX_BODY, ROUTES, TaskServer
from tests.conftest import FakeClock

TOKEN = "tok-7f3a9c1e5b2d"
LEASE_S = 30.0
MAX_ATTEMPTS = 3
TYPE = "PREPROCESS_VIDEO"
DOCS = Path(__file__).resolve().parents[2] / "docs"


class LogWatcher(logging.Handler):
    """Collects records of one logger and lets a test wait for a matching one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._cond = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._cond:
            self.records.append(record)
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 5.0) -> logging.LogRecord:
        regex = re.compile(pattern)

        def found() -> logging.LogRecord | None:
            return next((r for r in self.records if regex.search(r.getMessage())), None)

        with self._cond:
            if not self._cond.wait_for(lambda: found() is not None, timeout):
                raise AssertionError(f"no log record matching {pattern!r} within {timeout} s")
            record = found()
            assert record is not None
            return record


@pytest.fixture
def watch() -> Iterator[LogWatcher]:
    watcher = LogWatcher()
    logger = logging.getLogger("sim")
    old_level = logger.level
    logger.addHandler(watcher)
    logger.setLevel(logging.DEBUG)
    yield watcher
    logger.removeHandler(watcher)
    logger.setLevel(old_level)


class Api:
    """A thin `requests` session bound to one server."""

    def __init__(self, url: str, token: str | None = TOKEN) -> None:
        self.url = url
        self.session = requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.post(self.url + path, json=body, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.get(self.url + path, **kwargs)

    def submit(self, payload: dict[str, Any] | None = None, key: str | None = None) -> Any:
        headers = {"Idempotency-Key": key} if key else {}
        r = self.post("/v1/tasks", {"type": TYPE, "payload": payload or {}}, headers=headers)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def pull(self, worker: str = "w1", wait_s: float = 0, types: list[str] | None = None) -> Any:
        body = {"types": types or [TYPE], "worker": worker, "wait_s": wait_s}
        r = self.post("/v1/tasks/pull", body, timeout=wait_s + 10)
        if r.status_code == 204:
            assert r.content == b""
            return None
        assert r.status_code == 200, r.text
        return r.json()

    def task(self, task_id: str) -> Any:
        r = self.get(f"/v1/tasks/{task_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def tasks(self, query: str = "") -> list[Any]:
        r = self.get(f"/v1/tasks{query}")
        assert r.status_code == 200, r.text
        tasks = r.json()["tasks"]
        assert isinstance(tasks, list)
        return tasks


def error_of(r: requests.Response) -> str:
    body = r.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str) and "\n" not in body["error"] and body["error"]
    return str(body["error"])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., TaskServer]]:
    servers: list[TaskServer] = []

    def make(**kwargs: Any) -> TaskServer:
        options: dict[str, Any] = {
            "token": TOKEN,
            "lease_s": LEASE_S,
            "max_attempts": MAX_ATTEMPTS,
        }
        options.update(kwargs)
        server = TaskServer("127.0.0.1", 0, tmp_path / "tasks.db", **options)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., TaskServer], clock: FakeClock) -> TaskServer:
    return make_server(clock=clock)


@pytest.fixture
def api(server: TaskServer) -> Api:
    return Api(server.url)


# --- the happy path ---------------------------------------------------------------------------


def test_submit_pull_extend_complete(api: Api) -> None:
    task = api.submit({"video": "cam1/a.mp4", "params": {}})
    assert re.fullmatch(r"t-[0-9a-f]{12}", task["task_id"])
    assert task["state"] == "pending" and task["attempts"] == 0
    assert task["payload"] == {"video": "cam1/a.mp4", "params": {}}
    assert task["outcome"] is None and task["detail"] is None and task["idempotency_key"] is None
    assert task["created_at"].endswith("Z")

    lease = api.pull()
    assert set(lease) == {"task_id", "type", "payload", "lease_id", "attempt", "expires_in_s"}
    assert lease["task_id"] == task["task_id"] and lease["type"] == TYPE
    assert lease["payload"] == task["payload"]
    assert lease["attempt"] == 1 and lease["expires_in_s"] == LEASE_S
    assert api.task(task["task_id"])["state"] == "leased"
    assert api.pull(worker="w2") is None  # invisible to others while leased

    r = api.post(f"/v1/leases/{lease['lease_id']}/extend")
    assert r.status_code == 200 and r.json() == {"expires_in_s": LEASE_S}

    r = api.post(
        f"/v1/leases/{lease['lease_id']}/complete", {"outcome": "done", "detail": {"frames": 3}}
    )
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["state"] == "done" and done["outcome"] == "done"
    assert done["detail"] == {"frames": 3} and done["attempts"] == 1
    assert api.tasks("?state=done") == [done]
    assert api.tasks("?state=pending") == []
    assert api.pull() is None


def test_oldest_pending_first_and_types_filter(api: Api) -> None:
    first = api.submit({"n": 1})
    r = api.post("/v1/tasks", {"type": "HEAVY_PROCESS", "payload": {"n": 2}})
    assert r.status_code == 201
    heavy = r.json()
    third = api.submit({"n": 3})
    assert [t["task_id"] for t in api.tasks()] == [
        first["task_id"],
        heavy["task_id"],
        third["task_id"],
    ]
    assert [t["task_id"] for t in api.tasks(f"?type={TYPE}")] == [
        first["task_id"],
        third["task_id"],
    ]
    assert api.pull()["task_id"] == first["task_id"]
    assert api.pull()["task_id"] == third["task_id"]
    assert api.pull() is None
    assert api.pull(types=["HEAVY_PROCESS", TYPE])["task_id"] == heavy["task_id"]


def test_empty_queue_answers_204_at_once(api: Api) -> None:
    started = time.monotonic()
    r = api.post("/v1/tasks/pull", {"types": [TYPE], "worker": "w1", "wait_s": 0})
    assert r.status_code == 204 and r.content == b""
    assert time.monotonic() - started < 2


def test_get_unknown_task_is_404(api: Api) -> None:
    r = api.get("/v1/tasks/t-000000000000")
    assert r.status_code == 404 and "t-000000000000" in error_of(r)


# --- long-poll ----------------------------------------------------------------------------------


def test_long_poll_returns_as_soon_as_a_task_is_submitted(api: Api, watch: LogWatcher) -> None:
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        future = pool.submit(Api(api.url).pull, "waiter", 15)
        watch.wait_for(r"pull by waiter waits")  # the pull is parked on the condition
        task = api.submit({"video": "x.mp4"})
        lease = future.result(timeout=10)
    assert lease["task_id"] == task["task_id"]
    assert time.monotonic() - started < 10  # well before its 15 s wait ran out


def test_long_poll_returns_when_a_lease_expires(
    make_server: Callable[..., TaskServer], watch: LogWatcher
) -> None:
    # Real time, a 0.3 s lease: the waiting pull is woken by the expiry, not by a submit.
    api = Api(make_server(lease_s=0.3).url)
    task = api.submit({"video": "x.mp4"})
    assert api.pull(worker="crashed")["attempt"] == 1
    lease = api.pull(worker="w2", wait_s=10)
    assert lease is not None and lease["task_id"] == task["task_id"] and lease["attempt"] == 2


def test_long_poll_with_nothing_coming_times_out_with_204(api: Api) -> None:
    started = time.monotonic()
    assert api.pull(wait_s=0.3) is None
    assert 0.25 <= time.monotonic() - started < 5


# --- leases -------------------------------------------------------------------------------------


def test_expired_lease_makes_the_task_pullable_again(
    api: Api, server: TaskServer, clock: FakeClock
) -> None:
    task = api.submit({"video": "x.mp4"})
    old = api.pull(worker="slow")
    clock.advance(LEASE_S - 1)
    assert api.pull(worker="w2") is None  # not yet expired
    clock.advance(2)
    new = api.pull(worker="w2")
    assert new["task_id"] == task["task_id"]
    assert new["attempt"] == 2 and new["lease_id"] != old["lease_id"]

    for action, body in (("extend", None), ("complete", {"outcome": "done", "detail": "late"})):
        r = api.post(f"/v1/leases/{old['lease_id']}/{action}", body)
        assert r.status_code == 409, r.text
        assert "expired" in error_of(r)
    r = api.post(f"/v1/leases/{new['lease_id']}/complete", {"outcome": "done", "detail": "ok"})
    assert r.status_code == 200 and r.json()["attempts"] == 2 and r.json()["detail"] == "ok"
    history = server.store.leases(task["task_id"])
    assert [(h["worker"], h["end_reason"]) for h in history] == [
        ("slow", "expired"),
        ("w2", "completed"),
    ]


def test_extend_keeps_the_lease_alive(api: Api, clock: FakeClock) -> None:
    api.submit({"video": "x.mp4"})
    lease = api.pull()
    for _ in range(3):
        clock.advance(LEASE_S - 1)
        assert api.post(f"/v1/leases/{lease['lease_id']}/extend", {}).status_code == 200
    assert api.pull(worker="w2") is None
    clock.advance(LEASE_S)
    assert api.pull(worker="w2")["attempt"] == 2


def test_expired_lease_that_nobody_pulled_is_still_lost(api: Api, clock: FakeClock) -> None:
    task = api.submit({"video": "x.mp4"})
    lease = api.pull()
    clock.advance(LEASE_S + 1)
    r = api.post(f"/v1/leases/{lease['lease_id']}/complete", {"outcome": "done"})
    assert r.status_code == 409
    assert api.task(task["task_id"])["state"] == "pending"


def test_unknown_lease_is_409(api: Api) -> None:
    for action, body in (("extend", None), ("complete", {"outcome": "done"})):
        r = api.post(f"/v1/leases/l-nope/{action}", body)
        assert r.status_code == 409 and "unknown" in error_of(r)


def test_two_concurrent_pullers_never_get_the_same_task(api: Api) -> None:
    submitted = {api.submit({"n": i})["task_id"] for i in range(30)}
    barrier = threading.Barrier(6)

    def drain(worker: str) -> list[str]:
        client = Api(api.url)
        barrier.wait(timeout=10)
        got = []
        while (lease := client.pull(worker=worker)) is not None:
            got.append(lease["task_id"])
        return got

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(drain, [f"w{i}" for i in range(6)], timeout=30))
    pulled = [t for r in results for t in r]
    assert len(pulled) == len(set(pulled)) == 30
    assert set(pulled) == submitted


def test_complete_is_idempotent(api: Api) -> None:
    api.submit({"video": "x.mp4"})
    lease = api.pull()
    path = f"/v1/leases/{lease['lease_id']}/complete"
    first = api.post(path, {"outcome": "rejected", "detail": {"error": "not a video"}})
    again = api.post(path, {"outcome": "rejected", "detail": {"error": "different"}})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()  # the replay changes nothing
    assert first.json()["state"] == "rejected"
    other = api.post(path, {"outcome": "done"})
    assert other.status_code == 409 and "already completed as rejected" in error_of(other)
    assert api.post(f"/v1/leases/{lease['lease_id']}/extend").status_code == 409


def test_max_attempts_sends_the_task_to_dead(api: Api, clock: FakeClock) -> None:
    task = api.submit({"video": "poison.mp4"})
    leases = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        lease = api.pull()
        assert lease["attempt"] == attempt
        leases.append(lease)
        clock.advance(LEASE_S + 1)
    assert api.pull() is None
    dead = api.task(task["task_id"])
    assert dead["state"] == "dead" and dead["attempts"] == MAX_ATTEMPTS
    assert "dead" in dead["detail"]
    assert api.tasks("?state=dead") == [dead]
    r = api.post(f"/v1/leases/{leases[-1]['lease_id']}/complete", {"outcome": "done"})
    assert r.status_code == 409 and "dead" in error_of(r)


# --- idempotency ---------------------------------------------------------------------------------


def test_idempotency_key(api: Api) -> None:
    payload = {"video": "x.mp4", "params": {"motion.threshold": 25, "a": [1, 2]}}
    headers = {"Idempotency-Key": "job-42"}
    r1 = api.post("/v1/tasks", {"type": TYPE, "payload": payload}, headers=headers)
    assert r1.status_code == 201
    assert r1.json()["idempotency_key"] == "job-42"
    # Same content (key order does not matter): 200 with the original task.
    reordered = {"params": {"a": [1, 2], "motion.threshold": 25}, "video": "x.mp4"}
    r2 = api.post("/v1/tasks", {"type": TYPE, "payload": reordered}, headers=headers)
    assert r2.status_code == 200 and r2.json() == r1.json()
    # Same key, different content: 422.
    r3 = api.post("/v1/tasks", {"type": TYPE, "payload": {"video": "y.mp4"}}, headers=headers)
    assert r3.status_code == 422 and "job-42" in error_of(r3)
    r4 = api.post("/v1/tasks", {"type": "HEAVY_PROCESS", "payload": payload}, headers=headers)
    assert r4.status_code == 422
    assert len(api.tasks()) == 1
    # Without a key every submit is a new task.
    api.submit(payload)
    api.submit(payload)
    assert len(api.tasks()) == 3


def test_idempotent_replay_after_the_task_finished(api: Api) -> None:
    task = api.submit({"video": "x.mp4"}, key="k")
    lease = api.pull()
    api.post(f"/v1/leases/{lease['lease_id']}/complete", {"outcome": "done"})
    r = api.post(
        "/v1/tasks", {"type": TYPE, "payload": {"video": "x.mp4"}}, headers={"Idempotency-Key": "k"}
    )
    assert r.status_code == 200
    assert r.json()["task_id"] == task["task_id"] and r.json()["state"] == "done"
    assert api.pull() is None


# --- auth ---------------------------------------------------------------------------------------


def test_auth(server: TaskServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + TOKEN
    for token in (None, wrong):
        client = Api(server.url, token=token)
        for r in (
            client.get("/v1/tasks"),
            client.post("/v1/tasks/pull", {"types": [TYPE], "worker": "w"}),
            client.post("/v1/admin/faults", {"mode": "error500", "count": 1}),
            client.get("/v1/nope"),
        ):
            assert r.status_code == 401, r.text
            assert r.headers["WWW-Authenticate"] == "Bearer"
            error_of(r)
    basic = requests.get(server.url + "/v1/tasks", headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401
    good = Api(server.url)
    assert good.get("/v1/tasks").status_code == 200
    good.submit({"video": "x.mp4"})
    assert good.pull() is not None
    # One line per request was logged, and the token is in none of them.
    assert any("GET /v1/tasks 401" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
    assert TOKEN not in caplog.text


def test_no_token_server_accepts_anyone(make_server: Callable[..., TaskServer]) -> None:
    server = make_server(token=None)
    assert requests.get(server.url + "/v1/tasks", timeout=10).status_code == 200


# --- validation ---------------------------------------------------------------------------------

PULL = "/v1/tasks/pull"
SUBMIT = "/v1/tasks"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (PULL, b"{not json", "JSON"),
        (PULL, b"[1, 2]", "object"),
        (PULL, b"", "body"),
        (PULL, b'{"worker": "w"}', "'types'"),
        (PULL, b'{"types": [], "worker": "w"}', "'types'"),
        (PULL, b'{"types": "PREPROCESS_VIDEO", "worker": "w"}', "'types'"),
        (PULL, b'{"types": [5], "worker": "w"}', "'types'"),
        (PULL, b'{"types": ["PREPROCESS_VIDEO"]}', "'worker'"),
        (PULL, b'{"types": ["PREPROCESS_VIDEO"], "worker": 7}', "'worker'"),
        (PULL, b'{"types": ["PREPROCESS_VIDEO"], "worker": "a\\nb"}', "'worker'"),
        (PULL, b'{"types": ["PREPROCESS_VIDEO"], "worker": "w", "wait_s": "5"}', "'wait_s'"),
        (PULL, b'{"types": ["PREPROCESS_VIDEO"], "worker": "w", "wait_s": true}', "'wait_s'"),
        (PULL, b'{"types": ["PREPROCESS_VIDEO"], "worker": "w", "wait_s": 21}', "'wait_s'"),
        (PULL, b'{"types": ["PREPROCESS_VIDEO"], "worker": "w", "wait_s": -1}', "'wait_s'"),
        (PULL, b'{"types": ["PREPROCESS_VIDEO"], "worker": "w", "wait_s": NaN}', "JSON"),
        (PULL, b'{"types": ["PREPROCESS_VIDEO"], "worker": "w", "extra": 1}', "'extra'"),
        (SUBMIT, b'{"payload": {}}', "'type'"),
        (SUBMIT, b'{"type": "PREPROCESS_VIDEO"}', "'payload'"),
        (SUBMIT, b'{"type": "PREPROCESS_VIDEO", "payload": [1]}', "'payload'"),
        (SUBMIT, b'{"type": "has space", "payload": {}}', "'type'"),
        (SUBMIT, b'{"type": 3, "payload": {}}', "'type'"),
        (SUBMIT, b"\xff\xfe", "JSON"),
        ("/v1/leases/l-x/complete", b'{"detail": "x"}', "'outcome'"),
        ("/v1/leases/l-x/complete", b'{"outcome": "maybe"}', "'outcome'"),
        ("/v1/leases/l-x/complete", b'{"outcome": "done", "detail": 5}', "'detail'"),
        ("/v1/leases/l-x/extend", b'{"for": 10}', "'for'"),
        ("/v1/admin/faults", b'{"mode": "explode"}', "'mode'"),
        ("/v1/admin/faults", b'{"mode": "close", "count": "2"}', "'count'"),
    ],
)
def test_bad_requests_are_400_naming_the_field(
    api: Api, path: str, body: bytes, field: str
) -> None:
    r = api.session.post(
        api.url + path, data=body, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert r.status_code == 400, r.text
    assert field in error_of(r)


def test_bad_query_and_headers(api: Api) -> None:
    r = api.get("/v1/tasks?state=sleeping")
    assert r.status_code == 400 and "'state'" in error_of(r)
    r = api.get("/v1/tasks?colour=red")
    assert r.status_code == 400 and "'colour'" in error_of(r)
    r = api.post("/v1/tasks", {"type": TYPE, "payload": {}}, headers={"Idempotency-Key": "k" * 201})
    assert r.status_code == 400 and "Idempotency-Key" in error_of(r)
    assert api.tasks() == []


def test_unknown_path_wrong_method_and_big_body(api: Api) -> None:
    r = api.get("/v1/nope")
    assert r.status_code == 404 and "/v1/nope" in error_of(r)
    r = api.get("/")
    assert r.status_code == 404
    r = api.session.delete(api.url + "/v1/tasks", timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "POST, GET"
    error_of(r)
    r = api.get("/v1/tasks/pull")  # exists only as POST... but matches GET /v1/tasks/{task_id}
    assert r.status_code == 404
    r = api.get("/v1/leases/l-x/complete")
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    r = api.session.request("BREW", api.url + "/v1/tasks", timeout=10)
    assert r.status_code == 501
    error_of(r)
    big = b'{"type": "PREPROCESS_VIDEO", "payload": {"x": "' + b"a" * (2 * MAX_BODY) + b'"}}'
    r = api.session.post(api.url + "/v1/tasks", data=big, timeout=10)
    assert r.status_code == 413 and "larger" in error_of(r)
    assert api.tasks() == []  # a fresh connection works and nothing was stored


def test_keep_alive_survives_errors_with_bodies(api: Api) -> None:
    """An error answered before the body was read must not leave the body on the wire."""
    no_auth = requests.Session()
    r = no_auth.post(api.url + "/v1/tasks", json={"type": TYPE, "payload": {"x": "y" * 5000}})
    assert r.status_code == 401
    r = no_auth.post(api.url + "/v1/nope", json={"x": 1})
    assert r.status_code == 401
    no_auth.headers["Authorization"] = f"Bearer {TOKEN}"
    assert no_auth.post(api.url + "/v1/nope", json={"x": 1}).status_code == 404
    assert no_auth.get(api.url + "/v1/tasks").status_code == 200


def test_unexpected_exception_is_a_one_line_500(
    api: Api, server: TaskServer, monkeypatch: pytest.MonkeyPatch, watch: LogWatcher
) -> None:
    def boom(**kwargs: Any) -> Any:
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(server.store, "list", boom)
    r = api.get("/v1/tasks")
    assert r.status_code == 500
    assert error_of(r) == "internal error: RuntimeError: disk on fire"
    record = watch.wait_for(r"GET /v1/tasks failed")
    assert record.exc_info is not None  # the traceback is in the server log
    monkeypatch.undo()
    assert api.get("/v1/tasks").status_code == 200


# --- restart ------------------------------------------------------------------------------------


def test_restart_keeps_tasks_keys_and_gives_leases_a_fresh_period(
    make_server: Callable[..., TaskServer],
) -> None:
    clock1 = FakeClock()
    first = make_server(clock=clock1)
    api = Api(first.url)
    kept = api.submit({"video": "a.mp4"}, key="k-a")
    leased = api.submit({"video": "b.mp4"}, key="k-b")
    assert api.pull()["task_id"] == kept["task_id"]  # leased, then the server dies
    first.stop()

    clock2 = FakeClock()
    clock2.now = 5.0  # a new process: the monotonic clock has nothing to do with the old one
    second = make_server(clock=clock2)
    api = Api(second.url)
    assert [t["task_id"] for t in api.tasks()] == [kept["task_id"], leased["task_id"]]
    assert api.task(kept["task_id"])["state"] == "leased"
    again = api.post(
        "/v1/tasks",
        {"type": TYPE, "payload": {"video": "b.mp4"}},
        headers={"Idempotency-Key": "k-b"},
    )
    assert again.status_code == 200 and again.json()["task_id"] == leased["task_id"]
    conflict = api.post(
        "/v1/tasks",
        {"type": TYPE, "payload": {"video": "c.mp4"}},
        headers={"Idempotency-Key": "k-a"},
    )
    assert conflict.status_code == 422
    # The outstanding lease lives a full lease period from the restart, then expires.
    assert api.pull()["task_id"] == leased["task_id"]
    clock2.advance(LEASE_S - 1)
    assert api.pull() is None
    clock2.advance(2)
    relet = api.pull()
    assert relet["task_id"] == kept["task_id"] and relet["attempt"] == 2
    fresh = api.submit({"video": "d.mp4"})
    assert fresh["task_id"] not in {kept["task_id"], leased["task_id"]}


# --- shutdown and faults -----------------------------------------------------------------------


def test_stop_releases_a_long_poll(
    make_server: Callable[..., TaskServer], watch: LogWatcher
) -> None:
    server = make_server()
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(
            Api(server.url).post, PULL, {"types": [TYPE], "worker": "w", "wait_s": 20}
        )
        watch.wait_for(r"pull by w waits")
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 5
        r = future.result(timeout=10)
    assert r.status_code == 503 and "shutting down" in error_of(r)


def test_fault_error500_then_normal(api: Api) -> None:
    r = api.post("/v1/admin/faults", {"mode": "error500", "count": 2})
    assert r.status_code == 200 and r.json() == {"mode": "error500", "count": 2}
    assert [api.get("/v1/tasks").status_code for _ in range(3)] == [500, 500, 200]
    r = api.post("/v1/admin/faults", {"mode": "error500", "count": 5})
    assert api.get("/v1/tasks").status_code == 500
    assert api.post("/v1/admin/faults", {"mode": "none"}).json() == {"mode": "none", "count": 0}
    assert api.get("/v1/tasks").status_code == 200


def test_fault_close_drops_the_connection(api: Api) -> None:
    assert api.post("/v1/admin/faults", {"mode": "close", "count": 1}).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.post(
            api.url + "/v1/tasks",
            json={"type": TYPE, "payload": {}},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
    assert api.tasks() == []  # the dropped submit did nothing
    assert api.submit({"video": "x.mp4"})["state"] == "pending"


def test_fault_stall_is_cut_short_by_stop(
    make_server: Callable[..., TaskServer], watch: LogWatcher
) -> None:
    server = make_server()
    api = Api(server.url)
    assert api.post("/v1/admin/faults", {"mode": "stall", "count": 1}).status_code == 200
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(Api(server.url).get, "/v1/tasks")
        watch.wait_for(r"injected fault: stall")
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 5
        r = future.result(timeout=10)
    assert r.status_code == 503 and "stall" in error_of(r)


# --- docs ---------------------------------------------------------------------------------------


def test_every_route_is_documented() -> None:
    spec = (DOCS / "openapi.yaml").read_text()
    prose = (DOCS / "protocol.md").read_text()
    assert spec.startswith("openapi: 3.1")
    for method, template, _ in ROUTES:
        assert f"\n  {template}:\n" in spec, template
        assert re.search(rf"\n    {method.lower()}:\n", spec)
        assert f"{method} {template}" in prose, f"{method} {template} missing from protocol.md"
    for status in ("200", "201", "204", "400", "401", "404", "409", "413", "422", "503"):
        assert f'"{status}":' in spec, status
    for status in ("200", "201", "204", "400", "401", "404", "405", "409", "413", "422", "500"):
        assert f"`{status}`" in prose, status


def test_the_fault_modes_and_the_heavy_payload_are_in_the_spec() -> None:
    import json

    from platesift.artifact_schemas import SCHEMA_DIR
    from sim.server import FAULT_MODES

    spec = (DOCS / "openapi.yaml").read_text()
    assert f"enum: [{', '.join(FAULT_MODES)}]" in spec
    heavy = spec[spec.index("    HeavyProcessPayload:") : spec.index("    Faults:")]
    schema = json.loads((SCHEMA_DIR / "heavy_task.schema.json").read_text())
    fields = schema["properties"]["payload"]["properties"]
    assert sorted(fields) == sorted(
        ["source_task_id", "video", "artifacts", "counts", "metadata", "manifest_sha256"]
    )
    for field in fields:
        assert f"\n        {field}:" in heavy, field
