"""`platesift sim faults`: the fault-injection harness (power loss, Coral disconnect, NAS outage,
server outage).

Each trial runs the reference server in-process and a real `platesift serve` process on a
temporary NAS folder, injects one fault at a moment chosen from the seed, lets the system
drain, and checks the guarantees against a golden uninterrupted run.

The proposer is the fake Edge TPU (`models.fake_edgetpu`: the synthetic CPU model in a child
process, behind switch files) in every trial and in the golden run, so `tpu` faults fail the
way a USB Coral does: the inference process aborts, segfaults, hangs past its deadline, or
finds no device, and comes back.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.fault_checks import boots, normalised, proposer_backoffs, run_checks
from sim.fault_system import (
    BREAKS,
    FAULT_KINDS,
    POWER_PHASES,
    SERVER_MODES,
    TIMEOUT_S,
    TPU_MODES,
    VIDEOS,
    Check,
    Report,
    System,
    Trial,
    wait_until,
)
from sim.scenes import preset, render

# --- golden run --------------------------------------------------------------------------------


def _payloads() -> list[dict[str, Any]]:
    return [{"video": f"cams/{name}"} for name in VIDEOS]


def _golden(
    workdir: Path, videos: Path, model: Path
) -> tuple[dict[str, dict[str, Any]], float, int]:
    """The golden artifacts (normalised) per video, the processing time of the task set
    (first lease to last task done), which bounds the random moment of a fault, and the
    number of frames sent to the proposer, which bounds the inference a TPU fault hits."""
    system = System(workdir / "golden", videos, model)
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
        normal = {v: normalised(a, ids[v], system.root) for v, a in arts.items()}
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
    system = System(workdir / f"trial-{n:04d}", videos, model)
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
        trial.checks = run_checks(system, ids, bad_id, golden, kind, trial.phase)
        trial.starts = system.starts
    except Exception as exc:  # a harness error is a failed trial, never a silent pass
        trial.checks.append(Check("harness", False, f"{type(exc).__name__}: {exc}"))
        trial.outcome = trial.outcome or "error"
    finally:
        system.close()
        trial.duration_s = time.monotonic() - started
    return trial


def _inject(
    system: System,
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
    if kind == "tpu" and phase in ("abort", "hang", "segfault"):
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
        seen = wait_until(lambda: proposer_backoffs(system) > 0, TIMEOUT_S)
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


def _drain(system: System, restart_at: float | None) -> float | None:
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
    wait_until(lambda: boots(system) >= system.starts, 30.0)
    for proc in live:
        system.stop_worker(proc)
    return recovery


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
