"""A one-line progress bar on a terminal (nothing at all when stderr is not a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Call with (frames decoded, frames declared); redraws at most ten times a second."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.width = width
        self.started = time.monotonic()
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < 0.1:
            return
        self._last = now
        fps = done / max(now - self.started, 1e-6)
        if total > 0:
            frac = min(1.0, done / total)
            filled = round(frac * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            text = f"\r[{bar}] {frac:4.0%} {done}/{total} frames {fps:6.0f} fps"
        else:
            text = f"\r{done} frames {fps:6.0f} fps"
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * (self.width + 48) + "\r")
            self.stream.flush()


__all__ = ["ProgressBar"]
