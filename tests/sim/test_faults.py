"""The fault-injection harness end to end: real `platesift serve` processes, a real server,
real power cuts, NAS and server outages; and a broken guarantee the harness must catch."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from sim.faults import _plan, add_parser, cmd_faults, run_trials


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faults")  # videos are rendered once, shared by the tests


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["faults", *argv])


def test_plan_covers_every_kind_and_every_power_phase() -> None:
    plan = _plan(12, 7, ["power", "nas", "server"])
    assert {kind for kind, _ in plan} == {"power", "nas", "server"}
    assert {p for k, p in plan if k == "power"} == {
        "running",
        "after_manifest",
        "after_publish",
        "before_complete",
    }
    assert {p for k, p in plan if k == "server"} == {"restart", "error500", "close"}
    assert plan == _plan(12, 7, ["power", "nas", "server"])  # the seed decides


def test_every_fault_kind_is_survived(workdir: Path) -> None:
    report_path = workdir / "report.json"
    # 6 trials, each kind twice; seed 5: power after_manifest and a random mid-task moment,
    # server dropped connections and a restart, two NAS outages.
    report = run_trials(6, 5, ["power", "nas", "server"], workdir / "run", report_path)
    assert {t.fault for t in report.trials} == {"power", "nas", "server"}
    failed = {t.trial: [c for c in t.checks if not c.ok] for t in report.trials if not t.passed}
    assert failed == {}, report.table()
    data = json.loads(report_path.read_text())
    assert data["all_checks_passed"] is True
    assert data["totals"]["trials"] == 6 and data["totals"]["failed"] == 0
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
    assert {t.phase.split("+")[0] for t in power} == {"after_manifest", "running"}
    server = {t.phase.split("+")[0] for t in report.trials if t.fault == "server"}
    assert server == {"close", "restart"}


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


def test_tpu_is_refused_until_its_backend_exists(capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_faults(_args("--faults", "power,tpu")) == 2
    assert "not available yet" in capsys.readouterr().err
