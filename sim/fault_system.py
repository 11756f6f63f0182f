"""The fault harness's world: one trial's NAS folder, the reference server (restartable on its
port) and the `platesift serve` processes, the harness's constants, and the report types."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from sim.server import TaskServer

TOKEN = "faults-harness-token-0123456789"
FAULT_KINDS = ("power", "tpu", "nas", "server")
POWER_PHASES = ("running", "after_manifest", "after_publish", "before_complete")
SERVER_MODES = ("restart", "error500", "close")
TPU_MODES = ("abort", "hang", "segfault", "unplug", "absent-at-start")
TPU_DEADLINE_S = 0.2  # per inference; the fake answers in ~3 ms
BREAKS = ("extra-heavy", "delete-file", "no-restart")
LEASE_S = 2.0
TIMEOUT_S = 90.0
VIDEOS = {"a.mp4": 8.0, "b.mp4": 5.0}
COMPARED = ("frames.jsonl", "rejections.jsonl")
CHECKS = ("final", "heavy", "golden", "manifests", "no_tmp", "scratch", "journal")


@dataclasses.dataclass
class Check:
    name: str
    ok: bool
    reason: str = ""


@dataclasses.dataclass
class Trial:
    trial: int
    fault: str
    phase: str
    outcome: str = ""
    checks: list[Check] = dataclasses.field(default_factory=list)
    recovery_s: float | None = None
    duration_s: float = 0.0
    starts: int = 0

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


@dataclasses.dataclass
class Report:
    seed: int
    faults: list[str]
    trials: list[Trial]
    golden_s: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.trials) and all(t.passed for t in self.trials)

    def to_json(self) -> dict[str, Any]:
        recoveries = [t.recovery_s for t in self.trials if t.recovery_s is not None]
        return {
            "seed": self.seed,
            "faults": self.faults,
            "all_checks_passed": self.passed,
            "totals": {
                "trials": len(self.trials),
                "passed": sum(t.passed for t in self.trials),
                "failed": sum(not t.passed for t in self.trials),
                "by_fault": {
                    f: sum(t.fault == f for t in self.trials) for f in sorted(set(self.faults))
                },
                "passed_by_fault": {
                    f: sum(t.passed for t in self.trials if t.fault == f)
                    for f in sorted(set(self.faults))
                },
                "max_recovery_s": max(recoveries) if recoveries else None,
                "golden_s": round(self.golden_s, 2),
            },
            "trials": [
                {
                    "trial": t.trial,
                    "fault": t.fault,
                    "phase": t.phase,
                    "outcome": t.outcome,
                    "passed": t.passed,
                    "recovery_s": t.recovery_s,
                    "duration_s": round(t.duration_s, 2),
                    "worker_starts": t.starts,
                    "checks": {c.name: {"ok": c.ok, "reason": c.reason} for c in t.checks},
                }
                for t in self.trials
            ],
        }

    def table(self) -> str:
        rows = [("TRIAL", "FAULT", "PHASE", "OUTCOME", "CHECKS", "RECOVERY")]
        for t in self.trials:
            failed = [c.name for c in t.checks if not c.ok]
            rows.append(
                (
                    str(t.trial),
                    t.fault,
                    t.phase,
                    t.outcome,
                    "all ok" if t.passed else "FAILED: " + ",".join(failed),
                    "-" if t.recovery_s is None else f"{t.recovery_s:.2f} s",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        for t in self.trials:
            lines += [f"  trial {t.trial} {c.name}: {c.reason}" for c in t.checks if not c.ok]
        n_ok = sum(t.passed for t in self.trials)
        lines.append(
            f"{n_ok}/{len(self.trials)} trials passed every check"
            + ("" if self.passed else " -- FAILURES above")
        )
        return "\n".join(lines)


def wait_until(pred: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Wait on a condition (not a sleep): re-check it on a short event timeout."""
    tick = threading.Event()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        tick.wait(0.05)
    return pred()


class System:
    """One trial's world: NAS folder, server (restartable on its port), worker processes."""

    def __init__(self, root: Path, videos: Path, model: Path) -> None:
        self.root = root
        self.tpu = root / "tpu"  # the fake Edge TPU's switch files
        self.tpu.mkdir(parents=True)
        self.nas = root / "nas"
        (self.nas / "cams").mkdir(parents=True)
        for video in sorted(videos.glob("*.mp4")):
            try:
                os.link(video, self.nas / "cams" / video.name)
            except OSError:
                shutil.copy2(video, self.nas / "cams" / video.name)
        self.db = root / "tasks.db"
        self.server = TaskServer("127.0.0.1", 0, self.db, token=TOKEN, lease_s=LEASE_S)
        self.server.start()
        self.port = self.server.port
        self.scratch = root / "scratch"
        self.journal = root / "journal.db"
        self.config = root / "platesift.toml"
        self.config.write_text(
            f'[paths]\nnas_root = "{self.nas}"\nscratch = "{self.scratch}"\n'
            f'journal = "{self.journal}"\n'
            f'[server]\nurl = "{self.server.url}"\nwait_s = 1.0\nbackoff_max_s = 0.5\n'
            "timeout_s = 2.0\n[analysis]\nwidth = 320\n"
            f'[proposer]\nbackend = "fake-edgetpu"\nmodel = "{model}"\n'
            f'fake_control = "{self.tpu}"\ndeadline_s = {TPU_DEADLINE_S}\n'
            "restart_backoff_max_s = 0.5\n"
        )
        self.starts = 0
        self.mark: tuple[int, int] | None = None  # server progress just before a fault ends
        self.procs: list[subprocess.Popen[bytes]] = []
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.headers["Authorization"] = f"Bearer {TOKEN}"

    def submit(self, payload: dict[str, Any], type_: str = "PREPROCESS_VIDEO") -> str:
        r = self.http.post(
            f"{self.server.url}/v1/tasks", json={"type": type_, "payload": payload}, timeout=10
        )
        r.raise_for_status()
        return str(r.json()["task_id"])

    def tasks(self, type_: str = "PREPROCESS_VIDEO") -> list[dict[str, Any]]:
        """Read straight from the server's store: the harness's own polling must never go
        through HTTP, where it would consume the faults injected for the worker."""
        self.server.expire()
        return list(self.server.store.list(type=type_))

    def safe_tasks(self) -> list[dict[str, Any]]:
        try:
            return self.tasks()
        except Exception:  # the server is being restarted
            return []

    def all_final(self) -> bool:
        tasks = self.safe_tasks()
        return bool(tasks) and all(t["state"] in ("done", "rejected", "dead") for t in tasks)

    def any_leased(self) -> bool:
        return any(t["state"] == "leased" for t in self.safe_tasks())

    def spawn(self, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("PLATESIFT_")}
        base["PLATESIFT_SERVER__TOKEN"] = TOKEN
        base.update(env or {})
        exe = str(Path(sys.executable).with_name("platesift"))
        log = open(self.root / f"worker-{self.starts}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [exe, "serve", "--config", str(self.config)],
            env=base,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a power cut kills it all
        )
        log.close()
        self.starts += 1
        self.procs.append(proc)
        return proc

    def power_cut(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_worker(self, proc: subprocess.Popen[bytes]) -> int:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                return proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.power_cut(proc)
        return proc.returncode

    def restart_server(self, down_s: float) -> None:
        self.server.stop()
        threading.Event().wait(down_s)  # the outage itself, not a wait for something
        self.server = TaskServer(
            "127.0.0.1", self.port, self.db, token=TOKEN, lease_s=LEASE_S
        ).start()

    def progress_mark(self) -> tuple[int, int]:
        tasks = self.safe_tasks()
        return (
            sum(int(t["attempts"]) for t in tasks),
            sum(t["state"] in ("done", "rejected") for t in tasks),
        )

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.power_cut(proc)
        self.http.close()
        self.server.stop()


__all__ = [
    "BREAKS",
    "CHECKS",
    "FAULT_KINDS",
    "POWER_PHASES",
    "SERVER_MODES",
    "TIMEOUT_S",
    "TPU_MODES",
    "VIDEOS",
    "Check",
    "Report",
    "System",
    "Trial",
    "wait_until",
]
