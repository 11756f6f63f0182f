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

`Nas` is the plain class holding the logic (the one way in, root and sentinel bound); `NASActor`
is that class in its own thread so that slow or hung NAS I/O never blocks another actor. The
parts: `actors/nas_paths.py` (errno tables, root check, confinement, sources),
`actors/staging.py` (local staging), `actors/nas_commit.py` (durable writes and the commit).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pykka
from pykka.typing import ActorMemberMixin, proxy_method

from actors.nas_commit import PREVIOUS_NAME, check_output_dir, commit, fsync_dir
from actors.nas_paths import TMP_SUFFIX, check_root, check_source, confine, resolve_task_path
from actors.staging import Staging
from platesift.artifacts import (
    is_safe_member,
    verify_artifact_dir,
)
from platesift.errors import (
    InvalidInputError,
    NasUnavailableError,
    OutputError,
)

logger = logging.getLogger(__name__)

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
        return confine(self.root, Path(path), str(path))

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
            fsync_dir(path.parent)
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
