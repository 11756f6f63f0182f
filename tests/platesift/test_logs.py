"""Untrusted text cannot break a log line or an error line."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

from platesift.logs import OneLineFormatter, one_line


def test_one_line_escapes_controls_and_keeps_other_text() -> None:
    assert one_line("cam/a\nINFO forged: done\r\x1b[2J.mp4") == (
        "cam/a\\nINFO forged: done\\r\\x1b[2J.mp4"
    )
    assert one_line("caméra/vidéo 1.mp4") == "caméra/vidéo 1.mp4"
    assert one_line("a\u2028b\x85c") == "a\\u2028b\\x85c"


def test_a_logged_path_with_a_newline_stays_on_one_line() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter("%(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("platesift.test.logs")
    log.addHandler(handler)
    try:
        log.warning("task %s: source %s missing", "t-1", "cam/x.mp4\nERROR platesift: forged")
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines == [
        "WARNING platesift.test.logs: task t-1: source cam/x.mp4\\nERROR platesift: forged missing"
    ]


def test_the_cli_error_line_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "no\nsuch.mp4"
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("platesift")),
            "preprocess",
            "--out",
            str(tmp_path / "o"),
            str(bad),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "no\\nsuch.mp4" in done.stderr
