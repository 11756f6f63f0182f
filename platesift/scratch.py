"""The local scratch directory: created and marked by platesift, wiped on boot, and nothing
else is ever deleted.

The wipe refuses to run on `/`, a home directory, the NAS root or anything above it, anything
on the NAS, and any existing directory that does not carry our marker file (so a typo in the
config cannot wipe somebody's data).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

from platesift.errors import ConfigError, ScratchError

MARKER = ".platesift-scratch"
LOCK = ".platesift-lock"
_KEEP = {MARKER, LOCK}
_MARKER_TEXT = "This directory is platesift's scratch space; it is wiped when platesift starts.\n"


def _home_dirs() -> set[Path]:
    homes = {Path("/root"), Path("/home")}
    for candidate in (os.environ.get("HOME"), str(Path.home())):
        if candidate:
            homes.add(Path(os.path.realpath(candidate)))
    with contextlib.suppress(OSError):
        homes.update(Path("/home").iterdir())
    return homes


def check_scratch_location(path: Path, nas_root: Path | None) -> Path:
    """The real path of `path`, or ConfigError if it must never be used as scratch."""
    real = Path(os.path.realpath(path.expanduser()))
    if real == Path(real.anchor):
        raise ConfigError(f"scratch directory {path} is the filesystem root; refusing")
    if real in _home_dirs():
        raise ConfigError(f"scratch directory {path} is a home directory; refusing")
    if nas_root is not None and str(nas_root):
        nas = Path(os.path.realpath(nas_root))
        if real == nas or nas.is_relative_to(real):
            raise ConfigError(f"scratch directory {path} is the NAS root or above it; refusing")
        if real.is_relative_to(nas):
            raise ConfigError(f"scratch directory {path} is on the NAS; scratch must be local")
    return real


def prepare_scratch(path: Path, nas_root: Path | None = None, *, wipe: bool) -> Path:
    """Create and mark the scratch directory, or check it is ours; then optionally wipe it."""
    real = check_scratch_location(path, nas_root)
    try:
        if real.exists():
            if not real.is_dir():
                raise ConfigError(f"scratch directory {path} is not a directory")
            if not (real / MARKER).is_file():
                raise ConfigError(
                    f"scratch directory {path} exists but was not created by platesift "
                    f"(no {MARKER} file); refusing to wipe it. Point paths.scratch at a new "
                    "directory"
                )
        else:
            real.mkdir(parents=True, exist_ok=True)
            (real / MARKER).write_text(_MARKER_TEXT)
        if wipe:
            wipe_scratch(real)
    except OSError as exc:
        raise ScratchError(f"scratch directory {path}: {exc.strerror or exc}") from None
    return real


def wipe_scratch(real: Path) -> int:
    """Delete everything inside a marked scratch directory except the marker; count entries."""
    if not (real / MARKER).is_file():
        raise ConfigError(f"{real} is not a platesift scratch directory; refusing to wipe it")
    removed = 0
    for entry in real.iterdir():
        if entry.name in _KEEP:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()  # a symlink is removed itself, never followed
        removed += 1
    return removed


def is_empty(real: Path) -> bool:
    """True when the scratch directory holds nothing but its marker (and lock)."""
    return all(entry.name in _KEEP for entry in real.iterdir())


class ScratchLock:
    """An exclusive lock on a scratch directory, held for a service's whole life, so two
    services can never wipe each other's work."""

    def __init__(self, real: Path) -> None:
        self.path = real / LOCK
        self._fd: int | None = None

    def acquire(self) -> ScratchLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                f"scratch directory {self.path.parent} is in use by another platesift service"
            ) from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


__all__ = [
    "MARKER",
    "ScratchLock",
    "check_scratch_location",
    "is_empty",
    "prepare_scratch",
    "wipe_scratch",
]
