"""The fault-injection harness end to end: real `platesift serve` processes, a real server,
real power cuts, NAS and server outages; and a broken guarantee the harness must catch."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from sim.faults import _plan, add_parser, cmd_faults, run_trials

pytestmark = pytest.mark.slow  # `make check` leaves it out; `make test` runs it


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faults")  # videos are rendered once, shared by the tests


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["faults", *argv])


def test_plan_covers_every_kind_and_every_power_phase() -> None:
    plan = _plan(20, 7, ["power", "tpu", "nas", "server"])
    assert {kind for kind, _ in plan} == {"power", "tpu", "nas", "server"}
    assert {p for k, p in plan if k == "tpu"} == {
        "abort",
        "hang",
        "segfault",
        "unplug",
        "absent-at-start",
    }
    assert {p for k, p in plan if k == "power"} == {
        "running",
        "after_manifest",
        "after_publish",
        "before_complete",
    }
    assert {p for k, p in plan if k == "server"} == {"restart", "error500", "close"}
    assert plan == _plan(20, 7, ["power", "tpu", "nas", "server"])  # the seed decides


def test_every_fault_kind_is_survived(workdir: Path) -> None:
    report_path = workdir / "report.json"
    # 8 trials, each kind twice; seed 5: power after_manifest and a random mid-task moment,
    # the Coral aborting and unplugged, server dropped connections and a restart, two NAS
    # outages.
    kinds = ["power", "tpu", "nas", "server"]
    report = run_trials(8, 5, kinds, workdir / "run", report_path)
    assert sorted(t.fault for t in report.trials) == sorted(kinds * 2)
    failed = {t.trial: [c for c in t.checks if not c.ok] for t in report.trials if not t.passed}
    assert failed == {}, report.table()
    data = json.loads(report_path.read_text())
    assert data["all_checks_passed"] is True
    assert data["totals"]["trials"] == 8 and data["totals"]["failed"] == 0
    assert data["totals"]["passed_by_fault"] == {"nas": 2, "power": 2, "server": 2, "tpu": 2}
    for trial in data["trials"]:
        assert set(trial["checks"]) == {
            "final",
            "heavy",
            "golden",
            "manifests",
            "no_tmp",
            "scratch",
            "journal",
        }
    power = [t for t in report.trials if t.fault == "power"]
    assert all(t.starts >= 2 for t in power)  # killed, then restarted
    tpu = [t for t in report.trials if t.fault == "tpu"]
    assert all(t.starts == 1 for t in tpu)  # the service itself never died


def test_every_coral_failure_mode_is_survived(workdir: Path) -> None:
    report = run_trials(5, 1, ["tpu"], workdir / "tpu", None)
    modes = {t.phase.split("@")[0].split("+")[0] for t in report.trials}
    assert modes == {"abort", "hang", "segfault", "unplug", "absent-at-start"}
    failed = {t.trial: [c for c in t.checks if not c.ok] for t in report.trials if not t.passed}
    assert failed == {}, report.table()
    for t in report.trials:
        if not t.phase.startswith("unplug"):
            journal = next(c for c in t.checks if c.name == "journal")
            assert "proposer fault journaled" in journal.reason, journal.reason
        if t.phase.startswith(("abort", "hang", "segfault")):
            attempts = next(c for c in t.checks if c.name == "final").reason
            assert ": 2" in attempts, attempts  # the hit task failed once, then succeeded


@pytest.mark.parametrize(
    ("broken", "check"),
    [("extra-heavy", "heavy"), ("delete-file", "manifests"), ("no-restart", "final")],
)
def test_harness_catches_a_broken_guarantee(
    workdir: Path, broken: str, check: str, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = workdir / f"broken-{broken}.json"
    args = _args(
        "--trials", "1", "--seed", "1", "--faults", "nas",
        "--workdir", str(workdir / broken), "--json", str(report_path), "--break", broken,
    )  # fmt: skip
    assert cmd_faults(args) == 1
    data = json.loads(report_path.read_text())
    assert data["all_checks_passed"] is False
    checks = data["trials"][0]["checks"]
    assert checks[check]["ok"] is False, checks
    assert "FAILED" in capsys.readouterr().out


def test_an_unknown_fault_kind_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_faults(_args("--faults", "power,flood")) == 2
    assert "unknown fault kind 'flood'" in capsys.readouterr().err
