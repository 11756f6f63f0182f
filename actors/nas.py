"""The NAS actor: ALL filesystem access to the NAS (sources and artifact directories).

It owns path confinement (a task can only name files under the NAS root), source checks, the
local staging of artifacts, and the atomic, durable commit of a staged artifact directory, plus
the mapping of OS errors onto the error taxonomy:

- the NAS being away (root missing, EIO, ENOTCONN, ESTALE, timeouts, a full disk, and any errno
  not known to be permanent) is `NasUnavailableError`: transient, the task is retried later;
- a bad path or source is `PathNotAllowedError` / `InvalidInputError`, an unusable output
  location (permission, read-only, not a directory) is `OutputError`: permanent.

Commit protocol (one artifact directory `dest`):

1. if `dest/manifest.json` exists, its file list is saved in `.platesift-previous.json` and the
   manifest is removed: from now on no reader trusts the directory;
2. leftover temp files of ours (`.*.platesift-tmp`) are removed;
3. every staged file is copied to a temp file next to its target, fsync'ed and `os.replace`d;
   the directories are fsync'ed;
4. `manifest.json` (listing size and sha256 of every file written) is written LAST, the same way;
5. files listed by the previous manifest but not by the new one are deleted, but only when their
   bytes still match the recorded sha256 (they are provably ours); then the saved list goes.

A crash anywhere leaves either no manifest (untrusted: recompute) or a complete, matching one;
the saved list lets the next commit finish step 5 after a crash. Files that no manifest of ours
listed (a user's own files) are never touched.

`Nas` is the plain class holding the logic; `NASActor` runs it in its own thread so that slow or
hung NAS I/O never blocks another actor.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import pykka
from pykka.typing import ActorMemberMixin, proxy_method

from platesift.artifacts import (
    FRAMES_NAME,
    HEAVY_TASK_NAME,
    MANIFEST_NAME,
    REJECTIONS_NAME,
    SCHEMA_VERSION,
    THUMBS_DIR,
    file_digest,
    is_safe_member,
    manifest_json,
    parse_file_list,
    verify_artifact_dir,
)
from platesift.errors import (
    InvalidInputError,
    NasUnavailableError,
    OutputError,
    PathNotAllowedError,
    PlatesiftError,
    ScratchError,
)

logger = logging.getLogger(__name__)

TMP_SUFFIX = ".platesift-tmp"
"""Temp files of ours are named `.<name>.platesift-tmp`; no other program uses that pattern."""

PREVIOUS_NAME = ".platesift-previous.json"
"""File list of the manifest being replaced, kept until a commit has removed stale files."""

PROBE_NAME = f".platesift-probe{TMP_SUFFIX}"

STAGING_SUFFIX = ".staging"

_CHUNK = 1 << 20

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

_DIR_FSYNC_UNSUPPORTED = frozenset(
    getattr(errno, name) for name in ("EINVAL", "ENOTSUP", "EOPNOTSUPP") if hasattr(errno, name)
)


def _reason(exc: OSError) -> str:
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
        raise NasUnavailableError(f"NAS root {root} is not reachable: {_reason(exc)}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise NasUnavailableError(f"NAS root {root} is not a directory")
    if not os.access(root, os.R_OK | os.X_OK):
        raise NasUnavailableError(f"NAS root {root} is not readable")
    if sentinel is not None:
        try:
            os.stat(os.path.join(root, sentinel))
        except OSError as exc:
            raise NasUnavailableError(
                f"NAS root {root} looks unmounted: {sentinel} is missing ({_reason(exc)})"
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


def _confine(root: Path, candidate: Path, named: str) -> Path:
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
    return _confine(root, candidate, rel)


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
        return NasUnavailableError(f"source video {path} cannot be read now: {_reason(exc)}")

    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError) as exc:
        if root is not None:
            check_root(Path(root), sentinel=sentinel)
        raise InvalidInputError(f"source video {path} does not exist") from exc
    except OSError as exc:
        if exc.errno in SOURCE_ERRNOS:
            raise InvalidInputError(f"source video {path} is not readable: {_reason(exc)}") from exc
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
            raise InvalidInputError(f"source video {path} is not readable: {_reason(exc)}") from exc
        raise unavailable(exc) from exc
    return st.st_size


# --- output errors and durable primitives -------------------------------------------------------


def _output_error(exc: OSError, action: str) -> PlatesiftError:
    if exc.errno in OUTPUT_ERRNOS:
        return OutputError(f"{action}: {_reason(exc)}")
    # ENOENT here means a directory we created or checked vanished: the NAS went away.
    return NasUnavailableError(f"{action}: {_reason(exc)}")


@contextlib.contextmanager
def _output(action: str) -> Iterator[None]:
    """Translate OSError raised inside into OutputError or NasUnavailableError."""
    try:
        yield
    except OSError as exc:
        raise _output_error(exc, action) from exc


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _DIR_FSYNC_UNSUPPORTED:  # some network filesystems refuse it
            raise
    finally:
        os.close(fd)


def _make_dirs(path: Path, within: Path | None = None) -> None:
    """`mkdir -p path`, fsync'ing each parent that got a new entry; errors translated.

    With `within`, only directories below it are created: if `within` itself has vanished (the
    NAS was unmounted mid-commit) that is NasUnavailableError, never a new tree on local disk.
    """
    missing: list[Path] = []
    probe = path
    while True:
        try:
            st = os.stat(probe)
        except (FileNotFoundError, NotADirectoryError):
            if probe == within:
                raise NasUnavailableError(f"{within} vanished (NAS unmounted?)") from None
            if probe.parent == probe:
                raise NasUnavailableError(f"cannot create {path}: no existing ancestor") from None
            missing.append(probe)
            probe = probe.parent
            continue
        except OSError as exc:
            raise _output_error(exc, f"cannot create output directory {path}") from exc
        if not stat.S_ISDIR(st.st_mode):
            raise OutputError(
                f"cannot create output directory {path}: {probe} exists and is not a directory"
            )
        break
    for directory in reversed(missing):
        with _output(f"cannot create output directory {directory}"):
            try:
                os.mkdir(directory)
            except FileExistsError:
                if not directory.is_dir():
                    raise OutputError(
                        f"cannot create output directory {path}: "
                        f"{directory} exists and is not a directory"
                    ) from None
            _fsync_dir(directory.parent)


def _tmp_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{TMP_SUFFIX}")


def _write_atomic(target: Path, chunks: Iterable[bytes]) -> tuple[int, str]:
    """Write `chunks` to `target` via a temp file, fsync, replace; return (size, sha256).

    The directory is NOT fsync'ed here; callers fsync each directory once after a batch.
    """
    tmp = _tmp_path(target)
    digest = hashlib.sha256()
    size = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return size, digest.hexdigest()


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


def _is_our_tmp(name: str) -> bool:
    return name.startswith(".") and name.endswith(TMP_SUFFIX) and len(name) > len(TMP_SUFFIX) + 1


def check_output_dir(dest: Path | str, within: Path | None = None) -> None:
    """Fail fast before processing: `dest` must be (or become) a writable directory.

    Creates `dest` (and its parents, none at or above `within`) if missing, then writes and
    removes a probe temp file (removed even when the write fails, e.g. on a full disk).
    OutputError for permission / read-only / not-a-directory problems, NasUnavailableError
    for a storage that is away.
    """
    dest = Path(dest)
    _make_dirs(dest, within=within)
    probe = dest / PROBE_NAME
    with _output(f"output directory {dest} is not writable"):
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            try:
                os.write(fd, b"platesift\n")
            finally:
                os.close(fd)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(probe)


# --- staging ------------------------------------------------------------------------------------


_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class Staging:
    """A task's artifacts being produced, in a private directory on LOCAL scratch disk.

    Everything is written here first and published to the NAS in one step by `commit()`, so a
    NAS outage while a video is processed costs nothing. frames.jsonl and rejections.jsonl are
    streamed line by line (memory stays constant). One writer at a time: the task writes, then
    hands the staging to `commit()` (which closes the streams), then calls `cleanup()`.
    Errors of the local scratch disk are raised as plain OSError.
    """

    def __init__(self, scratch: Path | str, task_id: str) -> None:
        safe = _UNSAFE_CHARS.sub("_", task_id).strip("._")[:64] or "task"
        tag = hashlib.sha256(task_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        self.path = Path(scratch) / f"{safe}-{tag}{STAGING_SUFFIX}"
        """The staging directory (removed by `cleanup()`)."""
        with self._scratch("cannot create the staging directory"):
            if self.path.exists():  # left over by a crash of the same task: bytes unknown
                shutil.rmtree(self.path)
            self.path.mkdir(parents=True)
            self._frames = open(self.path / FRAMES_NAME, "wb")  # noqa: SIM115 - see close()
            self._rejections = open(self.path / REJECTIONS_NAME, "wb")  # noqa: SIM115
        self._sizes: dict[str, int] = {}
        self._sizes[FRAMES_NAME] = 0
        self._sizes[REJECTIONS_NAME] = 0
        self._closed = False

    def _append(self, name: str, line: str) -> None:
        if self._closed:
            raise ValueError(f"staging {self.path} is closed")
        if "\n" in line or "\r" in line:
            raise ValueError(f"a line of {name} may not contain a line break")
        data = line.encode("ascii") + b"\n"
        with self._scratch(f"cannot write {name}"):
            (self._frames if name == FRAMES_NAME else self._rejections).write(data)
        self._sizes[name] += len(data)

    def append_frame(self, line: str) -> None:
        """Append one line (from `artifacts.frame_line`) to frames.jsonl."""
        self._append(FRAMES_NAME, line)

    def append_rejection(self, line: str) -> None:
        """Append one run line (from `artifacts.RejectionRuns`) to rejections.jsonl."""
        self._append(REJECTIONS_NAME, line)

    def _write(self, name: str, data: bytes) -> None:
        if self._closed:
            raise ValueError(f"staging {self.path} is closed")
        target = self.path / name
        with self._scratch(f"cannot write {name}"):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        self._sizes[name] = len(data)

    @contextlib.contextmanager
    def _scratch(self, action: str) -> Iterator[None]:
        """OSError on the local scratch disk (full, read-only, failing) as one clear line."""
        try:
            yield
        except OSError as exc:
            raise ScratchError(f"scratch {self.path.parent}: {action}: {_reason(exc)}") from exc

    def write_thumb(self, name: str, jpeg: bytes) -> None:
        """Write a thumbnail; `name` comes from `artifacts.thumb_name` (`thumbs/....jpg`)."""
        if not (is_safe_member(name) and name.startswith(f"{THUMBS_DIR}/")):
            raise ValueError(f"thumbnail name {name!r} is not of the form {THUMBS_DIR}/<name>")
        self._write(name, bytes(jpeg))

    def write_heavy_task(self, data: bytes) -> None:
        """Write heavy_task.json (canonical JSON bytes made by the caller)."""
        self._write(HEAVY_TASK_NAME, bytes(data))

    def bytes_used(self) -> int:
        """Bytes of artifacts staged so far (counted as written, no disk access)."""
        return sum(self._sizes.values())

    def files(self) -> list[str]:
        """Relative names of every staged file, sorted."""
        return sorted(self._sizes)

    def close(self) -> None:
        """Flush and close the streams (idempotent); no more writes after this."""
        if self._closed:
            return
        self._closed = True
        with self._scratch("cannot flush the staged lines"):
            try:
                self._frames.close()
            finally:
                self._rejections.close()

    def cleanup(self) -> None:
        """Close and remove the staging directory (idempotent)."""
        with contextlib.suppress(OSError):
            self.close()
        shutil.rmtree(self.path, ignore_errors=True)


# --- commit -------------------------------------------------------------------------------------


def _read_file_list(path: Path) -> dict[str, tuple[int, str]] | None:
    """The file list of the manifest (or saved list) at `path`; None if absent or not ours."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _output_error(exc, f"cannot read {path}") from exc
    try:
        data = json.loads(raw)
    except ValueError:
        logger.warning("%s is not valid JSON; its files are not ours to delete", path)
        return None
    files = parse_file_list(data)
    if files is None:
        logger.warning("%s is not a platesift manifest; its files are not ours to delete", path)
    return files


def _retire_manifest(dest: Path) -> dict[str, tuple[int, str]]:
    """Save the current manifest's file list to PREVIOUS_NAME, then remove the manifest.

    Returns {name: (size, sha256)} of every file a previous commit of ours published here.
    """
    manifest = dest / MANIFEST_NAME
    previous = dest / PREVIOUS_NAME
    old = _read_file_list(previous) or {}
    current = _read_file_list(manifest)
    if current:
        old.update(current)
    if os.path.lexists(manifest):
        if old:
            record = {
                "schema_version": SCHEMA_VERSION,
                "files": {n: {"size": s, "sha256": h} for n, (s, h) in sorted(old.items())},
            }
            with _output(f"cannot write {previous}"):
                _write_atomic(previous, [manifest_json(record)])
        with _output(f"cannot remove the old manifest {manifest}"):
            os.unlink(manifest)
            _fsync_dir(dest)
    return old


def _sweep_tmp(directories: set[Path]) -> None:
    for directory in sorted(directories):
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise _output_error(exc, f"cannot list {directory}") from exc
        for entry in entries:
            if _is_our_tmp(entry.name) and entry.is_file(follow_symlinks=False):
                with _output(f"cannot remove leftover temp file {entry.path}"):
                    os.unlink(entry.path)


def _remove_stale(dest: Path, stale: dict[str, tuple[int, str]]) -> bool:
    """Delete stale outputs that still hold exactly our bytes; True if all went well."""
    ok = True
    touched: set[Path] = set()
    real_dest = os.path.realpath(dest)
    for name, (size, sha) in sorted(stale.items()):
        path = dest / name
        try:
            if os.path.commonpath([real_dest, os.path.realpath(path.parent)]) != real_dest:
                logger.warning("keeping %s: it is reached through a link out of %s", path, dest)
                continue
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or st.st_size != size or file_digest(path)[1] != sha:
                logger.info("keeping %s: it is no longer the file a commit wrote", path)
                continue
            os.unlink(path)
            touched.add(path.parent)
        except FileNotFoundError:
            continue
        except OSError as exc:
            logger.warning("cannot remove stale artifact %s: %s", path, _reason(exc))
            ok = False
    for directory in sorted(touched, key=lambda p: len(p.parts), reverse=True):
        try:
            while directory != dest:  # remove directories the stale files leave empty
                os.rmdir(directory)
                touched.add(directory.parent)
                directory = directory.parent
        except OSError:
            pass  # not empty (a user's file, or still ours): keep it
    try:
        for directory in sorted(touched):
            if directory.is_dir():
                _fsync_dir(directory)
    except OSError as exc:
        logger.warning("cannot fsync %s after removing stale artifacts: %s", dest, _reason(exc))
        ok = False
    return ok


def commit(
    staging: Staging,
    dest: Path | str,
    manifest_fields: Mapping[str, Any],
    *,
    root: Path | None = None,
    recheck: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], str]:
    """Publish `staging` into `dest` atomically and durably; return (manifest, its sha256 hex).

    `manifest_fields` are the manifest's fields (see `artifacts.build_manifest`); `files` is
    replaced by every file written, with the size and sha256 of the bytes written, and a missing
    `schema_version` is set. The same staged content always gives byte-identical files.
    See the module docstring for the protocol. OutputError for permission / read-only /
    not-a-directory problems, NasUnavailableError when the storage is away.

    With `root` (the NAS root), no directory at or above it is ever created: a vanished root
    is NasUnavailableError, never a fresh tree on local disk. `recheck` (the NAS's own
    `check_root`) runs again right before the manifest is written and once more after it,
    so a NAS that went away during the copy fails the commit (transient) instead of leaving
    a manifest only local disk holds.
    """
    dest = Path(dest)
    staging.close()
    names = staging.files()
    _make_dirs(dest, within=root)
    old = _retire_manifest(dest)

    subdirs = {(dest / name).parent for name in [*names, *old]}
    _sweep_tmp({dest, *subdirs})

    files: dict[str, dict[str, Any]] = {}
    made = {dest}
    for name in names:
        target = dest / name
        if target.parent not in made:
            _make_dirs(target.parent, within=dest)
            made.add(target.parent)
        action = f"cannot write {target}"
        with open(staging.path / name, "rb") as source, _output(action):  # local errors: OSError
            if os.path.isdir(target) and not os.path.islink(target):
                raise OutputError(f"{action}: a directory of that name is in the way")
            size, sha = _write_atomic(target, _chunks(source))
        files[name] = {"size": size, "sha256": sha}
    with _output(f"cannot fsync the artifact directory {dest}"):
        for directory in sorted({(dest / name).parent for name in names} | {dest}):
            _fsync_dir(directory)

    manifest = dict(manifest_fields)
    manifest.setdefault("schema_version", SCHEMA_VERSION)
    manifest["files"] = files
    data = manifest_json(manifest)
    if recheck is not None:
        recheck()
    with _output(f"cannot write {dest / MANIFEST_NAME}"):
        _write_atomic(dest / MANIFEST_NAME, [data])
        _fsync_dir(dest)
    if recheck is not None:
        recheck()

    ours = {MANIFEST_NAME, PREVIOUS_NAME}
    stale = {name: rec for name, rec in old.items() if name not in files and name not in ours}
    if _remove_stale(dest, stale) and os.path.lexists(dest / PREVIOUS_NAME):
        try:
            os.unlink(dest / PREVIOUS_NAME)
            _fsync_dir(dest)
        except OSError as exc:  # harmless: the next commit reads it again
            logger.warning("cannot remove %s: %s", dest / PREVIOUS_NAME, _reason(exc))
    return manifest, hashlib.sha256(data).hexdigest()


# --- the plain class and the actor ----------------------------------------------------------------


class Nas:
    """The NAS as the worker sees it: a root (None in local mode) and every operation on it.

    In NAS mode every path must lie inside the root and every operation first checks that the
    root is reachable (NasUnavailableError otherwise). In local mode (CLI), paths are the user's
    own and are not confined.
    """

    def __init__(self, root: Path | str | None, *, sentinel: str | None = None) -> None:
        if sentinel is not None and not is_safe_member(sentinel):
            raise InvalidInputError(f"NAS sentinel {sentinel!r} must be a plain relative name")
        self.root = None if root is None else Path(os.path.abspath(root))
        self.sentinel = sentinel
        self._seen_mounted = False

    def check_root(self) -> None:
        """NasUnavailableError unless the root is reachable (no-op in local mode), and, once
        the root has been seen as a mount point, unless it still is one: a lazily unmounted
        NAS leaves an empty local directory behind that must never take its place."""
        if self.root is None:
            return
        check_root(self.root, sentinel=self.sentinel)
        mounted = os.path.ismount(self.root)
        if self._seen_mounted and not mounted:
            raise NasUnavailableError(
                f"NAS root {self.root} is no longer a mount point: the NAS was unmounted"
            )
        self._seen_mounted = self._seen_mounted or mounted

    def resolve(self, rel: str) -> Path:
        """A task's path confined to the root (see `resolve_task_path`); as-is in local mode."""
        if self.root is None:
            _check_syntax_local(rel)
            return Path(rel)
        return resolve_task_path(self.root, rel, sentinel=self.sentinel)

    def _inside(self, path: Path | str) -> Path:
        if self.root is None:
            return Path(path)
        self.check_root()
        return _confine(self.root, Path(path), str(path))

    def check_source(self, path: Path | str) -> int:
        """Size of the source video (see module-level `check_source`)."""
        return check_source(self._inside(path), self.root, sentinel=self.sentinel)

    def check_output_dir(self, dest: Path | str) -> None:
        """Fail fast if `dest` cannot hold artifacts (see module-level `check_output_dir`)."""
        with self._writing():
            check_output_dir(self._inside(dest), within=self.root)

    def commit(
        self, staging: Staging, dest: Path | str, manifest_fields: Mapping[str, Any]
    ) -> tuple[dict[str, Any], str]:
        """Publish `staging` into `dest` (see module-level `commit`), never creating anything
        outside the root, and checking the root again around the manifest."""
        with self._writing():
            return commit(
                staging,
                self._inside(dest),
                manifest_fields,
                root=self.root,
                recheck=self.check_root,
            )

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """In NAS mode a read-only NAS is an outage (a remount after an error), not a bad
        output location: its OutputError becomes NasUnavailableError, so the task is retried
        when it is back. In local mode a read-only --out is the user's to fix: unchanged."""
        try:
            yield
        except OutputError as exc:
            cause = exc.__cause__
            read_only = isinstance(cause, OSError) and cause.errno == errno.EROFS
            if self.root is not None and read_only:
                raise NasUnavailableError(f"{exc.message} (the NAS is read-only)") from exc
            raise

    def verify(self, dest: Path | str) -> list[str]:
        """Problems that make `dest` untrustworthy; empty = trusted (`verify_artifact_dir`)."""
        return verify_artifact_dir(self._inside(dest))

    def remove_if_empty(self, dest: Path | str) -> bool:
        """Remove `dest` if it is an empty directory (what `check_output_dir` made for a task
        that was then rejected); True if it went. Anything in it keeps it."""
        path = self._inside(dest)
        try:
            os.rmdir(path)
        except OSError:
            return False
        with contextlib.suppress(OSError):
            _fsync_dir(path.parent)
        return True


def _check_syntax_local(rel: str) -> None:
    if not isinstance(rel, str) or not rel.strip():
        raise InvalidInputError(f"path {rel!r} is empty")
    if "\0" in rel:
        raise InvalidInputError(f"path {rel!r} contains a NUL byte")


class NASActor(pykka.ThreadingActor, Nas):
    """A `Nas` in its own thread: NAS I/O may hang for minutes without blocking others. Call
    it through a `NasProxy` and always `.get(timeout=...)` the futures, so errors raised here
    reach the caller."""

    def __init__(self, root: Path | str | None = None, *, sentinel: str | None = None) -> None:
        pykka.ThreadingActor.__init__(self)
        Nas.__init__(self, root, sentinel=sentinel)

    def on_start(self) -> None:
        logger.info("NAS actor started, root %s", self.root or "(local mode)")


class NasProxy(ActorMemberMixin, pykka.ActorProxy[NASActor]):
    """Typed proxy of a `NASActor`: `cast(NasProxy, ref.proxy())`."""

    check_root = proxy_method(NASActor.check_root)
    resolve = proxy_method(NASActor.resolve)
    check_source = proxy_method(NASActor.check_source)
    check_output_dir = proxy_method(NASActor.check_output_dir)
    commit = proxy_method(NASActor.commit)
    verify = proxy_method(NASActor.verify)
    remove_if_empty = proxy_method(NASActor.remove_if_empty)


__all__ = [
    "PREVIOUS_NAME",
    "TMP_SUFFIX",
    "NASActor",
    "Nas",
    "NasProxy",
    "Staging",
    "check_output_dir",
    "check_root",
    "check_source",
    "commit",
    "resolve_task_path",
]
