"""`platesift sim server|submit|tasks`, run in-process through their argparse parsers against
a real server on loopback: output, exit codes, token handling and a clean SIGTERM stop."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from sim.commands import TOKEN_ENV, URL_ENV, add_parsers, format_tasks, one_line
from sim.server import TaskServer
from sim.taskstore import TaskStore
from tests.sim.test_server import TOKEN, TYPE, Api, LogWatcher


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise SystemExit(f"usage error: {message}")


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse like `platesift sim ...` would, with the commands added by `add_parsers`."""
    parser = _Parser(prog="platesift sim")
    sub = parser.add_subparsers(dest="sim_command", required=True, parser_class=_Parser)
    add_parsers(sub)
    return parser.parse_args(argv)


def run(argv: list[str]) -> int:
    args = parse(argv)
    code = args.sim_func(args)
    assert isinstance(code, int)
    return code


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*TOKEN_ENV, *URL_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TaskServer]:
    server = TaskServer("127.0.0.1", 0, tmp_path / "tasks.db", token=TOKEN).start()
    monkeypatch.setenv("PLATESIFT_SERVER_TOKEN", TOKEN)
    monkeypatch.setenv("PLATESIFT_SERVER_URL", server.url)
    yield server
    server.stop()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("platesift: error: ")
    return lines[0]


# --- submit -------------------------------------------------------------------------------------


def test_submit_prints_the_task_id_and_sends_the_payload_as_given(
    server: TaskServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(["submit", "cam1/2024-05-01/../0800.mp4", "--params", '{"motion.threshold": 25}'])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    task_id = out.strip()
    task = Api(server.url).task(task_id)
    assert task["type"] == TYPE and task["state"] == "pending"
    assert task["payload"] == {
        "video": "cam1/2024-05-01/../0800.mp4",
        "params": {"motion.threshold": 25},
    }
    assert run(["submit", "b.mp4"]) == 0
    second = capsys.readouterr().out.strip()
    assert Api(server.url).task(second)["payload"] == {"video": "b.mp4", "params": {}}


def test_submit_with_an_idempotency_key_submits_once(
    server: TaskServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["submit", "a.mp4", "--idempotency-key", "cam1-0800"]) == 0
    first = capsys.readouterr().out.strip()
    assert run(["submit", "a.mp4", "--idempotency-key", "cam1-0800"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == first and "already submitted" in err
    assert run(["submit", "other.mp4", "--idempotency-key", "cam1-0800"]) == 2
    assert "HTTP 422" in one_error_line(capsys.readouterr().err)
    assert len(Api(server.url).tasks()) == 1


@pytest.mark.parametrize(
    ("params", "message"),
    [("{motion", "not valid JSON"), ("[1, 2]", "JSON object"), ('"x"', "JSON object")],
)
def test_submit_refuses_bad_params(
    server: TaskServer, capsys: pytest.CaptureFixture[str], params: str, message: str
) -> None:
    assert run(["submit", "a.mp4", "--params", params]) == 2
    assert message in one_error_line(capsys.readouterr().err)
    assert Api(server.url).tasks() == []


def test_connection_refused_is_exit_4(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    assert run(["submit", "a.mp4", "--server", url]) == 4
    line = one_error_line(capsys.readouterr().err)
    assert "cannot connect" in line and url in line
    assert run(["tasks", "--server", url]) == 4
    one_error_line(capsys.readouterr().err)


def test_4xx_is_exit_2_and_5xx_is_exit_4(
    server: TaskServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLATESIFT_SERVER_TOKEN", "not-the-token")
    assert run(["tasks"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "HTTP 401" in line and "not-the-token" not in line
    monkeypatch.setenv("PLATESIFT_SERVER_TOKEN", TOKEN)
    Api(server.url).post("/v1/admin/faults", {"mode": "error500", "count": 1})
    assert run(["submit", "a.mp4"]) == 4
    assert "HTTP 500" in one_error_line(capsys.readouterr().err)
    Api(server.url).post("/v1/admin/faults", {"mode": "close", "count": 1})
    assert run(["tasks"]) == 4
    assert "failed" in one_error_line(capsys.readouterr().err)
    assert run(["tasks", "--server", "ftp://example.org"]) == 2
    assert "http://" in one_error_line(capsys.readouterr().err)


def test_token_file_and_settings_variable(
    server: TaskServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PLATESIFT_SERVER_TOKEN")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    assert run(["tasks", "--token-file", str(token_file)]) == 0
    assert run(["tasks"]) == 2  # no token at all
    capsys.readouterr()
    monkeypatch.setenv("PLATESIFT_SERVER__TOKEN", TOKEN)  # the worker's settings variable
    assert run(["tasks"]) == 0
    assert run(["tasks", "--token-file", str(tmp_path / "missing")]) == 2
    assert "does not exist" in one_error_line(capsys.readouterr().err)
    token_file.write_text("two words\n")
    assert run(["tasks", "--token-file", str(token_file)]) == 2
    assert "one token" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("option", [["--token", "s3cr3t"], ["--token=s3cr3t"]])
def test_a_token_on_the_command_line_is_refused_without_echoing_it(option: list[str]) -> None:
    for command in (["server", "--db", "x.db"], ["submit", "a.mp4"], ["tasks"]):
        with pytest.raises(SystemExit) as exc:
            parse([*command, *option])
        assert "s3cr3t" not in str(exc.value)
        assert "command line" in str(exc.value)
    # And no prefix of --token-file is taken for it.
    with pytest.raises(SystemExit):
        parse(["tasks", "--token-f", "file"])


# --- tasks --------------------------------------------------------------------------------------


def test_tasks_table_and_json(server: TaskServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["tasks"]) == 0
    assert capsys.readouterr().out.strip() == "no tasks"
    api = Api(server.url)
    first = api.submit({"video": "a.mp4"})
    second = api.submit({"video": "b.mp4"})
    lease = api.pull()
    long_detail = {"error": "not a video:\n" + "x" * 200}
    api.post(
        f"/v1/leases/{lease['lease_id']}/complete", {"outcome": "rejected", "detail": long_detail}
    )

    assert run(["tasks"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["ID", "TYPE", "STATE", "ATTEMPTS", "OUTCOME", "DETAIL"]
    assert len(lines) == 3
    assert lines[1].split()[:5] == [first["task_id"], TYPE, "rejected", "1", "rejected"]
    assert lines[1].endswith("…") and "\\n" in lines[1]
    assert lines[2].split() == [second["task_id"], TYPE, "pending", "0", "-", "-"]

    assert run(["tasks", "--json", "--state", "pending"]) == 0
    tasks = json.loads(capsys.readouterr().out)
    assert [t["task_id"] for t in tasks] == [second["task_id"]]
    assert run(["tasks", "--type", "HEAVY_PROCESS"]) == 0
    assert capsys.readouterr().out.strip() == "no tasks"


def test_one_line_and_format() -> None:
    assert one_line(None) == "-"
    assert one_line("a\n  b\tc") == "a b c"
    assert one_line({"k": "v"}) == '{"k": "v"}'
    cut = one_line("y" * 100, width=20)
    assert len(cut) == 20 and cut.endswith("…")
    table = format_tasks([{"task_id": "t-1", "type": "T", "state": "dead", "attempts": 5}])
    assert table.splitlines()[1].split() == ["t-1", "T", "dead", "5", "-", "-"]


# --- server -------------------------------------------------------------------------------------


@pytest.fixture
def watch() -> Iterator[LogWatcher]:
    watcher = LogWatcher()
    logger = logging.getLogger("sim.server")
    levels = {name: logging.getLogger(name).level for name in ("sim.server", "sim.taskstore")}
    logger.addHandler(watcher)
    yield watcher
    logger.removeHandler(watcher)
    for name, level in levels.items():  # cmd_server raises them to INFO
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_server_command_serves_until_a_signal(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    watch: LogWatcher,
    sig: signal.Signals,
) -> None:
    monkeypatch.setenv("PLATESIFT_SERVER_TOKEN", TOKEN)
    db = tmp_path / "tasks.db"
    before = signal.getsignal(sig)

    def client() -> str:
        record = watch.wait_for(r"listening on http://")
        url = str(record.args[0]) if isinstance(record.args, tuple) else ""
        task_id = Api(url).submit({"video": "a.mp4"})["task_id"]
        assert requests.get(url + "/v1/tasks", timeout=10).status_code == 401
        os.kill(os.getpid(), sig)
        return str(task_id)

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(client)
        code = run(["server", "--db", str(db), "--port", "0", "--lease-s", "5"])
        task_id = future.result(timeout=10)
    assert code == 0
    out, err = capsys.readouterr()
    assert "listening on http://127.0.0.1:" in out and "stopped" in out and err == ""
    assert signal.getsignal(sig) == before  # the previous handler is back
    messages = [r.getMessage() for r in watch.records]
    assert any("POST /v1/tasks 201" in m for m in messages)
    assert all(TOKEN not in m for m in messages) and TOKEN not in out
    with TaskStore(db) as store:
        task = store.get(task_id)
    assert task is not None and task["state"] == "pending"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--db", "{tmp}/no/such/dir/tasks.db"], "cannot open task database"),
        (["--db", "{tmp}/t.db", "--lease-s", "0"], "--lease-s"),
        (["--db", "{tmp}/t.db", "--max-attempts", "0"], "--max-attempts"),
        (["--db", "{tmp}/t.db", "--port", "70000"], "--port"),
        (["--db", "{tmp}/t.db", "--token-file", "{tmp}/nope"], "token file"),
    ],
)
def test_server_command_refuses_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert run(["server", "--port", "0", *argv]) == 2
    assert message in one_error_line(capsys.readouterr().err)


def test_server_command_port_in_use_is_exit_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert run(["server", "--db", str(tmp_path / "t.db"), "--port", str(port)]) == 4
    assert "cannot listen" in one_error_line(capsys.readouterr().err)
