"""The write side of the NAS: durable primitives (temp file, fsync, `os.replace`, directories
created only below the NAS root), the output-location check, and the commit protocol of one
artifact directory (described in `actors/nas.py`)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from actors.nas_paths import OUTPUT_ERRNOS, TMP_SUFFIX, error_reason
from actors.staging import Staging
from platesift.artifacts import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    file_digest,
    manifest_json,
    parse_file_list,
)
from platesift.errors import (
    NasUnavailableError,
    OutputError,
    PlatesiftError,
)

logger = logging.getLogger(__name__)

PREVIOUS_NAME = ".platesift-previous.json"
"""File list of the manifest being replaced, kept until a commit has removed stale files."""

PROBE_NAME = f".platesift-probe{TMP_SUFFIX}"

_CHUNK = 1 << 20

_DIR_FSYNC_UNSUPPORTED = frozenset(
    getattr(errno, name) for name in ("EINVAL", "ENOTSUP", "EOPNOTSUPP") if hasattr(errno, name)
)

# --- output errors and durable primitives -------------------------------------------------------


def _output_error(exc: OSError, action: str) -> PlatesiftError:
    if exc.errno in OUTPUT_ERRNOS:
        return OutputError(f"{action}: {error_reason(exc)}")
    # ENOENT here means a directory we created or checked vanished: the NAS went away.
    return NasUnavailableError(f"{action}: {error_reason(exc)}")


@contextlib.contextmanager
def _output(action: str) -> Iterator[None]:
    """Translate OSError raised inside into OutputError or NasUnavailableError."""
    try:
        yield
    except OSError as exc:
        raise _output_error(exc, action) from exc


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _DIR_FSYNC_UNSUPPORTED:  # some network filesystems refuse it
            raise
    finally:
        os.close(fd)


def make_dirs(path: Path, within: Path | None = None) -> None:
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
            fsync_dir(directory.parent)


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
    make_dirs(dest, within=within)
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
            fsync_dir(dest)
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
            logger.warning("cannot remove stale artifact %s: %s", path, error_reason(exc))
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
                fsync_dir(directory)
    except OSError as exc:
        logger.warning(
            "cannot fsync %s after removing stale artifacts: %s", dest, error_reason(exc)
        )
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
    make_dirs(dest, within=root)
    old = _retire_manifest(dest)

    subdirs = {(dest / name).parent for name in [*names, *old]}
    _sweep_tmp({dest, *subdirs})

    files: dict[str, dict[str, Any]] = {}
    made = {dest}
    for name in names:
        target = dest / name
        if target.parent not in made:
            make_dirs(target.parent, within=dest)
            made.add(target.parent)
        action = f"cannot write {target}"
        with open(staging.path / name, "rb") as source, _output(action):  # local errors: OSError
            if os.path.isdir(target) and not os.path.islink(target):
                raise OutputError(f"{action}: a directory of that name is in the way")
            size, sha = _write_atomic(target, _chunks(source))
        files[name] = {"size": size, "sha256": sha}
    with _output(f"cannot fsync the artifact directory {dest}"):
        for directory in sorted({(dest / name).parent for name in names} | {dest}):
            fsync_dir(directory)

    manifest = dict(manifest_fields)
    manifest.setdefault("schema_version", SCHEMA_VERSION)
    manifest["files"] = files
    data = manifest_json(manifest)
    if recheck is not None:
        recheck()
    with _output(f"cannot write {dest / MANIFEST_NAME}"):
        _write_atomic(dest / MANIFEST_NAME, [data])
        fsync_dir(dest)
    if recheck is not None:
        recheck()

    ours = {MANIFEST_NAME, PREVIOUS_NAME}
    stale = {name: rec for name, rec in old.items() if name not in files and name not in ours}
    if _remove_stale(dest, stale) and os.path.lexists(dest / PREVIOUS_NAME):
        try:
            os.unlink(dest / PREVIOUS_NAME)
            fsync_dir(dest)
        except OSError as exc:  # harmless: the next commit reads it again
            logger.warning("cannot remove %s: %s", dest / PREVIOUS_NAME, error_reason(exc))
    return manifest, hashlib.sha256(data).hexdigest()


__all__ = ["PREVIOUS_NAME", "PROBE_NAME", "check_output_dir", "commit", "fsync_dir", "make_dirs"]
