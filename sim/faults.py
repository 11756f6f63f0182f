"""`platesift sim faults`: the fault-injection harness (power loss, Coral disconnect, NAS outage,
server outage).

Each trial runs the reference server in-process and a real `platesift serve` process on a
temporary NAS folder, injects one fault at a moment chosen from the seed, lets the system
drain, and checks the guarantees against a golden uninterrupted run.

The proposer is the fake Edge TPU (`models.fake_edgetpu`: the synthetic CPU model in a child
process, behind switch files) in every trial and in the golden run, so `tpu` faults fail the
way a USB Coral does: the inference process aborts, hangs past its deadline, or finds no
device, and comes back.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from journal import Journal
from platesift.artifacts import idempotency_key, verify_artifact_dir
from platesift.scratch import is_empty
from sim.scenes import preset, render
from sim.server import TaskServer

TOKEN = "faults-harness-token-0123456789"
FAULT_KINDS = ("power", "tpu", "nas", "server")
POWER_PHASES = ("running", "after_manifest", "after_publish", "before_complete")
SERVER_MODES = ("restart", "error500", "close")
TPU_MODES = ("abort", "hang", "unplug", "absent-at-start")
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


class _System:
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


# --- golden run --------------------------------------------------------------------------------


def _normal(art: Path, task_id: str, root: Path) -> dict[str, Any]:
    """The artifact dir with the task id factored out: file bytes (hashed) except the two files
    that name the task, which are compared after replacing the id and the trial's folder
    (the manifest records the fake TPU's switch folder; the heavy_task.json hash follows)."""
    out: dict[str, Any] = {}
    for p in sorted(art.rglob("*")):
        if not p.is_file():
            continue
        name = str(p.relative_to(art))
        raw = p.read_bytes()
        if name in ("manifest.json", "heavy_task.json"):
            raw = raw.replace(task_id.encode(), b"<TASK>").replace(str(root).encode(), b"<ROOT>")
        if name == "manifest.json":
            data = json.loads(raw)
            data.get("files", {}).get("heavy_task.json", {}).pop("sha256", None)
            out[name] = data
        else:
            out[name] = hashlib.sha256(raw).hexdigest()
    return out


def _payloads() -> list[dict[str, Any]]:
    return [{"video": f"cams/{name}"} for name in VIDEOS]


def _golden(
    workdir: Path, videos: Path, model: Path
) -> tuple[dict[str, dict[str, Any]], float, int]:
    """The golden artifacts (normalised) per video, the processing time of the task set
    (first lease to last task done), which bounds the random moment of a fault, and the
    number of frames sent to the proposer, which bounds the inference a TPU fault hits."""
    system = _System(workdir / "golden", videos, model)
    try:
        ids = {p["video"]: system.submit(p) for p in _payloads()}
        proc = system.spawn()
        wait_until(system.any_leased, TIMEOUT_S)
        started = time.monotonic()
        if not wait_until(system.all_final, TIMEOUT_S):
            raise RuntimeError("the golden (fault-free) run did not finish in time")
        span = time.monotonic() - started
        system.stop_worker(proc)
        bad = [t for t in system.tasks() if t["state"] != "done"]
        if bad:
            raise RuntimeError(f"the golden run did not complete every task: {bad}")
        arts = {v: system.nas / "artifacts" / i for v, i in ids.items()}
        kept = sum(len((a / "frames.jsonl").read_text().splitlines()) for a in arts.values())
        normal = {v: _normal(a, ids[v], system.root) for v, a in arts.items()}
        return normal, span, kept
    finally:
        system.close()


# --- one trial ---------------------------------------------------------------------------------


def _plan(trials: int, seed: int, faults: list[str]) -> list[tuple[str, str]]:
    """(fault, phase) per trial: kinds and power phases cycle in a seeded order, so every kind
    occurs once trials >= len(faults), and every power phase over enough power trials."""
    rng = random.Random(seed)
    kinds = list(faults)
    rng.shuffle(kinds)
    phases = list(POWER_PHASES)
    rng.shuffle(phases)
    modes = list(SERVER_MODES)
    rng.shuffle(modes)
    tpu_modes = list(TPU_MODES)
    rng.shuffle(tpu_modes)
    plan, seen = [], {"power": 0, "server": 0, "tpu": 0}
    for n in range(trials):
        kind = kinds[n % len(kinds)]
        if kind == "power":
            phase = phases[seen["power"] % len(phases)]
        elif kind == "server":
            phase = modes[seen["server"] % len(modes)]
        elif kind == "tpu":
            phase = tpu_modes[seen["tpu"] % len(tpu_modes)]
        else:
            phase = "outage"
        seen[kind] = seen.get(kind, 0) + 1
        plan.append((kind, phase))
    return plan


def _run_trial(
    n: int,
    kind: str,
    phase: str,
    rng: random.Random,
    workdir: Path,
    videos: Path,
    golden: dict[str, dict[str, Any]],
    task_s: float,
    inferences: int,
    model: Path,
    broken: str | None,
) -> Trial:
    started = time.monotonic()
    trial = Trial(n, kind, phase)
    system = _System(workdir / f"trial-{n:04d}", videos, model)
    try:
        ids = {p["video"]: system.submit(p) for p in _payloads()}
        bad_id = system.submit({"video": "../outside.mp4"})
        if broken == "no-restart":
            kind, phase = trial.fault, trial.phase = "power", "after_publish"
        restart_at = _inject(system, kind, phase, rng, task_s, inferences, trial)
        if broken != "no-restart":
            trial.recovery_s = _drain(system, restart_at)
        if broken == "extra-heavy":
            done = ids[next(iter(ids))]
            system.submit({"source_task_id": done, "note": "duplicate"}, "HEAVY_PROCESS")
        if broken == "delete-file":
            (system.nas / "artifacts" / ids[next(iter(ids))] / "frames.jsonl").unlink()
        trial.checks = _checks(system, ids, bad_id, golden, kind, trial.phase)
        trial.starts = system.starts
    except Exception as exc:  # a harness error is a failed trial, never a silent pass
        trial.checks.append(Check("harness", False, f"{type(exc).__name__}: {exc}"))
        trial.outcome = trial.outcome or "error"
    finally:
        system.close()
        trial.duration_s = time.monotonic() - started
    return trial


def _inject(
    system: _System,
    kind: str,
    phase: str,
    rng: random.Random,
    task_s: float,
    inferences: int,
    trial: Trial,
) -> float | None:
    """Start the first worker and inject the fault; the monotonic time recovery starts from
    (the restarted worker's spawn, the NAS's return, the server's restart, the Coral's
    return), or None."""
    if kind == "tpu" and phase in ("abort", "hang"):
        # Armed before the start: the fault hits a random inference of the whole run.
        nth = rng.randrange(max(1, inferences))
        (system.tpu / phase).write_text(str(nth))
        trial.phase += f"@{nth}"
        system.spawn()
        switch = system.tpu / phase
        fired = wait_until(lambda: not switch.exists(), TIMEOUT_S)  # consumed when it fires
        system.mark = system.progress_mark()
        trial.outcome = f"{phase} at inference {nth}" + ("" if fired else ": never reached")
        return time.monotonic() if fired else None
    if kind == "tpu" and phase == "absent-at-start":
        (system.tpu / "absent").touch()
        system.spawn()
        seen = wait_until(lambda: _proposer_backoffs(system) > 0, TIMEOUT_S)
        down = rng.uniform(0.5, 2.0)
        threading.Event().wait(down)  # the Coral stays missing this much longer
        system.mark = system.progress_mark()
        (system.tpu / "absent").unlink()
        trial.outcome = f"no Coral at start (+{down:.1f}s)" + ("" if seen else ", unnoticed")
        return time.monotonic()
    if kind == "power" and phase != "running":
        proc = system.spawn({"PLATESIFT_FAILPOINTS": f"{phase}=kill"})
        try:
            code = proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            system.power_cut(proc)
            code = 0
        trial.outcome = "killed at failpoint" if code == -signal.SIGKILL else f"exit {code}"
        return None
    proc = system.spawn()
    if not wait_until(system.any_leased, TIMEOUT_S):
        trial.outcome = "never leased"
        return None
    delay = rng.uniform(0.0, 0.9 * task_s)
    threading.Event().wait(delay)  # the random moment of the fault
    trial.phase += f"+{delay:.2f}s"
    landed = "mid-task" if system.any_leased() else "idle"
    if kind == "power":
        system.power_cut(proc)
        trial.outcome = f"killed {landed}"
        return None
    if kind == "tpu":  # unplugged at a random moment, plugged back in later
        (system.tpu / "absent").touch()
        down = rng.uniform(0.5, 3.0)
        threading.Event().wait(down)  # the outage's length
        system.mark = system.progress_mark()
        (system.tpu / "absent").unlink()
        trial.outcome = f"Coral unplugged {down:.1f}s {landed}"
        return time.monotonic()
    if kind == "nas":
        away = system.nas.with_name("nas.away")
        system.nas.rename(away)
        down = rng.uniform(0.5, 3.0)
        threading.Event().wait(down)  # the outage's length
        if system.nas.exists():
            raise RuntimeError(f"{system.nas} was recreated while the NAS was away")
        system.mark = system.progress_mark()
        away.rename(system.nas)
        trial.outcome = f"NAS away {down:.1f}s {landed}"
        return time.monotonic()
    if phase == "restart":
        down = rng.uniform(0.3, 2.0)
        system.mark = system.progress_mark()
        system.restart_server(down)
        trial.outcome = f"server down {down:.1f}s {landed}"
        return time.monotonic()
    count = rng.randint(2, 5)
    system.mark = system.progress_mark()
    r = system.http.post(
        f"{system.server.url}/v1/admin/faults", json={"mode": phase, "count": count}, timeout=10
    )
    r.raise_for_status()
    trial.outcome = f"{count}x {phase} {landed}"
    return time.monotonic()


def _drain(system: _System, restart_at: float | None) -> float | None:
    """Restart the worker if it is gone, wait until every task is final, stop it. Returns
    the recovery time: from `restart_at` (or the restarted worker's spawn) to the first
    progress the server shows (a new lease, or a task finished), polled every 50 ms."""
    live = [p for p in system.procs if p.poll() is None]
    mark = system.mark if system.mark is not None else system.progress_mark()
    if not live:
        mark = system.progress_mark()
        restart_at = time.monotonic()
        live = [system.spawn()]
    recovery: float | None = None
    progressed = lambda: system.progress_mark() != mark or system.all_final()  # noqa: E731
    if restart_at is not None and wait_until(progressed, TIMEOUT_S):
        recovery = round(time.monotonic() - restart_at, 2)
    wait_until(system.all_final, TIMEOUT_S)
    # A restarted worker is stopped only once it has booted (its boot note is in the journal).
    wait_until(lambda: _boots(system) >= system.starts, 30.0)
    for proc in live:
        system.stop_worker(proc)
    return recovery


def _service_events(system: _System, match: Callable[[Any], bool]) -> int:
    """How many of the service's journal entries match (0 while the journal is missing or
    busy)."""
    try:
        with Journal.open_existing(system.journal) as journal:
            return sum(match(e) for e in journal.events("(service)"))
    except Exception:  # not created yet, or busy
        return 0


def _proposer_backoffs(system: _System) -> int:
    """How many times the service has waited for the proposer (journal backoff notes)."""
    return _service_events(
        system,
        lambda e: e.event == "backoff" and e.detail.get("kind") == "ProposerUnavailableError",
    )


def _boots(system: _System) -> int:
    return _service_events(system, lambda e: e.event == "boot")


def _checks(
    system: _System,
    ids: dict[str, str],
    bad_id: str,
    golden: dict[str, dict[str, Any]],
    kind: str,
    phase: str,
) -> list[Check]:
    checks: list[Check] = []
    tasks = {t["task_id"]: t for t in system.tasks()}
    problems = [f"{i} is {tasks[i]['state']}" for i in ids.values() if tasks[i]["state"] != "done"]
    if tasks[bad_id]["state"] != "rejected":
        problems.append(f"bad task {bad_id} is {tasks[bad_id]['state']}, not rejected")
    live = [p.pid for p in system.procs if p.poll() is None]
    attempts = {i: tasks[i]["attempts"] for i in ids.values()}
    checks.append(
        Check("final", not problems, "; ".join(problems) or f"all done once, attempts {attempts}")
    )

    heavy = system.tasks("HEAVY_PROCESS")
    problems = []
    for task_id in ids.values():
        mine = [h for h in heavy if h["payload"].get("source_task_id") == task_id]
        if len(mine) != 1:
            problems.append(f"{task_id} has {len(mine)} heavy tasks")
            continue
        key = idempotency_key(task_id, str(mine[0]["payload"].get("manifest_sha256")))
        if mine[0]["idempotency_key"] != key:
            problems.append(f"{task_id}: heavy key {mine[0]['idempotency_key']!r}")
        manifest = system.nas / "artifacts" / task_id / "manifest.json"
        if manifest.is_file():
            sha = hashlib.sha256(manifest.read_bytes()).hexdigest()
            if mine[0]["payload"].get("manifest_sha256") != sha:
                problems.append(f"{task_id}: heavy task's manifest_sha256 is not the manifest's")
    others = [h for h in heavy if h["payload"].get("source_task_id") not in ids.values()]
    if others:
        problems.append(f"{len(others)} heavy task(s) for unknown sources")
    checks.append(Check("heavy", not problems, "; ".join(problems) or "one per source task"))

    problems = []
    for video, task_id in ids.items():
        art = system.nas / "artifacts" / task_id
        if not art.is_dir():
            problems.append(f"{task_id}: no artifact directory")
            continue
        got, want = _normal(art, task_id, system.root), golden[video]
        diff = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
        if diff:
            problems.append(f"{task_id} ({video}) differs from golden in {', '.join(diff)}")
    checks.append(Check("golden", not problems, "; ".join(problems) or "identical to golden"))

    problems = []
    art_root = system.nas / "artifacts"
    for art in sorted(art_root.iterdir()) if art_root.is_dir() else []:
        if not (art / "manifest.json").exists():
            problems.append(f"{art.name}: directory without a manifest")
        problems += verify_artifact_dir(art)
    checks.append(Check("manifests", not problems, "; ".join(problems) or "every manifest ok"))

    stray = [
        os.path.join(d, f)
        for d, _, files in os.walk(system.nas)
        for f in files
        if f.endswith(".platesift-tmp")
    ]
    if (system.root / "nas.away").exists():
        stray.append("nas.away left behind")
    checks.append(Check("no_tmp", not stray, "; ".join(stray) or "no temp files on the NAS"))

    if live:
        checks.append(Check("scratch", False, f"worker(s) {live} still running"))
    else:
        empty = is_empty(system.scratch)
        left = sorted(p.name for p in system.scratch.iterdir())
        checks.append(Check("scratch", empty, "only the marker" if empty else f"left: {left}"))

    checks.append(_journal_check(system, ids, attempts, kind, phase))
    return checks


def _journal_check(
    system: _System, ids: dict[str, str], attempts: dict[str, Any], kind: str, phase: str
) -> Check:
    with Journal.open_existing(system.journal) as journal:
        boots = [e for e in journal.events("(service)") if e.event == "boot"]
        errors = [e for e in journal.events("(service)") if e.kind == "error"]
        # Known worker quirk: SIGTERM during a long-poll raises `_Interrupted` inside
        # TaskClient._call, whose `except Exception` turns it into a "broken answer" backoff
        # error. Those are the harness stopping the worker, not the fault: counted apart.
        spurious = [e for e in errors if "_Interrupted" in str(e.detail.get("error", ""))]
        tpu_trace = sorted(
            {
                f"{e.event}: {e.detail.get('kind', '')}".rstrip(": ")
                for task in (*ids.values(), "(service)")
                for e in journal.events(task)
                if "ProposerUnavailable" in str(e.detail) or "inference process" in str(e.detail)
            }
        )
        errors = [e for e in errors if e not in spurious]
        problems, seen = [], []
        for task_id in ids.values():
            events = journal.events(task_id)
            done = [e for e in events if e.kind == "outcome" and e.event == "done"]
            if not done or done[-1].attempt != attempts[task_id]:
                problems.append(f"{task_id}: no 'done' outcome for attempt {attempts[task_id]}")
            earlier = sorted({e.attempt for e in events if e.attempt < attempts[task_id]})
            if earlier:
                seen.append(f"{task_id} attempts {earlier} interrupted")
    if len(boots) != system.starts:
        problems.append(f"{len(boots)} boot notes for {system.starts} worker starts")
    if errors:
        seen.append(f"{len(errors)} service error note(s) ({errors[0].event})")
    if spurious:
        seen.append(f"{len(spurious)} spurious backoff(s) on SIGTERM (_Interrupted)")
    if kind == "power" and system.starts < 2:
        problems.append("the worker was never restarted")
    if kind == "tpu":
        if system.starts != 1:
            problems.append(f"a Coral fault needed {system.starts} service starts, not 1")
        armed = sorted(p.name for p in system.tpu.iterdir() if not p.name.startswith("."))
        if armed:
            problems.append(f"the fault never fired (switch {', '.join(armed)} left)")
        if tpu_trace:
            seen.append(f"proposer fault journaled ({', '.join(tpu_trace)})")
        elif not phase.startswith("unplug"):  # an unplug between inferences goes unnoticed
            problems.append("the journal shows no proposer fault")
    note = "; ".join(seen) or "fault absorbed without a trace (no retry needed)"
    return Check(
        "journal", not problems, "; ".join(problems) or f"{len(boots)} boots; recovery: {note}"
    )


# --- entry points ------------------------------------------------------------------------------


def run_trials(
    trials: int,
    seed: int,
    faults: list[str],
    workdir: Path,
    json_path: Path | None,
    *,
    broken: str | None = None,
    log: Callable[[str], None] | None = None,
) -> Report:
    """Run `trials` fault trials (golden run first) under `workdir`; write JSON if asked.

    `broken` (one of BREAKS) breaks a guarantee on purpose, to show the harness catches it.
    """
    unknown = [f for f in faults if f not in FAULT_KINDS]
    if unknown:
        raise ValueError(f"unknown fault kind {unknown[0]!r}; expected {', '.join(FAULT_KINDS)}")
    if not faults or trials < 1:
        raise ValueError("need at least one trial and one fault kind")
    if broken is not None and broken not in BREAKS:
        raise ValueError(f"unknown break {broken!r}; expected one of {', '.join(BREAKS)}")
    say = log or (lambda _: None)
    videos = workdir / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    for name, seconds in VIDEOS.items():
        if not (videos / name).exists():
            spec = preset("street", seconds=seconds, width=320, height=180)
            render(spec, videos / f".{name}.tmp.mp4")
            (videos / f".{name}.tmp.mp4").rename(videos / name)
    model = _model(workdir)
    started = time.monotonic()
    golden, task_s, inferences = _golden(workdir, videos, model)
    report = Report(seed, list(faults), [], golden_s=time.monotonic() - started)
    say(f"golden run: {report.golden_s:.1f} s ({task_s:.2f} s from first lease to drained)")
    for n, (kind, phase) in enumerate(_plan(trials, seed, faults)):
        rng = random.Random(seed + n)
        result = _run_trial(
            n, kind, phase, rng, workdir, videos, golden, task_s, inferences, model, broken
        )
        report.trials.append(result)
        say(
            f"trial {n}: {result.fault} {result.phase}: "
            + ("ok" if result.passed else "FAILED")
            + f" ({result.duration_s:.1f} s)"
        )
    if json_path is not None:
        json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return report


def _model(workdir: Path) -> Path:
    """The synthetic detector the fake Edge TPU runs (needs a TFLite runtime)."""
    from models.tflite_runtime import INSTALL_HINT, find_runtime
    from sim.detector_model import MANIFEST, write_models

    if find_runtime() is None:
        raise ValueError(f"the harness's fake Edge TPU needs a TFLite runtime: {INSTALL_HINT}")
    manifest = workdir / "model" / MANIFEST
    return manifest if manifest.exists() else write_models(manifest.parent)


def add_parser(subparsers: Any) -> None:
    """Add `faults` to the `platesift sim` sub-command group."""
    p = subparsers.add_parser(
        "faults",
        help="fault-injection harness: power, Coral, NAS and server faults",
        allow_abbrev=False,
    )
    p.add_argument("--trials", type=int, default=10, metavar="N", help="trials (default 10)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument(
        "--faults",
        default=",".join(FAULT_KINDS),
        metavar="LIST",
        help=f"comma-separated fault kinds (default {','.join(FAULT_KINDS)})",
    )
    p.add_argument("--json", metavar="REPORT", help="write the report as JSON to this file")
    p.add_argument("--workdir", metavar="DIR", help="keep trial folders here (default: temp)")
    p.add_argument(
        "--break",
        dest="broken",
        choices=BREAKS,
        help="break a guarantee on purpose to show the harness catches it (exit 1)",
    )
    p.set_defaults(sim_func=cmd_faults)


def cmd_faults(args: argparse.Namespace) -> int:
    """Run the harness; print the table; 0 only if every check of every trial passed."""
    faults = [f.strip() for f in str(args.faults).split(",") if f.strip()]
    try:
        if args.trials < 1:
            raise ValueError(f"--trials must be >= 1, not {args.trials}")
        for f in faults:
            if f not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {f!r}; expected {', '.join(FAULT_KINDS)}")
    except ValueError as exc:
        print(f"platesift: error: {exc}", file=sys.stderr)
        return 2
    json_path = Path(args.json) if args.json else None
    progress = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    if args.workdir:
        report = run_trials(
            args.trials, args.seed, faults, Path(args.workdir), json_path,
            broken=args.broken, log=progress,
        )  # fmt: skip
    else:
        with tempfile.TemporaryDirectory(prefix="platesift-faults-") as tmp:
            report = run_trials(
                args.trials, args.seed, faults, Path(tmp), json_path,
                broken=args.broken, log=progress,
            )  # fmt: skip
    print(report.table())
    return 0 if report.passed else 1


__all__ = [
    "BREAKS",
    "FAULT_KINDS",
    "Check",
    "Report",
    "Trial",
    "add_parser",
    "cmd_faults",
    "run_trials",
    "wait_until",
]
