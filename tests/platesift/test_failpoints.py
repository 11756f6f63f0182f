"""The `hold` failpoint: it marks that it is there, and lets go on removal or cancel."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from platesift import failpoints
from tests.conftest import wait_until


def hold_in_thread(cancel: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=failpoints.hit, args=("mid_task", cancel), daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("release", ["remove the file", "cancel the task"])
def test_hold_waits_until_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release: str
) -> None:
    held = tmp_path / "held"
    monkeypatch.setenv(failpoints.ENV, f"after_publish=exit,mid_task=hold:{held}")
    cancel = threading.Event()
    thread = hold_in_thread(cancel)
    assert wait_until(held.exists, timeout=10)
    thread.join(timeout=0.2)
    assert thread.is_alive()  # still held
    if release == "remove the file":
        held.unlink()
    else:
        cancel.set()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_unset_or_other_points_do_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(failpoints.ENV, raising=False)
    failpoints.hit("mid_task")
    monkeypatch.setenv(failpoints.ENV, f"after_publish=hold:{tmp_path / 'held'}")
    failpoints.hit("mid_task")
    assert not (tmp_path / "held").exists()
