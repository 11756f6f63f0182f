"""The inference process: real child processes, really aborted, hung and killed (through the
fake Edge TPU's switches), restarted with backoff; the service side never dies from it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import numpy as np
import pytest

from models.backends import BackendSpec
from models.isolation import IsolatedProposer
from models.manifest import load_manifest
from models.tflite_detector import open_cpu
from models.tflite_runtime import require_runtime
from platesift.errors import ModelError, ProposerUnavailableError

from ..conftest import FakeClock
from .test_tflite_detector import contains_centre, scene_with_plate


def images() -> tuple[list[np.ndarray], list[tuple]]:
    shots = [scene_with_plate(400, 180, 150, 100, 22), scene_with_plate(160, 160, 20, 60, 12)]
    return [img for img, _ in shots], [plate for _, plate in shots]


@pytest.fixture
def control(tmp_path: Path) -> Path:
    path = tmp_path / "tpu"
    path.mkdir()
    return path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake_tpu(plate_model: Path, control: Path, clock: FakeClock) -> Iterator[IsolatedProposer]:
    spec = BackendSpec("fake-edgetpu", str(plate_model), fake_control=str(control))
    proposer = IsolatedProposer(spec, deadline_s=2.0, clock=clock)
    yield proposer
    proposer.close()


def pid_gone(pid: int, timeout: float = 10.0) -> bool:
    waiter = threading.Event()
    for _ in range(int(timeout / 0.05)):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        waiter.wait(0.05)
    return False


def test_the_child_answers_like_the_backend_in_process(plate_model: Path) -> None:
    imgs, plates = images()
    direct = open_cpu(load_manifest(plate_model), require_runtime())
    isolated = IsolatedProposer(BackendSpec("tflite", str(plate_model)))
    try:
        found = isolated.propose_many(imgs)
        assert found == [direct.propose(img, ()) for img in imgs]
        assert all(contains_centre(f[0].box, p) for f, p in zip(found, plates))
        assert isolated.backend == "tflite" and isolated.model == direct.model
        assert isolated.propose_many([]) == []
    finally:
        isolated.close()


def test_an_abort_fails_the_request_and_the_child_restarts_after_backoff(
    fake_tpu: IsolatedProposer, control: Path, clock: FakeClock
) -> None:
    imgs, _ = images()
    good = fake_tpu.propose_many(imgs)
    first = fake_tpu._proc
    assert first is not None
    (control / "abort").write_text("0")
    with pytest.raises(ProposerUnavailableError, match=r"aborted \(SIGABRT"):
        fake_tpu.propose_many(imgs)
    assert not fake_tpu.alive and not (control / "abort").exists()
    with pytest.raises(ProposerUnavailableError, match="restarting it in"):
        fake_tpu.propose_many(imgs)  # inside the backoff: no restart storm
    clock.advance(1.0)
    assert fake_tpu.propose_many(imgs) == good  # a new child, the same answers
    assert fake_tpu.restarts == 1 and fake_tpu.faults == 0


def test_a_segfault_is_a_tpu_fault_like_an_abort(
    fake_tpu: IsolatedProposer, control: Path, clock: FakeClock
) -> None:
    imgs, _ = images()
    good = fake_tpu.propose_many(imgs)
    (control / "segfault").write_text("0")
    with pytest.raises(ProposerUnavailableError, match=r"crashed \(SIGSEGV"):
        fake_tpu.propose_many(imgs)
    assert not fake_tpu.alive and not (control / "segfault").exists()
    clock.advance(1.0)
    assert fake_tpu.propose_many(imgs) == good  # a new child, the same answers


def test_backoff_grows_with_each_fault_and_is_capped(
    plate_model: Path, control: Path, clock: FakeClock
) -> None:
    spec = BackendSpec("fake-edgetpu", str(plate_model), fake_control=str(control))
    proposer = IsolatedProposer(spec, clock=clock, backoff_max_s=1.5)
    imgs, _ = images()
    delays = []
    try:
        for _ in range(4):
            (control / "abort").write_text("0")
            proposer.ensure_ready()
            with pytest.raises(ProposerUnavailableError) as info:
                proposer.propose_many(imgs)
            delays.append(info.value.message.rsplit("in ", 1)[1])
            clock.advance(10)
    finally:
        proposer.close()
    assert delays == ["0.5 s", "1.0 s", "1.5 s", "1.5 s"]


def test_abort_after_n_inferences(fake_tpu: IsolatedProposer, control: Path) -> None:
    imgs, _ = images()
    (control / "abort").write_text("3")  # 3 more inferences work, the 4th aborts
    fake_tpu.propose_many(imgs)  # 2 inferences
    assert (control / "abort").read_text() == "1"
    with pytest.raises(ProposerUnavailableError, match="aborted"):
        fake_tpu.propose_many(imgs)


def test_a_hang_past_the_deadline_kills_the_child(
    plate_model: Path, control: Path, clock: FakeClock
) -> None:
    spec = BackendSpec("fake-edgetpu", str(plate_model), fake_control=str(control))
    proposer = IsolatedProposer(spec, deadline_s=0.3, clock=clock)
    imgs, _ = images()
    try:
        proposer.ensure_ready()
        assert proposer._proc is not None
        pid = proposer._proc.pid
        assert pid is not None
        (control / "hang").write_text("0")
        with pytest.raises(ProposerUnavailableError, match=r"missed its deadline \(0.3 s\): hung"):
            proposer.propose_many(imgs)
        assert pid_gone(pid)
        clock.advance(1.0)
        assert proposer.propose_many(imgs)[0]
    finally:
        proposer.close()


def test_a_missing_device_at_start_is_transient_until_it_returns(
    fake_tpu: IsolatedProposer, control: Path, clock: FakeClock
) -> None:
    (control / "absent").touch()
    with pytest.raises(ProposerUnavailableError, match="is the Coral plugged in"):
        fake_tpu.ensure_ready()
    clock.advance(1.0)
    with pytest.raises(ProposerUnavailableError, match="is the Coral plugged in"):
        fake_tpu.ensure_ready()  # still absent: tried again after the backoff, still transient
    (control / "absent").unlink()
    clock.advance(5.0)
    fake_tpu.ensure_ready()
    assert fake_tpu.alive and fake_tpu.propose_many(images()[0])[0]


def test_unplugging_mid_run_aborts_like_libedgetpu(
    fake_tpu: IsolatedProposer, control: Path
) -> None:
    imgs, _ = images()
    fake_tpu.propose_many(imgs)
    (control / "absent").touch()
    with pytest.raises(ProposerUnavailableError, match="SIGABRT"):
        fake_tpu.propose_many(imgs)


def test_a_bad_model_is_permanent_and_not_retried_as_a_device_fault(tmp_path: Path) -> None:
    proposer = IsolatedProposer(BackendSpec("tflite", str(tmp_path / "missing.toml")))
    with pytest.raises(ModelError, match=r"missing\.toml does not exist"):
        proposer.ensure_ready()
    assert proposer.faults == 0 and not proposer.alive


def test_the_shared_memory_segment_is_removed_and_stale_ones_cleaned(
    plate_model: Path, tmp_path: Path
) -> None:
    prefix = f"platesift-test-{os.getpid()}"
    stale = SharedMemory(name=f"{prefix}-9", create=True, size=1024)
    stale.close()  # as a killed worker leaves it: never unlinked
    proposer = IsolatedProposer(BackendSpec("tflite", str(plate_model)), segment_name=prefix)
    try:
        assert not Path(f"/dev/shm/{prefix}-9").exists()  # gone at boot, before any proposal
        proposer.propose_many(images()[0])
        assert Path(f"/dev/shm/{prefix}-1").exists()
    finally:
        proposer.close()
    assert not list(Path("/dev/shm").glob(f"{prefix}-*"))


def test_the_child_dies_with_a_killed_parent(plate_model: Path, tmp_path: Path) -> None:
    """Power loss of the service mid-inference must not leave an orphan holding the Coral."""
    script = (
        "import sys, threading\n"
        "from models.backends import BackendSpec\n"
        "from models.isolation import IsolatedProposer\n"
        f"p = IsolatedProposer(BackendSpec('tflite', {str(plate_model)!r}))\n"
        "p.ensure_ready()\n"
        "print(p._proc.pid, flush=True)\n"
        "threading.Event().wait()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=Path.cwd()
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        os.kill(child, 0)  # alive
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert pid_gone(child)
    finally:
        if parent.poll() is None:
            parent.kill()
