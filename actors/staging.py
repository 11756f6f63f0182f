"""Local staging of one task's artifacts in scratch: files are written here first, then
committed to the NAS in one step (`actors/nas_commit.py`). A full or read-only scratch is one
clear `ScratchError`."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from actors.nas_paths import error_reason
from platesift.artifacts import (
    FRAMES_NAME,
    HEAVY_TASK_NAME,
    REJECTIONS_NAME,
    THUMBS_DIR,
    TRACKS_NAME,
    is_safe_member,
)
from platesift.errors import (
    ScratchError,
)

logger = logging.getLogger(__name__)

STAGING_SUFFIX = ".staging"

# --- staging ------------------------------------------------------------------------------------


_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class Staging:
    """A task's artifacts being produced, in a private directory on LOCAL scratch disk.

    Everything is written here first and published to the NAS in one step by `commit()`, so a
    NAS outage while a video is processed costs nothing. frames.jsonl, rejections.jsonl and
    tracks.jsonl are streamed line by line (memory stays constant). One writer at a time: the
    task writes, then hands the staging to `commit()` (which closes the streams), then calls
    `cleanup()`.
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
            self._streams = {
                name: open(self.path / name, "wb")  # noqa: SIM115 - see close()
                for name in (FRAMES_NAME, REJECTIONS_NAME, TRACKS_NAME)
            }
        self._sizes: dict[str, int] = dict.fromkeys(self._streams, 0)
        self._closed = False

    def _append(self, name: str, line: str) -> None:
        if self._closed:
            raise ValueError(f"staging {self.path} is closed")
        if "\n" in line or "\r" in line:
            raise ValueError(f"a line of {name} may not contain a line break")
        data = line.encode("ascii") + b"\n"
        with self._scratch(f"cannot write {name}"):
            self._streams[name].write(data)
        self._sizes[name] += len(data)

    def append_frame(self, line: str) -> None:
        """Append one line (from `artifacts.frame_line`) to frames.jsonl."""
        self._append(FRAMES_NAME, line)

    def append_rejection(self, line: str) -> None:
        """Append one run line (from `artifacts.RejectionRuns`) to rejections.jsonl."""
        self._append(REJECTIONS_NAME, line)

    def append_track(self, line: str) -> None:
        """Append one line (from `artifacts.track_line`) to tracks.jsonl."""
        self._append(TRACKS_NAME, line)

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
            raise ScratchError(
                f"scratch {self.path.parent}: {action}: {error_reason(exc)}"
            ) from exc

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
        with self._scratch("cannot flush the staged lines"), contextlib.ExitStack() as stack:
            for stream in self._streams.values():
                stack.callback(stream.close)

    def cleanup(self) -> None:
        """Close and remove the staging directory (idempotent)."""
        with contextlib.suppress(OSError):
            self.close()
        shutil.rmtree(self.path, ignore_errors=True)


__all__ = ["STAGING_SUFFIX", "Staging"]
