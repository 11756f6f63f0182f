"""`platesift demo` (what `make demo` runs): the whole embedded system on one machine.

It starts the reference main server on loopback, makes a NAS folder with a generated street
video and its sidecar metadata, submits one PREPROCESS_VIDEO task, runs the service until the
queue is drained, and shows the completed task, the published heavy task and the artifacts.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from pathlib import Path

import requests

from platesift.app.service import Service
from platesift.artifacts import verify_artifact_dir
from platesift.config import Settings
from sim.commands import format_tasks
from sim.scenes import preset, render
from sim.server import TaskServer

VIDEO = "cams/north-gate/street.mp4"


def run_demo(out: Path, base: Settings) -> int:
    out = out.absolute()
    nas = out / "nas"
    video = nas / VIDEO
    video.parent.mkdir(parents=True, exist_ok=True)
    print(f"[1/4] rendering a sample street scene to {video}")
    truth = render(preset("demo"), video)
    sidecar = {"camera": "north-gate", "site": "demo", "fps": truth.spec.fps}
    video.with_name(video.name + ".json").write_text(json.dumps(sidecar, indent=2) + "\n")

    db = out / "tasks.db"
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)  # a fresh queue each run
    token = secrets.token_hex(16)  # in memory only, never printed
    with TaskServer("127.0.0.1", 0, db, token=token, lease_s=30.0) as server:
        print(f"[2/4] reference main server on {server.url}; submitting one task")
        headers = {"Authorization": f"Bearer {token}"}
        answer = requests.post(
            f"{server.url}/v1/tasks",
            headers=headers,
            timeout=10,
            json={"type": "PREPROCESS_VIDEO", "payload": {"video": VIDEO}},
        )
        answer.raise_for_status()
        settings = dataclasses.replace(
            base,
            paths=dataclasses.replace(
                base.paths,
                nas_root=str(nas),
                scratch=str(out / "scratch"),
                journal=str(out / "journal.db"),
            ),
            server=dataclasses.replace(base.server, url=server.url, token=token, wait_s=1.0),
        )
        print("[3/4] running the service until the queue is drained")
        code = Service(settings, drain=True).run()
        tasks = requests.get(f"{server.url}/v1/tasks", headers=headers, timeout=10).json()
    if code != 0:
        return code
    print("[4/4] done\n")
    print(format_tasks(tasks["tasks"]))
    heavy = [t for t in tasks["tasks"] if t["type"] == settings.server.heavy_task_type]
    for task in heavy:
        print(f"\nheavy task {task['task_id']} payload:")
        print(json.dumps(task["payload"], indent=2, sort_keys=True))
    source = next(t for t in tasks["tasks"] if t["type"] == "PREPROCESS_VIDEO")
    artifacts = nas / settings.paths.artifact_root / source["task_id"]
    problems = verify_artifact_dir(artifacts)
    print(f"\nartifacts in {artifacts} ({problems if problems else 'verified'}):")
    for path in sorted(p for p in artifacts.iterdir()):
        extra = f" ({len(list(path.iterdir()))} thumbnails)" if path.is_dir() else ""
        print(f"  {path.name}{extra}")
    print(f"\njournal: platesift journal --set paths.journal={out / 'journal.db'} tasks")
    return 0 if not problems and len(heavy) == 1 and source["state"] == "done" else 1


__all__ = ["run_demo"]
