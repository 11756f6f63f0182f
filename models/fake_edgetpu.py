"""A fake Edge TPU for the fault harness and the tests: the manifest's CPU model, run through
the real TFLite runtime, behind fault switches that make it fail the way a USB Coral fails.

Selected with `proposer.backend = "fake-edgetpu"` and `proposer.fake_control = DIR`. Files in
DIR are the switches (the real backends never look at them):

- `absent`: the device is not there. Opening it fails as `load_delegate` does without a
  Coral; an inference while it is absent aborts the process, as libedgetpu does when a USB
  transfer fails. The device is back when the file is removed.
- `abort`: abort the process (SIGABRT, no Python exception) at an inference.
- `hang`: block forever inside an inference, as a wedged `invoke()` does.
- `segfault`: crash the process with SIGSEGV at an inference, as a libedgetpu built against
  another TensorFlow version than the runtime's does (google-coral/edgetpu issue 812).

`abort`, `hang` and `segfault` may hold a number N: the fault fires after N more inferences.
A fault that fires removes its file first, so the restarted process works again (one fault per
file).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from models.manifest import ModelManifest
from models.proposer import Box, Proposal, Proposer
from models.tflite_detector import open_cpu
from models.tflite_runtime import EDGETPU_LIBRARY, Runtime, load_edgetpu_delegate

BACKEND = "fake-edgetpu"


class FakeEdgeTpu(Proposer):
    """The CPU model wearing an Edge TPU's failure modes."""

    backend = BACKEND

    def __init__(
        self, manifest: ModelManifest, runtime: Runtime, control: Path, min_plate_px: float = 20.0
    ) -> None:
        self.control = control
        # Opening the device: fails exactly like load_delegate() with no Coral attached.
        load_edgetpu_delegate(runtime, "", loader=self._load_delegate)
        self._cpu = open_cpu(manifest, runtime, min_plate_px)
        self.model = self._cpu.model

    def watch_inferences(self, hook: Callable[[], None]) -> None:
        self._cpu.watch_inferences(hook)

    def _load_delegate(self, library: str, options: dict[str, str]) -> object:
        if (self.control / "absent").exists():
            raise ValueError(f"Failed to load delegate from {EDGETPU_LIBRARY}")
        return object()

    def propose(self, luma: np.ndarray, rois: Sequence[Box]) -> list[Proposal]:
        self._device_check()
        return self._cpu.propose(luma, rois)

    def _device_check(self) -> None:
        if (self.control / "absent").exists():
            os.abort()  # a USB transfer to a vanished device: libedgetpu aborts
        if self._fires("abort"):
            os.abort()
        if self._fires("segfault"):
            signal.signal(signal.SIGSEGV, signal.SIG_DFL)  # no faulthandler: die as C code does
            os.kill(os.getpid(), signal.SIGSEGV)
        if self._fires("hang"):
            threading.Event().wait()  # never returns: the parent's deadline kills us

    def _fires(self, name: str) -> bool:
        switch = self.control / name
        try:
            text = switch.read_text().strip()
        except OSError:
            return False
        remaining = int(text) if text.isdigit() else 0
        if remaining > 0:
            tmp = switch.with_name(f".{name}.tmp")
            tmp.write_text(str(remaining - 1))
            os.replace(tmp, switch)
            return False
        try:
            switch.unlink()
        except FileNotFoundError:
            return False  # someone else consumed it
        return True


__all__ = ["BACKEND", "FakeEdgeTpu"]
