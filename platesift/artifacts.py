"""The artifact format: `frames.jsonl`, `rejections.jsonl`, thumbnail names and `manifest.json`.

This module owns the BYTES of every artifact (pure functions, byte-deterministic) and the rule a
reader applies before trusting an artifact directory (`verify_artifact_dir`). Where and how the
bytes reach the NAS (staging, atomic commit, error mapping) belongs to `actors.nas`.

An artifact directory holds:

- `frames.jsonl`: one `frame_line()` per kept frame, in frame order.
- `rejections.jsonl`: one run `{"from": a, "to": b, "reason": r}` per line (inclusive frame
  indices), consecutive rejected frames with the same reason merged (`RejectionRuns`).
- `tracks.jsonl`: one `track_line()` per plate track (regions of consecutive frames joined),
  in the order the tracks closed.
- `thumbs/f0000123_r0.jpg`: JPEG crops of proposed regions (`thumb_name()`): the best few of
  each track (`output.thumbnails = best`), or one per region (`all`).
- `heavy_task.json`: optional, the follow-up task for the heavy pipeline.
- `manifest.json`: written last; lists every other file with its size and sha256. A reader
  trusts a directory only if its manifest exists and matches (`verify_artifact_dir()`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from platesift.records import REJECTION_REASONS, KeptFrame
from platesift.tracking import ClosedTrack

SCHEMA_VERSION = 3
"""Version of the artifact format; bump on any change of a file's structure or meaning.
2: `t` is the frame's presentation time (was index / fps); `video.rotation`.
3: `tracks.jsonl`; a region's `track`; thumbnails are each track's best (`output.thumbnails`);
`counts.tracks` and `counts.thumbnails`."""

MANIFEST_NAME = "manifest.json"
FRAMES_NAME = "frames.jsonl"
REJECTIONS_NAME = "rejections.jsonl"
TRACKS_NAME = "tracks.jsonl"
HEAVY_TASK_NAME = "heavy_task.json"
THUMBS_DIR = "thumbs"

DECIMALS = 4
"""Every float in frames.jsonl is rounded to this many decimals."""

#: keys each manifest section must contain (more are allowed)
MANIFEST_REQUIRED: dict[str, tuple[str, ...]] = {
    "source": ("path", "size"),
    "video": ("width", "height", "fps", "frame_count", "rotation"),
    "analysis": ("width", "height"),
    "counts": ("decoded", "kept", "rejected", "regions"),
}

_CHUNK = 1 << 20


def _num(value: float, what: str) -> float:
    """`value` as a JSON-safe float rounded to DECIMALS, with -0.0 normalised to 0.0."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what} is {number!r}; artifacts only hold finite numbers")
    rounded = round(number, DECIMALS)
    return 0.0 if rounded == 0 else rounded


def _dumps_line(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def frame_line(frame: KeptFrame) -> str:
    """One line of frames.jsonl (no trailing newline), keys in a fixed order.

    Floats are rounded to 4 decimals and -0.0 becomes 0.0, so the same frame always gives the
    same bytes; NaN or infinity raises ValueError (a bug upstream, never written).
    """
    regions = []
    for number, region in enumerate(frame.regions):
        if len(region.box) != 4:
            raise ValueError(f"region {number} of frame {frame.index} has box {region.box!r}")
        regions.append(
            {
                "box": [int(v) for v in region.box],
                "score": _num(region.score, "score"),
                "distance_m": (
                    None if region.distance_m is None else _num(region.distance_m, "distance_m")
                ),
                "thumb": None if region.thumb is None else str(region.thumb),
                "proposed_on": None if region.proposed_on is None else int(region.proposed_on),
                "track": None if region.track is None else int(region.track),
            }
        )
    return _dumps_line(
        {
            "frame": int(frame.index),
            "t": _num(frame.t, "t"),
            "lighting": _num(frame.lighting, "lighting"),
            "blur": _num(frame.blur, "blur"),
            "motion": _num(frame.motion, "motion"),
            "confidence": _num(frame.confidence, "confidence"),
            "regions": regions,
        }
    )


def track_line(track: ClosedTrack[Any], thumbs: Mapping[tuple[int, int], str]) -> str:
    """One line of tracks.jsonl (no trailing newline): the track's span, its box in every
    frame it was seen in, and its best crops, best first, each with its quality parts and its
    thumbnail's name (`thumbs`: (frame, region) -> name; null when none was written)."""
    best = []
    for c in track.best:
        best.append(
            {
                "frame": int(c.frame),
                "region": int(c.region),
                "box": [int(v) for v in c.box],
                "quality": _num(c.quality, "quality"),
                "parts": {k: _num(v, k) for k, v in c.parts.items()},
                "thumb": thumbs.get((c.frame, c.region)),
            }
        )
    return _dumps_line(
        {
            "track": int(track.track),
            "first_frame": int(track.first_frame),
            "last_frame": int(track.last_frame),
            "first_t": _num(track.first_t, "first_t"),
            "last_t": _num(track.last_t, "last_t"),
            "boxes": [[int(f), *(int(v) for v in box)] for f, box in track.boxes],
            "best": best,
        }
    )


def run_line(first: int, last: int, reason: str) -> str:
    """One line of rejections.jsonl (no trailing newline): frames `first`..`last` inclusive."""
    return _dumps_line({"from": int(first), "to": int(last), "reason": reason})


class RejectionRuns:
    """Merges rejected frames into runs, streaming: memory stays constant however long the video.

    Feed rejected frames in increasing index order (kept frames in between are simply not fed);
    `add()` returns the line of a run that has just ended, or None, and `finish()` returns the
    last run. Write each returned line to rejections.jsonl as it comes.
    """

    def __init__(self) -> None:
        self._first: int | None = None
        self._last = -1
        self._reason = ""
        self._finished = False
        self.counts: dict[str, int] = dict.fromkeys(REJECTION_REASONS, 0)
        """Rejected frames per reason so far (every reason present, for the manifest)."""

    def add(self, index: int, reason: str) -> str | None:
        """Record rejected frame `index`; return the line of the run it ends, if any."""
        if self._finished:
            raise ValueError("RejectionRuns.add() after finish()")
        if reason not in self.counts:
            raise ValueError(f"unknown rejection reason {reason!r}; expected {REJECTION_REASONS}")
        if index <= self._last:
            raise ValueError(f"rejected frame {index} after frame {self._last}: not increasing")
        self.counts[reason] += 1
        done = None
        if self._first is not None and (index != self._last + 1 or reason != self._reason):
            done = run_line(self._first, self._last, self._reason)
            self._first = None
        if self._first is None:
            self._first, self._reason = index, reason
        self._last = index
        return done

    def finish(self) -> str | None:
        """End the stream: return the line of the last run, or None if nothing was rejected."""
        self._finished = True
        if self._first is None:
            return None
        line = run_line(self._first, self._last, self._reason)
        self._first = None
        return line

    @property
    def rejected(self) -> int:
        """Rejected frames so far, all reasons."""
        return sum(self.counts.values())


def thumb_name(frame_index: int, region_index: int) -> str:
    """Relative name of the thumbnail of region `region_index` of frame `frame_index`."""
    return f"{THUMBS_DIR}/f{frame_index:07d}_r{region_index}.jpg"


def manifest_json(fields: Mapping[str, Any]) -> bytes:
    """Canonical bytes of a manifest: sorted keys, indent 2, ASCII, trailing newline."""
    text = json.dumps(dict(fields), sort_keys=True, indent=2, ensure_ascii=True, allow_nan=False)
    return (text + "\n").encode("ascii")


def build_manifest(
    *,
    task_id: str,
    source: Mapping[str, Any],
    video: Mapping[str, Any],
    analysis: Mapping[str, Any],
    parameters: Mapping[str, Any],
    proposer: Mapping[str, Any],
    counts: Mapping[str, Any],
    files: Mapping[str, Mapping[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest's fields. Keys (each section may hold more than listed):

    - `schema_version`: SCHEMA_VERSION; `task_id`: the task's id (or a local run's name).
    - `source`: `path` (as named by the task, relative to the NAS root), `size` (bytes).
    - `video`: `width`, `height`, `fps` (nominal), `frame_count` (frames actually decoded),
      `rotation` (the container's display rotation, degrees clockwise; frames and boxes are
      as stored, unrotated); the decoder that ran is `decoder` (written by the task).
    - `analysis`: `width`, `height` of the analysis frames.
    - `parameters`: every setting that can change the bytes (`Settings.effective_parameters()`).
    - `proposer`: `backend`, `model` (see `models.proposer.Proposer`).
    - `counts`: `decoded`, `kept`, `rejected` ({reason: frames} for every reason), `regions`,
      `tracks`, `thumbnails` (JPEGs written).
    - `files`: {relative name: {`size`, `sha256`}} of every other file; `actors.nas.commit`
      fills it from the bytes it actually wrote, so callers may leave it out (None: `{}`).
    - `extra`: more top-level keys; may not shadow the ones above.

    Raises ValueError when a documented key is missing.
    """
    sections: dict[str, Mapping[str, Any]] = {
        "source": source,
        "video": video,
        "analysis": analysis,
        "counts": counts,
    }
    missing = [
        f"{section}.{key}"
        for section, keys in MANIFEST_REQUIRED.items()
        for key in keys
        if key not in sections[section]
    ]
    if missing:
        raise ValueError(f"manifest is missing {', '.join(missing)}")
    manifest: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "task_id": task_id,
        "source": dict(source),
        "video": dict(video),
        "analysis": dict(analysis),
        "parameters": dict(parameters),
        "proposer": dict(proposer),
        "counts": dict(counts),
        "files": {name: dict(entry) for name, entry in (files or {}).items()},
    }
    for key, value in (extra or {}).items():
        if key in manifest:
            raise ValueError(f"manifest extra key {key!r} shadows a standard key")
        manifest[key] = value
    return manifest


def is_safe_member(name: object) -> bool:
    """True if `name` is a plain relative POSIX path inside an artifact directory.

    No absolute path, empty, `.` or `..` component, backslash or NUL: a manifest is data from the
    NAS and must never make a reader (or a commit deleting stale files) leave the directory.
    """
    if not isinstance(name, str) or not name or "\0" in name or "\\" in name:
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def file_digest(path: Path) -> tuple[int, str]:
    """(size in bytes, sha256 hex) of the file at `path`, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def parse_file_list(data: object) -> dict[str, tuple[int, str]] | None:
    """{name: (size, sha256)} from a parsed manifest, or None if it is not a platesift manifest.

    Only a manifest with an integer `schema_version` and a well-formed `files` mapping counts;
    entries with unsafe names are left out.
    """
    if not isinstance(data, dict) or not isinstance(data.get("schema_version"), int):
        return None
    files = data.get("files")
    if not isinstance(files, dict):
        return None
    out: dict[str, tuple[int, str]] = {}
    for name, entry in files.items():
        if not is_safe_member(name) or not isinstance(entry, dict):
            continue
        size, sha = entry.get("size"), entry.get("sha256")
        if isinstance(size, int) and not isinstance(size, bool) and isinstance(sha, str):
            out[name] = (size, sha)
    return out


def verify_artifact_dir(path: Path | str) -> list[str]:
    """Problems that make the directory untrustworthy; an empty list means it can be trusted.

    Checks that manifest.json exists, parses, has this SCHEMA_VERSION, and that every file it
    lists exists with the recorded size and sha256. Files it does not list are ignored.
    """
    directory = Path(path)
    manifest_path = directory / MANIFEST_NAME
    try:
        raw = manifest_path.read_bytes()
    except FileNotFoundError:
        return [f"{manifest_path}: manifest missing"]
    except OSError as exc:
        return [f"{manifest_path}: manifest unreadable ({exc.strerror or exc})"]
    try:
        data = json.loads(raw)
    except ValueError as exc:  # includes UnicodeDecodeError
        return [f"{manifest_path}: manifest unparseable ({exc})"]
    if not isinstance(data, dict):
        return [f"{manifest_path}: manifest is not a JSON object"]
    problems = []
    if data.get("schema_version") != SCHEMA_VERSION:
        problems.append(
            f"{manifest_path}: schema_version {data.get('schema_version')!r}, "
            f"expected {SCHEMA_VERSION}"
        )
    files = data.get("files")
    if not isinstance(files, dict):
        return [*problems, f"{manifest_path}: manifest has no 'files' object"]
    for name in sorted(files):
        entry = files[name]
        if not is_safe_member(name):
            problems.append(f"{manifest_path}: unsafe file name {name!r}")
            continue
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("size"), int)
            or not isinstance(entry.get("sha256"), str)
        ):
            problems.append(f"{manifest_path}: malformed entry for {name!r}")
            continue
        member = directory / name
        try:
            size, sha = file_digest(member)
        except FileNotFoundError:
            problems.append(f"{member}: listed in the manifest but missing")
            continue
        except OSError as exc:
            problems.append(f"{member}: unreadable ({exc.strerror or exc})")
            continue
        if size != entry["size"]:
            problems.append(f"{member}: size {size}, manifest says {entry['size']}")
        elif sha != entry["sha256"]:
            problems.append(f"{member}: sha256 differs from the manifest")
    return problems


def idempotency_key(task_id: str, manifest_sha256: str) -> str:
    """The heavy task's idempotency key: the source task and the artifacts' manifest hash.

    A retry that recomputes the same bytes (every crash, outage or restart) sends the same key
    and gets the original heavy task back: exactly one per source. Artifacts whose bytes
    changed between attempts (a platesift upgrade) get a heavy task of their own instead of a
    conflict; the one before names a manifest hash the directory no longer has, which is how
    the GPU box tells it is superseded.
    """
    return f"platesift:{task_id}:heavy:{manifest_sha256[:16]}"


__all__ = [
    "DECIMALS",
    "FRAMES_NAME",
    "HEAVY_TASK_NAME",
    "MANIFEST_NAME",
    "MANIFEST_REQUIRED",
    "REJECTIONS_NAME",
    "SCHEMA_VERSION",
    "THUMBS_DIR",
    "TRACKS_NAME",
    "RejectionRuns",
    "build_manifest",
    "file_digest",
    "frame_line",
    "idempotency_key",
    "is_safe_member",
    "manifest_json",
    "parse_file_list",
    "run_line",
    "thumb_name",
    "track_line",
    "verify_artifact_dir",
]
