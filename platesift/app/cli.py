"""The `platesift` command line: preprocess, journal, demo, settings and sim.

Every user mistake ends in one line `platesift: error: ...` and a non-zero exit code, never a
traceback. Exit codes: 0 done, 1 internal error, 2 usage or configuration error, 3 input
rejected (permanent), 4 transient failure (retry later).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from platesift import __version__

if TYPE_CHECKING:
    from actors.messages import TaskOutcome
from platesift.config import SECRET_KEYS, ProposerSettings, Settings, describe, load_settings
from platesift.errors import ConfigError, FatalError, PlatesiftError
from platesift.logs import OneLineFormatter, one_line

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_REJECTED, EXIT_TRANSIENT = 0, 1, 2, 3, 4
PROPOSER_CHOICES = next(
    f.metadata["choices"] for f in dataclasses.fields(ProposerSettings) if f.name == "backend"
)

logger = logging.getLogger("platesift")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"platesift: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="platesift", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"platesift {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def settings_args(p: argparse.ArgumentParser, below: bool = False) -> None:
        """--config and --set; `below`: on a subcommand, where they are optional repeats of
        the parent's (`journal tasks --set ...` as well as `journal --set ... tasks`)."""
        unset = argparse.SUPPRESS if below else None
        p.add_argument("--config", metavar="FILE", help="TOML settings file", default=unset)
        p.add_argument(
            "--set",
            metavar="KEY=VALUE",
            action="append",
            default=unset if below else [],
            dest="overrides",
            help="override one setting, e.g. motion.threshold=25",
        )

    p = sub.add_parser("preprocess", help="preprocess one video locally (no server)")
    p.add_argument("video", help="source video file")
    p.add_argument("--out", required=True, metavar="DIR", help="artifact directory")
    p.add_argument(
        "--proposer",
        choices=PROPOSER_CHOICES,
        help="region proposer backend (default: proposer.backend setting)",
    )
    p.add_argument(
        "--model", metavar="MANIFEST", help="model manifest for edgetpu/tflite (proposer.model)"
    )
    p.add_argument(
        "--task-id",
        help="task id recorded in the manifest and journal (default: the video's name and a "
        "hash of its full path, so two cameras' 00001.mp4 stay two tasks)",
    )
    settings_args(p)

    p = sub.add_parser("propose", help="propose plate regions on still images (JPEG, PNG)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.add_argument("--draw", metavar="DIR", help="write each image with its boxes drawn")
    p.add_argument(
        "--proposer",
        choices=[c for c in PROPOSER_CHOICES if c != "fake-edgetpu"],
        help="region proposer backend (default: proposer.backend setting)",
    )
    p.add_argument("--model", metavar="MANIFEST", help="model manifest (proposer.model)")
    settings_args(p)

    p = sub.add_parser("journal", help="inspect the local event journal")
    settings_args(p)
    jsub = p.add_subparsers(dest="journal_command", required=True, parser_class=_Parser)
    jt = jsub.add_parser("tasks", help="one line per task")
    jt.add_argument("--limit", type=int, default=50)
    js = jsub.add_parser("show", help="every event of one task")
    js.add_argument("task")
    jl = jsub.add_parser("tail", help="the latest events")
    jl.add_argument("-n", type=int, default=20)
    for journal_command in (jt, js, jl):
        journal_command.add_argument(
            "--json", action="store_true", help="one JSON object per line (JSON Lines)"
        )
        settings_args(journal_command, below=True)

    p = sub.add_parser("settings", help="list every setting with its default and meaning")
    settings_args(p)

    p = sub.add_parser("demo", help="run the whole embedded system on a sample street video")
    p.add_argument("--out", default="demo-out", metavar="DIR", help="where to put everything")
    settings_args(p)

    p = sub.add_parser("doctor", help="check the machine and the configuration")
    p.add_argument("--no-server", action="store_true", help="skip the server check")
    settings_args(p)

    p = sub.add_parser("serve", help="run the worker: pull tasks from the main server")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="exit after one task")
    mode.add_argument("--drain", action="store_true", help="exit when no work is left")
    settings_args(p)

    p = sub.add_parser("verify", help="check an artifact directory: its files and schemas")
    p.add_argument("dir", nargs="+", help="artifact directory")

    p = sub.add_parser("model", help="the plate model: its Edge TPU build")
    msub = p.add_subparsers(dest="model_command", required=True, parser_class=_Parser)
    mc = msub.add_parser("compile", help="compile the model for the Edge TPU (edgetpu_compiler)")
    mc.add_argument("--out", default="plates-edgetpu", metavar="DIR", help="where to write it")
    mc.add_argument(
        "--model", metavar="MANIFEST", help="the model manifest (default: the shipped model)"
    )

    p = sub.add_parser("sim", help="simulation tools")
    ssub = p.add_subparsers(dest="sim_command", required=True, parser_class=_Parser)
    from sim.commands import add_parsers
    from sim.faults import add_parser as add_faults_parser

    add_parsers(ssub)
    add_faults_parser(ssub)
    sc = ssub.add_parser("scene", help="render a synthetic street scene with ground truth")
    sc.add_argument("out", help="video file to write (.mp4)")
    sc.add_argument("--preset", default="street")
    sc.add_argument("--seconds", type=float)
    sc.add_argument("--seed", type=int)
    sc.add_argument("--truth", metavar="FILE", help="also write the ground truth as JSON")
    return parser


def _settings(args: argparse.Namespace, extra: Sequence[str] = ()) -> Settings:
    return load_settings(args.config, overrides=[*args.overrides, *extra])


def _proposer_overrides(args: argparse.Namespace) -> list[str]:
    """`--proposer` and `--model` as setting overrides."""
    extra = [f"proposer.backend={args.proposer}"] if args.proposer else []
    if args.model:
        extra.append(f"proposer.model={args.model}")
    return extra


def local_task_id(source: str) -> str:
    """A local run's task id: the video's name, and 8 hex digits of its absolute path."""
    digest = hashlib.sha256(os.fsencode(source)).hexdigest()[:8]
    return f"{Path(source).stem or 'video'}-{digest}"


def cmd_preprocess(args: argparse.Namespace) -> int:
    from actors.messages import TaskSpec
    from platesift.app.progress import ProgressBar
    from platesift.app.worker import Worker
    from platesift.scratch import prepare_scratch

    settings = _settings(args, _proposer_overrides(args))
    video = Path(args.video)
    source = os.path.abspath(video)
    spec = TaskSpec(
        task_id=args.task_id or local_task_id(source),
        source=source,
        source_name=source,
        dest=os.path.abspath(args.out),
    )
    bar = ProgressBar()
    # Created and marked like the service's, so `serve` can later use (and wipe) it too.
    scratch_root = prepare_scratch(settings.scratch_path(), wipe=False)
    # A private scratch folder: concurrent local runs never touch each other's staging.
    with (
        tempfile.TemporaryDirectory(prefix="preprocess-", dir=scratch_root) as scratch,
        Worker(settings, scratch=Path(scratch)) as worker,
    ):
        outcome = worker.run(spec, progress=bar)
    bar.close()
    if outcome.outcome == "rejected":
        return _fail(outcome.detail, EXIT_REJECTED)
    if outcome.outcome != "done":
        return _fail(outcome.detail, EXIT_USAGE if outcome.fatal else EXIT_TRANSIENT)
    _print_summary(outcome)
    return EXIT_OK


def cmd_propose(args: argparse.Namespace) -> int:
    from models.registry import make_proposer
    from platesift.app.stills import propose_images

    settings = _settings(args, _proposer_overrides(args)).proposer
    draw_dir = Path(args.draw) if args.draw else None
    if draw_dir is not None:
        draw_dir.mkdir(parents=True, exist_ok=True)
    proposer = make_proposer(settings)
    try:
        proposer.ensure_ready()
        bad = propose_images(
            proposer,
            args.images,
            as_json=args.json,
            draw_dir=draw_dir,
            max_regions=settings.max_regions,
        )
    finally:
        proposer.close()
    return EXIT_REJECTED if bad else EXIT_OK


def _print_summary(outcome: TaskOutcome) -> None:
    c = outcome.counts
    rejected = c["rejected"]
    assert isinstance(rejected, dict)
    decoded = int(str(c["decoded"]))
    fps = decoded / max(outcome.seconds, 1e-6)
    reasons = ", ".join(f"{k} {v}" for k, v in rejected.items())
    print(f"task      {outcome.task_id}")
    print(f"frames    {decoded} decoded, {c['kept']} kept ({reasons})")
    print(f"regions   {c['regions']} in {c['frames_with_regions']} frames")
    print(f"tracks    {c['tracks']} ({c['thumbnails']} thumbnails)")
    print(f"time      {outcome.seconds:.2f} s ({fps:.0f} fps)")
    print(f"artifacts {outcome.dest}")
    if outcome.detail:
        print(f"warning   {outcome.detail}")


def cmd_journal(args: argparse.Namespace) -> int:
    from journal import Journal, JournalMissingError, format_events, format_tasks, json_lines

    settings = _settings(args)
    try:
        journal = Journal.open_existing(settings.journal_path())
    except JournalMissingError as exc:
        return _fail(str(exc), EXIT_USAGE)
    with journal:
        if args.journal_command == "tasks":
            tasks = journal.tasks(limit=args.limit)
            text = json_lines(tasks) if args.json else format_tasks(tasks)
        elif args.journal_command == "show":
            events = journal.events(args.task)
            if not events:
                return _fail(f"no task {args.task!r} in the journal", EXIT_USAGE)
            text = json_lines(events) if args.json else format_events(events, with_task=False)
        else:
            events = journal.tail(args.n)
            text = json_lines(events) if args.json else format_events(events)
    if text:
        print(text)
    return EXIT_OK


def cmd_settings(args: argparse.Namespace) -> int:
    settings = _settings(args)
    effective = {
        f"{s}.{k}": v for s, d in settings.effective_parameters().items() for k, v in d.items()
    }
    effective.update(
        {
            f"{s}.{k}": v
            for s in ("paths", "server")
            for k, v in dataclasses.asdict(getattr(settings, s)).items()
        }
    )
    for key, default, doc in describe():
        value = effective.get(key)
        if key in SECRET_KEYS and value:
            value = "(set)"  # never print a secret
        now = "" if value is None or repr(value) == default else f"  (now {value!r})"
        print(f"{key:28} {default:>10}  {doc}{now}")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from platesift.app.service import Service

    settings = _settings(args)
    return Service(settings, once=args.once, drain=args.drain).run()


def cmd_doctor(args: argparse.Namespace) -> int:
    from platesift.app.doctor import run_checks

    checks = run_checks(_settings(args), server=not args.no_server)
    for check in checks:
        print(check.line())
    failed = [c for c in checks if c.status == "fail"]
    print(f"{len(checks)} checks, {len(failed)} failed")
    return EXIT_USAGE if failed else EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from platesift.app.demo import run_demo

    return run_demo(Path(args.out), _settings(args))


def cmd_verify(args: argparse.Namespace) -> int:
    """Each directory: every file the manifest lists matches it, and every file (each line of
    the .jsonl ones) conforms to its schema. One line per directory; exit 3 if any fails."""
    from platesift.artifact_schemas import schema_problems
    from platesift.artifacts import verify_artifact_dir

    failed = 0
    for name in args.dir:
        problems = verify_artifact_dir(Path(name)) or schema_problems(Path(name))
        if problems:
            failed += 1
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            print(f"{name}: FAILED: {one_line(problems[0])}{more}")
        else:
            manifest = json.loads((Path(name) / "manifest.json").read_text(encoding="utf-8"))
            n = manifest["counts"]
            print(
                f"{name}: ok: {len(manifest['files'])} files match the manifest and the schemas "
                f"({n['kept']} frames kept of {n['decoded']}, {n['regions']} regions)"
            )
    return EXIT_REJECTED if failed else EXIT_OK


def cmd_model(args: argparse.Namespace) -> int:
    from models.edgetpu_compile import compile_for_edgetpu
    from models.registry import SHIPPED_MANIFEST

    manifest = Path(args.model) if args.model else SHIPPED_MANIFEST
    result = compile_for_edgetpu(manifest, Path(args.out))
    total = result.on_edgetpu + result.on_cpu
    left = f" (on the CPU: {', '.join(result.cpu_ops)})" if result.cpu_ops else ""
    print(f"{result.on_edgetpu} of {total} operations run on the Edge TPU{left}")
    print(f"wrote {result.edgetpu_file} and {result.manifest}")
    print(f"use it: proposer.model = {result.manifest.resolve()}")
    return EXIT_OK


def cmd_sim(args: argparse.Namespace) -> int:
    if args.sim_command != "scene":
        code: int = args.sim_func(args)
        return code
    from sim.scenes import PRESETS, preset, render

    if args.preset not in PRESETS:
        return _fail(
            f"unknown preset {args.preset!r} (choose from {', '.join(PRESETS)})", EXIT_USAGE
        )
    overrides: dict[str, object] = {}
    if args.seconds is not None:
        overrides["seconds"] = args.seconds
    if args.seed is not None:
        overrides["seed"] = args.seed
    truth = render(preset(args.preset, **overrides), args.out)
    if args.truth:
        Path(args.truth).write_text(truth.to_json())
    print(
        f"{args.out}: {len(truth.frames)} frames, {len(truth.moving_frames())} with motion, "
        f"{len(truth.readable_plate_frames())} with a readable plate"
    )
    return EXIT_OK


def _fail(message: str, code: int) -> int:
    print(f"platesift: error: {one_line(message)}", file=sys.stderr)
    return code


COMMANDS = {
    "preprocess": cmd_preprocess,
    "propose": cmd_propose,
    "journal": cmd_journal,
    "settings": cmd_settings,
    "demo": cmd_demo,
    "doctor": cmd_doctor,
    "serve": cmd_serve,
    "model": cmd_model,
    "verify": cmd_verify,
    "sim": cmd_sim,
}


def _journal_error(args: argparse.Namespace, exc: PlatesiftError) -> None:
    """Errors raised before a task even starts (bad settings) are journaled too."""
    from journal import Journal, JournalEntry

    try:
        settings = load_settings(env=os.environ)
    except ConfigError:
        settings = Settings()
    video = getattr(args, "video", "") or ""
    task_id = getattr(args, "task_id", None) or (
        local_task_id(os.path.abspath(video)) if video else "-"
    )
    journal = Journal(settings.journal_path())
    if journal.try_open():
        journal.record(
            JournalEntry(
                task_id=task_id or "-",
                attempt=0,
                kind="error",
                event="rejected",
                source="IDLE",
                dest="IDLE",
                detail={"error": exc.message, "kind": exc.kind, "command": args.command},
            )
        )
        journal.close()


QUIET_LIBRARIES = ("transitions",)
"""Loggers kept at WARNING even with -v: `transitions` logs every state change at INFO, which
the journal already records (47 of 51 lines of a `-v` run were its)."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[handler])
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, FatalError) as exc:  # the setup, not the input: exit 2
        if args.command in ("preprocess", "demo", "serve"):
            _journal_error(args, exc)
        return _fail(exc.message, EXIT_USAGE)
    except PlatesiftError as exc:
        if args.command in ("preprocess", "demo", "serve"):
            _journal_error(args, exc)
        return _fail(exc.message, EXIT_REJECTED if exc.permanent else EXIT_TRANSIENT)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), EXIT_TRANSIENT)


__all__ = [
    "COMMANDS",
    "PROPOSER_CHOICES",
    "QUIET_LIBRARIES",
    "build_parser",
    "cmd_demo",
    "cmd_doctor",
    "cmd_journal",
    "cmd_model",
    "cmd_preprocess",
    "cmd_propose",
    "cmd_serve",
    "cmd_settings",
    "cmd_sim",
    "cmd_verify",
    "local_task_id",
    "main",
]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
