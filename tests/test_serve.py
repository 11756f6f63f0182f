"""`platesift serve` against the real reference server on loopback and a real NAS folder,
with real worker processes (killed for real where the test says so). No mocked HTTP."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from platesift.app.service import Service
from platesift.artifacts import idempotency_key, verify_artifact_dir
from platesift.config import load_settings
from platesift.scratch import is_empty
from sim.scenes import preset, render
from sim.server import TaskServer
from tests.conftest import wait_until

pytestmark = pytest.mark.slow  # `make check` leaves it out; `make test` runs it

PLATESIFT = str(Path(sys.executable).with_name("platesift"))
TOKEN = "test-token-0123456789"


@dataclasses.dataclass
class System:
    server: TaskServer
    nas: Path
    config: Path
    root: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    def submit(self, payload: Any, type_: str = "PREPROCESS_VIDEO") -> str:
        r = requests.post(
            f"{self.server.url}/v1/tasks",
            headers=self.headers,
            timeout=10,
            json={"type": type_, "payload": payload},
        )
        assert r.status_code == 201, r.text
        return str(r.json()["task_id"])

    def tasks(self, **query: str) -> list[dict[str, Any]]:
        r = requests.get(
            f"{self.server.url}/v1/tasks", headers=self.headers, params=query, timeout=10
        )
        return list(r.json()["tasks"])

    def task(self, task_id: str) -> dict[str, Any]:
        return dict(
            requests.get(
                f"{self.server.url}/v1/tasks/{task_id}", headers=self.headers, timeout=10
            ).json()
        )

    def heavy(self) -> list[dict[str, Any]]:
        return self.tasks(type="HEAVY_PROCESS")

    def serve(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            capture_output=True,
            text=True,
            env=self.env(env),
            timeout=timeout,
            check=False,
        )

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """A `platesift serve` process running in the background."""
        return subprocess.Popen(
            self.command(*args),
            env=self.env(env),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def command(self, *args: str) -> list[str]:
        return [PLATESIFT, "serve", "--config", str(self.config), *args]

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLATESIFT_")}
        env["PLATESIFT_SERVER__TOKEN"] = TOKEN
        env.update(extra or {})
        return env

    def artifacts(self, task_id: str) -> Path:
        return self.nas / "artifacts" / task_id


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    spec = preset("street", seconds=3.0, width=320, height=180)
    return {
        "short": _render(root / "short.mp4", spec),
        "long": _render(root / "long.mp4", dataclasses.replace(spec, seconds=40.0)),
        "car": _render(root / "car.mp4", dataclasses.replace(spec, seconds=8.0)),
    }


def _render(path: Path, spec: Any) -> Path:
    render(spec, path)
    return path


@pytest.fixture
def system(tmp_path: Path, videos: dict[str, Path]) -> Iterator[System]:
    nas = tmp_path / "nas"
    (nas / "cams").mkdir(parents=True)
    for name, video in videos.items():
        os.link(video, nas / "cams" / f"{name}.mp4")
    server = TaskServer("127.0.0.1", 0, tmp_path / "tasks.db", token=TOKEN, lease_s=3.0)
    server.start()
    config = tmp_path / "platesift.toml"
    config.write_text(
        f'[paths]\nnas_root = "{nas}"\nscratch = "{tmp_path / "scratch"}"\n'
        f'journal = "{tmp_path / "journal.db"}"\n'
        f'[server]\nurl = "{server.url}"\nwait_s = 1.0\nbackoff_max_s = 0.5\n'
        "[analysis]\nwidth = 320\n"
    )
    yield System(server, nas, config, tmp_path)
    server.stop()


def digest(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def test_happy_path_with_sidecar(system: System) -> None:
    sidecar = system.nas / "cams" / "short.mp4.json"
    sidecar.write_text(json.dumps({"camera": "gate-1", "lane": 2}))
    task_id = system.submit({"video": "cams/short.mp4"})
    result = system.serve("--drain")
    assert result.returncode == 0, result.stderr
    task = system.task(task_id)
    assert task["state"] == "done" and task["attempts"] == 1
    heavy = system.heavy()
    assert len(heavy) == 1
    payload = heavy[0]["payload"]
    out = system.artifacts(task_id)
    assert verify_artifact_dir(out) == []
    manifest = (out / "manifest.json").read_bytes()
    assert payload["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
    assert payload["source_task_id"] == task_id
    assert payload["video"] == "cams/short.mp4"
    assert payload["artifacts"] == f"artifacts/{task_id}"
    assert payload["metadata"] == {"camera": "gate-1", "lane": 2}
    assert json.loads(manifest)["metadata"] == {"camera": "gate-1", "lane": 2}
    assert task["detail"]["heavy_task_id"] == heavy[0]["task_id"]
    assert is_empty(system.root / "scratch")
    assert TOKEN not in result.stdout + result.stderr


BAD_TASKS: list[tuple[Any, str]] = [
    ({"video": "../outside.mp4"}, ".."),
    ({"video": "/etc/passwd"}, "outside"),
    ({"video": "cams/nope.mp4"}, "does not exist"),
    ({"video": "cams/notes.mp4"}, "not a video"),
    ({"video": "cams/short.mp4", "params": {"motion.threshold": -1}}, "at least"),
    ({"video": "cams/short.mp4", "params": {"motion.treshold": 5}}, "did you mean"),
    ({"video": "cams/short.mp4", "params": {"proposer.backend": "none"}}, "per task"),
    ({"video": "cams/short.mp4", "params": {"resources.chunk_mb": 1024}}, "per task"),
    ({"video": "cams/short.mp4", "params": {"analysis.prefetch_chunks": 8}}, "is now resources"),
    ({"video": "cams/short.mp4", "params": "fast"}, "params"),
    ({"video": 42}, "video"),
    ({"camera": "gate-1"}, 'needs \\"video\\"'),
    ({"video": "cams/" + "v" * 300 + ".mp4"}, "too long"),
]
LONGEST_NAME = "v" * 251 + ".mp4"  # 255 bytes: legal, but "<name>.json" (its sidecar) is not


def test_bad_tasks_are_rejected_with_a_reason_and_the_service_keeps_going(
    system: System,
) -> None:
    (system.nas.parent / "outside.mp4").write_bytes(b"x" * 100)
    (system.nas / "cams" / "notes.mp4").write_text("not a video\n" * 100)
    bad = [(system.submit(payload), why) for payload, why in BAD_TASKS]
    other = system.submit({"video": "cams/short.mp4"}, type_="UNKNOWN_TYPE")
    good = system.submit({"video": "cams/short.mp4"})
    shutil.copy(system.nas / "cams" / "short.mp4", system.nas / "cams" / LONGEST_NAME)
    longest = system.submit({"video": f"cams/{LONGEST_NAME}"})
    result = system.serve("--drain")
    assert result.returncode == 0, result.stderr
    assert system.task(longest)["state"] == "done"
    assert system.task(longest)["attempts"] == 1
    for task_id, why in bad:
        task = system.task(task_id)
        assert task["state"] == "rejected", task
        assert why in json.dumps(task["detail"]), (why, task["detail"])
        assert not system.artifacts(task_id).exists()  # no empty directory left either
    assert system.task(other)["state"] == "pending"  # never pulled: not our type
    assert system.task(good)["state"] == "done"
    assert len(system.heavy()) == 2
    assert not (system.nas.parent / "artifacts").exists()


@pytest.mark.parametrize("point", ["after_manifest", "after_publish", "before_complete"])
def test_killed_at_the_worst_moments_then_restarted(system: System, point: str) -> None:
    task_id = system.submit({"video": "cams/short.mp4"})
    crashed = system.serve("--once", env={"PLATESIFT_FAILPOINTS": f"{point}=kill"})
    assert crashed.returncode == -signal.SIGKILL
    assert system.task(task_id)["state"] == "leased"
    first = digest(system.artifacts(task_id))
    assert len(system.heavy()) == (0 if point == "after_manifest" else 1)
    # A second worker (a fresh process) pulls it again once the lease has expired.
    again = system.serve("--once")
    assert again.returncode == 0, again.stderr
    task = system.task(task_id)
    assert task["state"] == "done" and task["attempts"] == 2
    heavy = system.heavy()
    assert len(heavy) == 1
    manifest_sha = hashlib.sha256((system.artifacts(task_id) / "manifest.json").read_bytes())
    assert heavy[0]["idempotency_key"] == idempotency_key(task_id, manifest_sha.hexdigest())
    assert digest(system.artifacts(task_id)) == first
    assert verify_artifact_dir(system.artifacts(task_id)) == []


def test_a_retry_whose_bytes_changed_publishes_anew_and_completes(system: System) -> None:
    # attempt 1 published its heavy task and died; attempt 2 runs a platesift whose output
    # differs (an upgrade, imitated by another motion threshold): no 422, no rejection
    task_id = system.submit({"video": "cams/short.mp4"})
    crashed = system.serve("--once", env={"PLATESIFT_FAILPOINTS": "after_publish=kill"})
    assert crashed.returncode == -signal.SIGKILL
    first = system.heavy()
    assert len(first) == 1
    again = system.serve("--once", env={"PLATESIFT_MOTION__THRESHOLD": "40"})
    assert again.returncode == 0, again.stderr
    task = system.task(task_id)
    assert task["state"] == "done" and task["attempts"] == 2, task
    heavy = system.heavy()
    assert len(heavy) == 2
    sha = hashlib.sha256((system.artifacts(task_id) / "manifest.json").read_bytes()).hexdigest()
    current = [h for h in heavy if h["payload"]["manifest_sha256"] == sha]
    assert len(current) == 1 and current[0]["task_id"] == task["detail"]["heavy_task_id"]
    assert first[0]["payload"]["manifest_sha256"] != sha  # superseded, and says so


def test_two_workers_never_process_the_same_task(system: System) -> None:
    ids = [system.submit({"video": "cams/short.mp4"}) for _ in range(4)]
    procs = [
        system.spawn("--drain", env={"PLATESIFT_PATHS__SCRATCH": str(system.root / n)})
        for n in ("scratch-a", "scratch-b")
    ]
    try:
        for proc in procs:
            assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()  # never leave a worker behind when the test fails
    for task_id in ids:
        task = system.task(task_id)
        assert task["state"] == "done" and task["attempts"] == 1
    heavy = system.heavy()
    assert sorted(h["payload"]["source_task_id"] for h in heavy) == sorted(ids)


def held_mid_task(system: System) -> tuple[dict[str, str], Path]:
    """The environment that holds a task after its first chunk, and the file that says it is
    there: the test acts on a task that is surely under way, however fast the machine."""
    held = system.root / "held-mid-task"
    return {"PLATESIFT_FAILPOINTS": f"mid_task=hold:{held}"}, held


def test_sigterm_stops_quickly_and_leaves_the_task_to_lease_expiry(system: System) -> None:
    task_id = system.submit({"video": "cams/long.mp4"})
    env, held = held_mid_task(system)
    proc = system.spawn(env=env)
    assert wait_until(held.exists)
    assert system.task(task_id)["state"] == "leased"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert system.task(task_id)["state"] == "leased"
    assert "retrying" not in (proc.stderr.read() if proc.stderr else "")
    assert system.heavy() == []
    assert not (system.artifacts(task_id) / "manifest.json").exists()


def test_a_second_service_on_the_same_scratch_refuses(system: System) -> None:
    task_id = system.submit({"video": "cams/long.mp4"})
    env, held = held_mid_task(system)
    first = system.spawn(env=env)
    try:
        assert wait_until(held.exists)
        assert system.task(task_id)["state"] == "leased"
        staged = sorted((system.root / "scratch").rglob("*"))
        second = system.serve("--drain", timeout=30)
        assert second.returncode == 2
        assert "in use by another platesift service" in second.stderr
        assert sorted((system.root / "scratch").rglob("*")) == staged  # nothing wiped
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=10) == 0


def test_sigterm_while_idle_is_a_clean_stop(system: System) -> None:
    from journal import Journal

    proc = system.spawn()  # no task: the worker sits in a long-poll
    assert wait_until(lambda: any(e == "boot" for _, e, _ in journal_events(system)))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    with Journal.open_existing(system.root / "journal.db") as journal:
        assert not [e for e in journal.tail(50) if e.event == "backoff"]


def test_wrong_token_stops_at_once(system: System) -> None:
    system.submit({"video": "cams/short.mp4"})
    result = system.serve("--drain", env={"PLATESIFT_SERVER__TOKEN": "wrong"}, timeout=30)
    assert result.returncode == 2
    assert "401" in result.stderr and "wrong" not in result.stderr


def test_a_token_revoked_mid_task_stops_the_service_and_leaves_the_task(system: System) -> None:
    """401 at the publish is the service's fault, not the task's: exit 2, nothing rejected."""
    task_id = system.submit({"video": "cams/short.mp4"})
    env, held = held_mid_task(system)
    proc = system.spawn(env=env)
    admin = f"{system.server.url}/v1/admin/faults"
    try:
        assert wait_until(held.exists)
        r = requests.post(
            admin, headers=system.headers, json={"mode": "unauthorized", "count": 1000}, timeout=10
        )
        assert r.status_code == 200, r.text
        held.unlink()
        assert proc.wait(timeout=30) == 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    requests.post(admin, headers=system.headers, json={"mode": "none"}, timeout=10)
    stderr = proc.stderr.read() if proc.stderr else ""
    assert "401" in stderr and "stopping" in stderr, stderr
    assert system.task(task_id)["state"] == "leased"  # neither rejected nor done: left for later
    assert system.heavy() == []
    assert "fatal" in [e for _, e, _ in journal_events(system)]


def test_server_errors_and_dropped_connections_are_survived(system: System) -> None:
    task_id = system.submit({"video": "cams/short.mp4"})
    admin = f"{system.server.url}/v1/admin/faults"
    r = requests.post(
        admin, headers=system.headers, json={"mode": "error500", "count": 3}, timeout=10
    )
    assert r.status_code == 200, r.text
    result = system.serve("--once", timeout=60)
    assert result.returncode == 0, result.stderr
    second = system.submit({"video": "cams/short.mp4"})
    requests.post(admin, headers=system.headers, json={"mode": "close", "count": 2}, timeout=10)
    assert system.serve("--once", timeout=60).returncode == 0
    assert system.task(task_id)["state"] == "done"
    assert system.task(second)["state"] == "done"
    assert len(system.heavy()) == 2


def test_a_lost_lease_stops_the_work_and_publishes_nothing(
    tmp_path: Path, videos: dict[str, Path]
) -> None:
    now = [0.0]
    nas = tmp_path / "nas"
    (nas / "cams").mkdir(parents=True)
    os.link(videos["long"], nas / "cams" / "long.mp4")
    with TaskServer(
        "127.0.0.1", 0, tmp_path / "t.db", token=TOKEN, lease_s=0.6, clock=lambda: now[0]
    ) as server:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        task_id = requests.post(
            f"{server.url}/v1/tasks",
            headers=headers,
            timeout=10,
            json={"type": "PREPROCESS_VIDEO", "payload": {"video": "cams/long.mp4"}},
        ).json()["task_id"]
        settings = load_settings(
            env={"PLATESIFT_SERVER__TOKEN": TOKEN},
            overrides=[
                f"paths.nas_root={nas}",
                f"paths.scratch={tmp_path / 's'}",
                f"paths.journal={tmp_path / 'j.db'}",
                f"server.url={server.url}",
                "server.wait_s=1",
                "analysis.width=320",
            ],
        )
        service = Service(settings, once=True, install_signals=False)
        done = threading.Event()
        codes: list[int] = []
        thread = threading.Thread(target=lambda: (codes.append(service.run()), done.set()))
        thread.start()
        assert wait_until(
            lambda: (
                requests.get(f"{server.url}/v1/tasks/{task_id}", headers=headers, timeout=5).json()[
                    "state"
                ]
                == "leased"
            )
        )
        now[0] += 10.0  # the lease expires on the server's clock...
        stolen = requests.post(
            f"{server.url}/v1/tasks/pull",
            headers=headers,
            timeout=10,
            json={"types": ["PREPROCESS_VIDEO"], "worker": "other", "wait_s": 0},
        )
        assert stolen.status_code == 200 and stolen.json()["attempt"] == 2  # ...and is re-leased
        assert done.wait(30), "the worker did not notice it lost its lease"
        thread.join()
        assert codes == [0]
        heavy = requests.get(
            f"{server.url}/v1/tasks", params={"type": "HEAVY_PROCESS"}, headers=headers, timeout=5
        ).json()["tasks"]
        assert heavy == []
        assert not (nas / "artifacts" / task_id / "manifest.json").exists()


class _Hostile(threading.Thread):
    """A server that answers every request with garbage, or accepts and never answers."""

    def __init__(self, mode: str) -> None:
        super().__init__(daemon=True)
        import socket

        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[Any] = []
        self.requests = 0
        self.times: list[float] = []
        self.drippers: list[threading.Event] = []

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.requests += 1
            self.times.append(time.monotonic())
            if self.mode == "hang":
                self.held.append(conn)  # never answered, never closed
                continue
            conn.recv(65536)
            if self.mode.startswith("drip"):
                threading.Thread(target=self._drip, args=(conn,), daemon=True).start()
                continue
            if self.mode == "empty":  # "no task", at once: a server that does not long-poll
                conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                conn.close()
                continue
            if self.mode.startswith("redirect:"):
                where = self.mode.partition(":")[2]
                conn.sendall(
                    b"HTTP/1.1 307 Temporary Redirect\r\nLocation: "
                    + where.encode()
                    + b"/v1/tasks/pull\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                conn.close()
                continue
            body = b"<html>surprise</html>"
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            conn.close()

    def _drip(self, conn: Any) -> None:
        """Headers (drip-headers) or a body (drip-body) a byte every 0.2 s, for a minute."""
        body = json.dumps({"task_id": "t", "type": "PREPROCESS_VIDEO"}).encode() * 20
        head = b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 300 + b"\r\n"
        head += b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        slow, fast = (head, body) if self.mode == "drip-headers" else (body, head)
        stop = threading.Event()
        self.drippers.append(stop)
        try:
            if self.mode == "drip-body":
                conn.sendall(fast)
            for i in range(len(slow)):
                conn.sendall(slow[i : i + 1])
                if stop.wait(0.2):
                    break
        except OSError:
            pass  # the client hung up: what the deadline is for
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()
        for stop in self.drippers:
            stop.set()
        for conn in self.held:
            conn.close()


def _service_against(url: str, tmp_path: Path, *extra: str) -> Service:
    nas = tmp_path / "nas"
    nas.mkdir()
    settings = load_settings(
        env={"PLATESIFT_SERVER__TOKEN": TOKEN},
        overrides=[
            f"paths.nas_root={nas}",
            f"paths.scratch={tmp_path / 's'}",
            f"paths.journal={tmp_path / 'j.db'}",
            f"server.url={url}",
            "server.timeout_s=0.5",
            "server.backoff_max_s=0.3",
            *extra,
        ],
    )
    return Service(settings, install_signals=False)


def _serve_until_backed_off(service: Service, times: int, *servers: _Hostile) -> list[int]:
    """Run the service until it has backed off `times` in a row, stop it, close `servers`;
    the exit codes it returned."""
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(service.run()))
    thread.start()
    try:
        assert wait_until(lambda: service._failures >= times, timeout=30)
    finally:
        service.stop()
        thread.join(timeout=10)
        for server in servers:
            server.close()
    return codes


def _backoffs(journal_path: Path) -> list[Any]:
    from journal import Journal

    with Journal.open_existing(journal_path) as journal:
        return [e for e in journal.events("(service)") if e.event == "backoff"]


def test_a_server_that_answers_no_task_at_once_does_not_make_the_worker_spin(
    tmp_path: Path,
) -> None:
    from platesift.app.pacing import MIN_INTERVAL_S, QUICK_EMPTY_LIMIT

    hostile = _Hostile("empty")
    hostile.start()
    service = _service_against(hostile.url, tmp_path, "server.wait_s=5")
    assert _serve_until_backed_off(service, 2, hostile) == [0]
    gaps = [b - a for a, b in itertools.pairwise(hostile.times)]
    # the first pulls keep the minimum interval, then the worker backs off as after an error
    assert all(g >= MIN_INTERVAL_S * 0.95 for g in gaps[: QUICK_EMPTY_LIMIT - 1]), gaps
    assert hostile.requests <= QUICK_EMPTY_LIMIT + 3, hostile.requests
    backoffs = _backoffs(tmp_path / "j.db")
    assert backoffs and "does not long-poll" in backoffs[0].detail["error"]


@pytest.mark.parametrize("mode", ["drip-headers", "drip-body"])
def test_a_server_that_drips_its_answer_cannot_hold_a_call(mode: str) -> None:
    from platesift.app.client import TaskClient
    from platesift.config import ServerSettings
    from platesift.errors import ServerUnavailableError

    hostile = _Hostile(mode)
    hostile.start()
    client = TaskClient(ServerSettings(url=hostile.url, timeout_s=0.5), "w")
    started = time.monotonic()
    try:
        with pytest.raises(ServerUnavailableError, match="no complete answer") as info:
            client.pull(["PREPROCESS_VIDEO"], 0.5)
    finally:
        client.close()
        hostile.close()
    took = time.monotonic() - started
    assert took < 10, took  # the drip would take over a minute; the deadline is 1 s
    assert TOKEN not in str(info.value)


def test_a_redirect_is_not_followed(tmp_path: Path) -> None:
    elsewhere = _Hostile("garbage")
    elsewhere.start()
    hostile = _Hostile(f"redirect:{elsewhere.url}")
    hostile.start()
    service = _service_against(hostile.url, tmp_path, "server.wait_s=0.2")
    assert _serve_until_backed_off(service, 2, hostile, elsewhere) == [0]
    assert elsewhere.requests == 0  # never moved to the other server
    error = _backoffs(tmp_path / "j.db")[0].detail["error"]
    assert "HTTP 307" in error and "not followed" in error and elsewhere.url in error


@pytest.mark.parametrize("mode", ["garbage", "hang"])
def test_garbage_or_hanging_server_backs_off_and_keeps_serving(tmp_path: Path, mode: str) -> None:
    hostile = _Hostile(mode)
    hostile.start()
    service = _service_against(hostile.url, tmp_path, "server.wait_s=0.2", "server.timeout_s=0.3")
    assert _serve_until_backed_off(service, 4, hostile) == [0]
    assert hostile.requests <= 40  # backed off: no spinning
    backoffs = _backoffs(tmp_path / "j.db")
    assert len(backoffs) >= 4
    expected = "not JSON" if mode == "garbage" else "cannot reach"
    assert expected in str(backoffs[0].detail["error"]), backoffs[0].detail
    assert TOKEN not in json.dumps([dict(e.detail) for e in backoffs])


def test_systemd_ready_watchdog_and_stopping(system: System, tmp_path: Path) -> None:
    import socket

    path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(30)
    proc = system.spawn(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
    try:
        # Pings may come while the proposer still starts (a slow machine); READY=1 comes once
        # the worker is up, and the pings go on after it.
        seen: list[str] = []
        while not any(m.startswith("READY=1") for m in seen):
            seen.append(listener.recv(4096).decode())
        assert sum(m.startswith("READY=1") for m in seen) == 1
        after_ready: list[str] = []
        while not any("WATCHDOG=1" in m for m in after_ready):
            after_ready.append(listener.recv(4096).decode())
        seen += after_ready
        proc.send_signal(signal.SIGTERM)
        while not any("STOPPING=1" in m for m in seen):
            seen.append(listener.recv(4096).decode())
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()


def test_power_cut_mid_decode_then_identical_to_an_uninterrupted_run(system: System) -> None:
    golden_id = system.submit({"video": "cams/long.mp4"})
    assert system.serve("--once").returncode == 0  # uninterrupted reference run
    task_id = system.submit({"video": "cams/long.mp4"})
    env, held = held_mid_task(system)
    proc = system.spawn(env=env)
    assert wait_until(held.exists)  # mid-task: the first chunk is filtered and staged
    assert any((system.root / "scratch").iterdir())  # staged in scratch, nothing committed
    proc.kill()  # SIGKILL: a power cut while frames are being decoded and filtered
    proc.wait(timeout=10)
    assert system.heavy()[-1]["payload"]["source_task_id"] == golden_id  # nothing new published
    again = system.serve("--once")
    assert again.returncode == 0, again.stderr
    assert system.task(task_id)["state"] == "done" and system.task(task_id)["attempts"] == 2
    heavy = [h for h in system.heavy() if h["payload"]["source_task_id"] == task_id]
    assert len(heavy) == 1
    golden, redone = digest(system.artifacts(golden_id)), digest(system.artifacts(task_id))
    for name in golden:  # everything but the files that name the task itself
        if name not in ("manifest.json", "heavy_task.json"):
            assert redone[name] == golden[name], name
    assert set(golden) == set(redone)
    assert is_empty(system.root / "scratch")


# --- the Coral: a fake Edge TPU that aborts, segfaults, hangs or is absent ---------------------


def with_fake_tpu(system: System, plate_model: Path) -> Path:
    control = system.root / "tpu"
    control.mkdir()
    with system.config.open("a") as f:
        f.write(
            f'[proposer]\nbackend = "fake-edgetpu"\nmodel = "{plate_model}"\n'
            f'fake_control = "{control}"\nrestart_backoff_max_s = 0.5\ndeadline_s = 0.5\n'
        )
    return control


def journal_events(system: System) -> list[tuple[str, str, dict[str, Any]]]:
    """The service's journal so far; empty until the service has created it."""
    from journal import Journal
    from journal.store import JournalMissingError

    try:
        with Journal.open_existing(system.root / "journal.db") as journal:
            return [(e.kind, e.event, e.detail) for e in journal.tail(1000)]
    except JournalMissingError:  # not there yet, or its table not created yet
        return []


@pytest.mark.parametrize("fault", ["abort", "hang", "segfault"])
def test_a_tpu_fault_fails_the_task_transiently_and_the_retry_is_identical(
    system: System, plate_model: Path, fault: str
) -> None:
    control = with_fake_tpu(system, plate_model)
    golden_id = system.submit({"video": "cams/car.mp4"})
    assert system.serve("--once").returncode == 0
    assert system.task(golden_id)["state"] == "done"
    (control / fault).write_text("2")  # the 3rd inference of the next task fails
    task_id = system.submit({"video": "cams/car.mp4"})
    proc = system.spawn()
    try:
        assert wait_until(lambda: system.task(task_id)["state"] == "done", timeout=60)
        assert proc.poll() is None  # the service itself never died
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert not (control / fault).exists()  # the fault fired
    assert system.task(task_id)["attempts"] == 2
    heavy = [h for h in system.heavy() if h["payload"]["source_task_id"] == task_id]
    assert len(heavy) == 1
    golden, redone = digest(system.artifacts(golden_id)), digest(system.artifacts(task_id))
    assert set(golden) == set(redone)
    for name in golden:
        if name not in ("manifest.json", "heavy_task.json"):
            assert redone[name] == golden[name], name
    failed = [d for k, e, d in journal_events(system) if e == "failed"]
    assert any("inference process" in str(d) for d in failed), failed


def test_no_task_is_pulled_while_the_coral_is_absent(system: System, plate_model: Path) -> None:
    control = with_fake_tpu(system, plate_model)
    (control / "absent").touch()
    task_id = system.submit({"video": "cams/car.mp4"})
    proc = system.spawn()
    try:
        assert wait_until(
            lambda: any(
                e == "backoff" and d.get("kind") == "ProposerUnavailableError"
                for _, e, d in journal_events(system)
            )
        )
        assert system.task(task_id)["state"] == "pending" and proc.poll() is None
        (control / "absent").unlink()  # plugged back in
        assert wait_until(lambda: system.task(task_id)["state"] == "done", timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert system.task(task_id)["attempts"] == 1
