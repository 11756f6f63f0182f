"""Finds a TFLite runtime and the Edge TPU library, and turns their failures into our errors.

Two interchangeable runtimes exist: `tflite_runtime` (the Jetson's wheel, Python <= 3.10,
numpy < 2) and `ai_edge_litert` (its successor, numpy 2). Both offer `Interpreter` and
`load_delegate`. Google's `pycoral` is not needed: the Edge TPU is reached through
`load_delegate("libedgetpu.so.1")`. (The index's package named `pycoral` is unrelated.)
"""

from __future__ import annotations

import contextlib
import ctypes.util
import functools
import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from platesift.errors import ConfigError, ProposerUnavailableError

EDGETPU_LIBRARY = "libedgetpu.so.1"
RUNTIME_MODULES = ("tflite_runtime.interpreter", "ai_edge_litert.interpreter")
INSTALL_HINT = (
    "pip install 'platesift[tflite]' (ai-edge-litert), or on a Jetson with Python 3.10 "
    "pip install tflite-runtime 'numpy<2' (docs/jetson.md)"
)
EDGETPU_HINT = (
    "install libedgetpu1-std from Coral's apt repository (docs/jetson.md), or choose "
    "--proposer tflite or opencv"
)


@dataclass(frozen=True)
class Runtime:
    """An importable TFLite runtime."""

    module: str
    interpreter: Any  # the Interpreter class
    load_delegate: Any


def find_runtime() -> Runtime | None:
    """The first TFLite runtime that imports and works with this numpy, or None."""
    for name in RUNTIME_MODULES:
        try:
            module = importlib.import_module(name)
        except Exception:  # ImportError, or a wheel built against another numpy
            continue
        return Runtime(name.split(".")[0], module.Interpreter, module.load_delegate)
    return None


def require_runtime() -> Runtime:
    runtime = find_runtime()
    if runtime is None:
        raise ConfigError(f"no TFLite runtime is installed: {INSTALL_HINT}")
    return runtime


def edgetpu_library_found() -> bool:
    """True when the dynamic loader can find libedgetpu (without loading it here)."""
    return ctypes.util.find_library("edgetpu") is not None


def open_interpreter(runtime: Runtime, model_path: str, delegates: list[Any] | None = None) -> Any:
    """A ready interpreter (tensors allocated), or a ModelError-worthy exception raised as is.

    The runtime's C++ logging ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.") goes
    straight to file descriptor 2; it is silenced here, where it would be the only thing a
    user sees besides the one-line errors, and failures come back as exceptions anyway."""
    with _quiet_stderr():
        interpreter = runtime.interpreter(
            model_path=model_path, experimental_delegates=delegates or None, num_threads=1
        )
        interpreter.allocate_tensors()
    return interpreter


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def load_edgetpu_delegate(runtime: Runtime, device: str, loader: Any = None) -> Any:
    """The Edge TPU delegate for `device` ("" = the first one found).

    Missing library -> ConfigError (installing it is the fix); library present but no device
    answering -> ProposerUnavailableError (transient: the Coral may be plugged back in).
    """
    load = loader or runtime.load_delegate
    options = {"device": device} if device else {}
    try:
        return load(EDGETPU_LIBRARY, options)
    except OSError as exc:  # the shared library itself is missing
        raise ConfigError(
            f"proposer edgetpu: {EDGETPU_LIBRARY} cannot be loaded ({exc}): {EDGETPU_HINT}"
        ) from None
    except ValueError:
        where = f"device {device!r}" if device else "any device"
        raise ProposerUnavailableError(
            f"no Edge TPU answered ({where}): is the Coral plugged in (lsusb shows 1a6e:089a "
            "or 18d1:9302)? run `platesift doctor`"
        ) from None


@functools.cache
def installed_versions() -> dict[str, str]:
    """The installed TFLite runtime's and libedgetpu's package versions ("" when unknown)."""
    found = {"runtime": "", "libedgetpu": ""}
    for dist in ("tflite-runtime", "ai-edge-litert"):
        try:
            found["runtime"] = f"{dist} {metadata.version(dist)}"
            break
        except metadata.PackageNotFoundError:
            continue
    for package in ("libedgetpu1-std", "libedgetpu1-max"):
        try:
            done = subprocess.run(
                ["dpkg-query", "-W", "-f", "${Version}", package],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            break
        if done.returncode == 0 and done.stdout.strip():
            found["libedgetpu"] = f"{package} {done.stdout.strip()}"
            break
    return found


__all__ = [
    "EDGETPU_HINT",
    "EDGETPU_LIBRARY",
    "INSTALL_HINT",
    "RUNTIME_MODULES",
    "Runtime",
    "edgetpu_library_found",
    "find_runtime",
    "installed_versions",
    "load_edgetpu_delegate",
    "open_interpreter",
    "require_runtime",
]
