"""The filtering threads run below decoding; the decoder's thread and the proposer's do not."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from platesift.app.worker import Worker
from platesift.config import load_settings
from platesift.priority import lower_this_thread

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux nice")


def nice_of(thread: threading.Thread) -> int:
    assert thread.native_id is not None
    return os.getpriority(os.PRIO_PROCESS, thread.native_id)


def in_new_thread(nice: int) -> tuple[int | None, int, int]:
    """(what lower_this_thread returned, nice before, nice after) in a fresh thread."""
    out: list[tuple[int | None, int, int]] = []

    def body() -> None:
        tid = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, tid)
        result = lower_this_thread(nice)
        out.append((result, before, os.getpriority(os.PRIO_PROCESS, tid)))

    t = threading.Thread(target=body)
    t.start()
    t.join(timeout=10)
    return out[0]


def test_lowers_only_the_calling_thread_and_caps_at_19() -> None:
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    result, before, after = in_new_thread(3)
    assert before == mine and after == min(19, mine + 3) == result
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine
    result, _, after = in_new_thread(40)
    assert result == after == 19
    result, before, after = in_new_thread(0)
    assert result is None and after == before


def test_worker_lowers_the_filtering_threads_only(tmp_path: Path) -> None:
    settings = load_settings(
        env={},
        overrides=[
            f"paths.journal={tmp_path / 'journal.db'}",
            "proposer.backend=none",
            "resources.filter_nice=4",
        ],
    )
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    with Worker(settings, scratch=tmp_path / "scratch"):
        nice = {t.name.split("-")[0]: nice_of(t) for t in threading.enumerate()}
    expected = min(19, base + 4)
    assert nice["MotionActor"] == nice["TaskActor"] == nice["JournalActor"] == expected
    assert nice["DecoderActor"] == nice["CoralActor"] == base
