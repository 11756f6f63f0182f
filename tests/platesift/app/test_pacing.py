"""The pull pacer: a minimum interval between pulls, and back-off after quick empty answers."""

from __future__ import annotations

from platesift.app.pacing import PullPacer


def test_quick_empty_answers_wait_out_the_interval_then_back_off() -> None:
    pacer = PullPacer(min_interval_s=1.0, quick_limit=3)
    assert pacer.after_empty(0.01, 30.0) == (0.99, False)
    assert pacer.after_empty(0.2, 30.0) == (0.8, False)
    assert pacer.after_empty(0.0, 30.0) == (0.0, True)
    assert pacer.after_empty(0.0, 30.0) == (0.0, True)  # still not long-polling


def test_a_real_long_poll_or_a_task_resets_the_count() -> None:
    pacer = PullPacer(min_interval_s=1.0, quick_limit=2)
    assert pacer.after_empty(0.0, 30.0) == (1.0, False)
    assert pacer.after_empty(30.0, 30.0) == (0.0, False)  # it did wait: no back-off
    assert pacer.after_empty(0.0, 30.0) == (1.0, False)
    pacer.after_task()
    assert pacer.after_empty(0.0, 30.0) == (1.0, False)
