"""The read side of the NAS: the errno tables that map OS errors onto the taxonomy, the NAS
root check (sentinel, mount point), path confinement (a task can only name files under the NAS
root) and the source check."""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path

from platesift.errors import (
    InvalidInputError,
    NasUnavailableError,
    PathNotAllowedError,
)

logger = logging.getLogger(__name__)

TMP_SUFFIX = ".platesift-tmp"
"""Temp files of ours are named `.<name>.platesift-tmp`; no other program uses that pattern."""

#: errnos meaning "the storage is away or briefly broken": retry later
TRANSIENT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "EIO",
        "ENOTCONN",
        "ESTALE",
        "ETIMEDOUT",
        "EHOSTDOWN",
        "EHOSTUNREACH",
        "ENETDOWN",
        "ENETUNREACH",
        "ENETRESET",
        "ECONNABORTED",
        "ECONNRESET",
        "ECONNREFUSED",
        "ENOLCK",
        "ENOSPC",
        "EDQUOT",
        "ENOMEDIUM",
        "EREMOTEIO",
        "ECOMM",
        "EAGAIN",
        "EBUSY",
    )
    if hasattr(errno, name)
)

#: errnos meaning "this output location cannot be used": permanent
OUTPUT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "EACCES",
        "EPERM",
        "EROFS",
        "ENOTDIR",
        "EISDIR",
        "EEXIST",
        "ENAMETOOLONG",
        "ELOOP",
        "ENOTEMPTY",
    )
    if hasattr(errno, name)
)

#: errnos meaning "this source can never be read": permanent
SOURCE_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("EACCES", "EPERM", "EISDIR", "ENAMETOOLONG", "ELOOP")
    if hasattr(errno, name)
)


def error_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


# --- the NAS root and path confinement ---------------------------------------------------------


def check_root(root: Path | str, *, sentinel: str | None = None) -> None:
    """Raise NasUnavailableError unless the NAS root is a readable directory.

    `sentinel`, if given, is a file name that must exist in the root: an unmounted NAS usually
    leaves an empty mount-point directory behind, which would otherwise look like a NAS on which
    every source is missing (permanently rejected tasks) and every output lands on local disk.
    """
    try:
        st = os.stat(root)
    except OSError as exc:
        raise NasUnavailableError(f"NAS root {root} is not reachable: {error_reason(exc)}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise NasUnavailableError(f"NAS root {root} is not a directory")
    if not os.access(root, os.R_OK | os.X_OK):
        raise NasUnavailableError(f"NAS root {root} is not readable")
    if sentinel is not None:
        try:
            os.stat(os.path.join(root, sentinel))
        except OSError as exc:
            raise NasUnavailableError(
                f"NAS root {root} looks unmounted: {sentinel} is missing ({error_reason(exc)})"
            ) from exc


NAME_MAX = 255
"""Longest file name (bytes) Linux filesystems take; a longer one can never exist."""
PATH_MAX = 4096


def _check_syntax(rel: str) -> None:
    if not isinstance(rel, str) or not rel.strip():
        raise PathNotAllowedError(f"path {rel!r} is empty")
    if "\0" in rel:
        raise PathNotAllowedError(f"path {rel!r} contains a NUL byte")
    if ".." in rel.split("/"):
        raise PathNotAllowedError(f"path {rel!r} has a '..' component")
    encoded = os.fsencode(rel)
    if len(encoded) >= PATH_MAX or any(len(part) > NAME_MAX for part in encoded.split(b"/")):
        raise PathNotAllowedError(
            f"path {rel[:80]!r}... is too long (a name over {NAME_MAX} bytes or a path of "
            f"{PATH_MAX} or more)"
        )


def confine(root: Path, candidate: Path, named: str) -> Path:
    """`candidate` re-expressed under `root`, or PathNotAllowedError if it resolves outside."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(candidate)
    if os.path.commonpath([real_root, real]) != real_root:
        raise PathNotAllowedError(f"path {named!r} resolves outside the NAS root {root}")
    if real == real_root:
        raise PathNotAllowedError(f"path {named!r} names the NAS root itself")
    return root / os.path.relpath(real, real_root)


def resolve_task_path(root: Path | str, rel: str, *, sentinel: str | None = None) -> Path:
    """The path under `root` that a task's `rel` names, confined to the NAS root.

    Rejected with PathNotAllowedError (permanent): empty, NUL byte, any `..` component, an
    absolute path outside the root, the root itself, and anything whose realpath (symlinks
    followed) leaves the root. An absolute path inside the root is accepted. Symlinks inside
    the root are resolved in the returned path, so what is checked is what gets used.
    A missing or unreadable root is NasUnavailableError (transient), checked after the syntax.
    """
    _check_syntax(rel)
    root = Path(os.path.abspath(root))
    check_root(root, sentinel=sentinel)
    candidate = Path(rel) if os.path.isabs(rel) else root / rel
    return confine(root, candidate, rel)


# --- sources ----------------------------------------------------------------------------------


def check_source(
    path: Path | str, root: Path | str | None = None, *, sentinel: str | None = None
) -> int:
    """Size in bytes of the source video at `path`, after checking it can be read.

    Missing, a directory, not a regular file, empty or unreadable is InvalidInputError; but a
    missing file only counts as missing when `root` (the NAS root, None in local mode) is
    reachable, otherwise, like EIO/ENOTCONN/ESTALE/timeouts, it is NasUnavailableError.
    """

    def unavailable(exc: OSError) -> NasUnavailableError:
        return NasUnavailableError(f"source video {path} cannot be read now: {error_reason(exc)}")

    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError) as exc:
        if root is not None:
            check_root(Path(root), sentinel=sentinel)
        raise InvalidInputError(f"source video {path} does not exist") from exc
    except OSError as exc:
        if exc.errno in SOURCE_ERRNOS:
            raise InvalidInputError(
                f"source video {path} is not readable: {error_reason(exc)}"
            ) from exc
        raise unavailable(exc) from exc
    if stat.S_ISDIR(st.st_mode):
        raise InvalidInputError(f"source video {path} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise InvalidInputError(f"source video {path} is not a regular file")
    if st.st_size == 0:
        raise InvalidInputError(f"source video {path} is empty")
    try:
        with open(path, "rb") as stream:
            stream.read(4096)
    except OSError as exc:
        if exc.errno in SOURCE_ERRNOS:
            raise InvalidInputError(
                f"source video {path} is not readable: {error_reason(exc)}"
            ) from exc
        raise unavailable(exc) from exc
    return st.st_size


__all__ = [
    "NAME_MAX",
    "OUTPUT_ERRNOS",
    "PATH_MAX",
    "SOURCE_ERRNOS",
    "TMP_SUFFIX",
    "TRANSIENT_ERRNOS",
    "check_root",
    "check_source",
    "confine",
    "error_reason",
    "resolve_task_path",
]
