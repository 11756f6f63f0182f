"""What the fault harness checks after a trial: every task ended once, one heavy task per
source with its manifest's key, artifacts identical to the golden run, no untrusted or temp
files, scratch empty, and a journal that shows the fault and the recovery."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from journal import Journal
from platesift.artifacts import idempotency_key, verify_artifact_dir
from platesift.scratch import is_empty
from sim.fault_system import Check, System


def normalised(art: Path, task_id: str, root: Path) -> dict[str, Any]:
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


def _service_events(system: System, match: Callable[[Any], bool]) -> int:
    """How many of the service's journal entries match (0 while the journal is missing or
    busy)."""
    try:
        with Journal.open_existing(system.journal) as journal:
            return sum(match(e) for e in journal.events("(service)"))
    except Exception:  # not created yet, or busy
        return 0


def proposer_backoffs(system: System) -> int:
    """How many times the service has waited for the proposer (journal backoff notes)."""
    return _service_events(
        system,
        lambda e: e.event == "backoff" and e.detail.get("kind") == "ProposerUnavailableError",
    )


def boots(system: System) -> int:
    return _service_events(system, lambda e: e.event == "boot")


def run_checks(
    system: System,
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
        got, want = normalised(art, task_id, system.root), golden[video]
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
    system: System, ids: dict[str, str], attempts: dict[str, Any], kind: str, phase: str
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


__all__ = ["boots", "normalised", "proposer_backoffs", "run_checks"]
