"""`platesift doctor` reports the machine truthfully, one line per check."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.coral_usb import coral_devices
from platesift.app.cli import main
from platesift.app.doctor import check_coral, check_server, run_checks
from platesift.config import load_settings
from sim.server import TaskServer


def fake_usb(root: Path, name: str, vid: str, pid: str, speed: str) -> None:
    dev = root / name
    dev.mkdir(parents=True)
    (dev / "idVendor").write_text(vid + "\n")
    (dev / "idProduct").write_text(pid + "\n")
    (dev / "speed").write_text(speed + "\n")


def test_coral_ids_and_usb2_are_recognised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_usb(tmp_path, "1-1", "046d", "c52b", "12")  # a mouse
    assert coral_devices(tmp_path) == []
    fake_usb(tmp_path, "2-1", "18d1", "9302", "480")
    found = coral_devices(tmp_path)
    assert found == [("Coral USB (firmware loaded) at 2-1", "480")]
    monkeypatch.setattr("models.coral_usb.USB_ROOT", tmp_path)
    check = check_coral(required=True)
    assert check.status == "warn" and "USB 2" in check.detail


def test_missing_coral_fails_only_when_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("models.coral_usb.USB_ROOT", tmp_path)
    assert check_coral(required=False).status == "warn"
    assert check_coral(required=True).status == "fail"


def test_server_check_against_a_real_server(tmp_path: Path) -> None:
    with TaskServer("127.0.0.1", 0, tmp_path / "t.db", token="right") as server:
        good = load_settings(
            env={"PLATESIFT_SERVER__TOKEN": "right"}, overrides=[f"server.url={server.url}"]
        )
        bad = load_settings(
            env={"PLATESIFT_SERVER__TOKEN": "wrong"}, overrides=[f"server.url={server.url}"]
        )
        assert check_server(good).status == "ok"
        result = check_server(bad)
        assert result.status == "fail" and "401" in result.detail
        assert "wrong" not in result.line()
    down = check_server(good)
    assert down.status == "warn" and "cannot reach" in down.detail


def test_scratch_and_nas_checks(tmp_path: Path) -> None:
    theirs = tmp_path / "data"
    theirs.mkdir()
    settings = load_settings(
        env={}, overrides=[f"paths.scratch={theirs}", f"paths.nas_root={tmp_path / 'nas'}"]
    )
    by_name = {c.name: c for c in run_checks(settings, server=False)}
    assert by_name["scratch"].status == "fail"
    assert by_name["NAS"].status == "fail"  # not a directory
    (tmp_path / "nas").mkdir()
    settings = load_settings(
        env={},
        overrides=[f"paths.scratch={tmp_path / 'new'}", f"paths.nas_root={tmp_path / 'nas'}"],
    )
    by_name = {c.name: c for c in run_checks(settings, server=False)}
    assert by_name["scratch"].status == "ok"
    assert by_name["NAS"].status == "warn"  # writable, but not a mount point


def test_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok = main(["doctor", "--no-server", "--set", f"paths.scratch={tmp_path / 's'}"])
    out = capsys.readouterr().out
    assert ok == 0 and "0 failed" in out and "[ok  ] OpenCV" in out
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    assert main(["doctor", "--no-server", "--set", f"paths.scratch={theirs}"]) == 2


def test_jetson_hardware_decoder_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from actors import gstreamer_source
    from platesift.app.doctor import check_hw_decoder

    empty, fake = tmp_path / "empty", tmp_path / "fake"
    empty.mkdir()
    fake.mkdir()
    for name, code in (("gst-launch-1.0", 0), ("gst-inspect-1.0", 0)):
        (fake / name).write_text(f"#!{sys.executable}\nimport sys\nsys.exit({code})\n")
        (fake / name).chmod(0o755)
    monkeypatch.setattr("platesift.app.doctor.JETSON_RELEASE", tmp_path / "nv_tegra_release")
    monkeypatch.setattr("platesift.app.doctor.DEVICE_MODEL", tmp_path / "model")
    gstreamer_source.clear_probe_cache()

    monkeypatch.setenv("PATH", str(empty))
    check = check_hw_decoder(required=False)
    assert check.status == "warn" and "not a Jetson: software decoding" in check.detail
    (tmp_path / "model").write_text("NVIDIA Jetson Nano Developer Kit\x00")
    check = check_hw_decoder(required=False)
    assert check.status == "warn" and "gst-launch-1.0 is not on PATH" in check.detail
    assert "nvidia-l4t-gstreamer" in check.fix
    # Required when the configuration asks for it explicitly.
    settings = load_settings(
        env={}, overrides=["analysis.decoder=gstreamer", f"paths.scratch={tmp_path / 's'}"]
    )
    by_name = {c.name: c for c in run_checks(settings, server=False)}
    assert by_name["Jetson hardware decoder"].status == "fail"

    monkeypatch.setenv("PATH", str(fake))
    assert check_hw_decoder(required=True).status == "ok"
    gstreamer_source.clear_probe_cache()


def test_model_check(tmp_path: Path, plate_model: Path) -> None:
    from platesift.app.doctor import check_model

    def model_check(*overrides: str) -> tuple[str, str]:
        c = check_model(load_settings(env={}, overrides=list(overrides)))
        return c.status, c.detail

    status, detail = model_check()
    assert status == "ok" and detail.startswith("platesift-plates (shipped): plates.tflite")
    assert detail.endswith("CPU model loaded and matches; proposer auto runs tflite")
    assert model_check("proposer.backend=opencv") == ("ok", "proposer opencv needs no model")
    status, detail = model_check(f"proposer.model={tmp_path / 'none.toml'}")
    assert status == "fail" and "does not exist" in detail
    status, detail = model_check(f"proposer.model={plate_model}")
    assert status == "ok", detail
    # No Coral here; the synthetic test model dequantises its input (float tensors).
    assert (
        "CPU model loaded and matches (not fully Edge-TPU-compatible); proposer auto runs tflite"
        in detail
    )
    broken = tmp_path / "m.toml"
    broken.write_text(plate_model.read_text().replace("[160, 160]", "[300, 300]"))
    for f in plate_model.parent.glob("*.tflite"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    status, detail = model_check(f"proposer.model={broken}")
    assert status == "fail" and "the manifest says [1, 300, 300, 3]" in detail


@pytest.fixture
def fake_tpu_settings(tmp_path: Path, plate_model: Path) -> tuple[Path, object]:
    control = tmp_path / "tpu"
    control.mkdir()
    settings = load_settings(
        env={},
        overrides=[
            "proposer.backend=fake-edgetpu",
            f"proposer.model={plate_model}",
            f"proposer.fake_control={control}",
            "proposer.deadline_s=1",
        ],
    )
    return control, settings


@pytest.mark.parametrize(
    ("switch", "said"),
    [
        (None, None),
        ("abort", "aborted (SIGABRT"),
        ("segfault", "crashed (SIGSEGV"),
        ("hang", "missed its deadline"),
        ("absent", "no Edge TPU answered"),
    ],
)
def test_doctor_runs_one_edge_tpu_inference_in_a_child_and_survives_its_crash(
    fake_tpu_settings: tuple[Path, object], switch: str | None, said: str | None
) -> None:
    from platesift.app.doctor import check_edgetpu_inference

    control, settings = fake_tpu_settings
    if switch is not None:
        (control / switch).write_text("0")
    check = check_edgetpu_inference(settings)  # type: ignore[arg-type]
    assert check is not None
    if said is None:
        assert check.status == "ok" and "one inference in" in check.detail, check
    else:
        assert check.status == "fail" and said in check.detail, check
        assert "\n" not in check.line() and "libedgetpu" in check.fix


def test_doctor_command_reports_a_segfaulting_tpu_and_exits_normally(
    fake_tpu_settings: tuple[Path, object], plate_model: Path, tmp_path: Path
) -> None:
    from tests.test_cli import run

    control, _ = fake_tpu_settings
    (control / "segfault").write_text("0")
    result = run(
        [
            "doctor",
            "--no-server",
            "--set",
            "proposer.backend=fake-edgetpu",
            "--set",
            f"proposer.model={plate_model}",
            "--set",
            f"proposer.fake_control={control}",
        ],
        tmp_path,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if "Edge TPU inference" in x)
    assert line.startswith("[FAIL]") and "SIGSEGV" in line
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("failed")


@pytest.mark.parametrize(
    ("runtime", "libedgetpu", "bad"),
    [
        ("tflite-runtime 2.13.0", "libedgetpu1-std 16.0", True),  # the crash of edgetpu#812
        ("ai-edge-litert 1.2.0", "libedgetpu1-std 16.0", True),
        ("tflite-runtime 2.11.1", "libedgetpu1-std 16.0", False),  # the last that works
        ("tflite-runtime 2.19.1", "libedgetpu1-std 16.0tf2.19.1-1", False),  # built for it
        ("tflite-runtime 2.17.0", "libedgetpu1-max 16.0tf2.19.1-1", True),  # built for another
        ("tflite-runtime 2.13.0", "", False),  # nothing known
    ],
)
def test_known_bad_runtime_and_libedgetpu_pairings(
    runtime: str, libedgetpu: str, bad: bool
) -> None:
    from platesift.app.doctor import known_bad_pairing

    assert bool(known_bad_pairing(runtime, libedgetpu)) is bad


def test_a_coral_node_the_user_cannot_open_is_a_fail_with_the_udev_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from platesift.app.doctor import check_usb_access

    monkeypatch.setattr("models.coral_usb.USB_ROOT", tmp_path)
    assert check_usb_access() is None  # no Coral: nothing to say
    fake_usb(tmp_path, "2-1", "1a6e", "089a", "5000")
    (tmp_path / "2-1" / "busnum").write_text("250\n")  # no such bus: the node cannot be opened
    (tmp_path / "2-1" / "devnum").write_text("7\n")
    check = check_usb_access()
    assert check is not None and check.status == "fail"
    assert "/dev/bus/usb/250/007" in check.detail and "99-platesift-coral.rules" in check.fix


def test_the_nas_sentinel_and_the_journal_are_checked(tmp_path: Path) -> None:
    from platesift.app.doctor import check_journal, check_nas

    nas = tmp_path / "nas"
    nas.mkdir()
    settings = load_settings(
        env={},
        overrides=[
            f"paths.nas_root={nas}",
            "paths.nas_sentinel=.platesift-nas",
            f"paths.journal={tmp_path / 'state' / 'journal.db'}",
        ],
    )
    check = check_nas(settings)
    assert check.status == "fail" and ".platesift-nas" in check.detail
    (nas / ".platesift-nas").touch()
    assert check_nas(settings).status in ("ok", "warn")  # warn: a folder, not a mount point
    assert check_journal(settings).status == "ok"
