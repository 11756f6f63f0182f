"""A reader of platesift's artifact directories that needs only the Python standard library.

The GPU box can copy this one file and nothing else (it imports nothing from platesift):

    from reader import Artifacts

    art = Artifacts("/mnt/nas/artifacts/t-123")   # ArtifactError unless the directory is whole
    for track in art.tracks():                     # one per plate pass, its best crops first
        best = track.best[0]
        print(track.track, best.frame, best.box, best.quality, best.thumb)
    for frame, region in art.regions():            # every region of every kept frame
        print(frame.frame, frame.t, region.box, region.track)

A directory is trusted only when its `manifest.json` is there, has a schema version this
reader knows, and every file it lists has the size and sha256 it says (what a commit that
was interrupted, or a directory being rewritten, never has). Boxes are integer pixels of the
source video as stored (not rotated; `video["rotation"]` says how to turn it for display),
x2 and y2 exclusive; `t` is the frame's presentation time in seconds since the first frame.
The format: `platesift/schemas/` and the README's "Artifacts".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUPPORTED_SCHEMAS = (3,)


class ArtifactError(Exception):
    """The directory is not a whole, trustworthy platesift artifact directory."""


@dataclass(frozen=True)
class Region:
    box: tuple[int, int, int, int]
    score: float
    distance_m: float | None
    thumb: Path | None  # the JPEG crop, if one was written
    proposed_on: int | None  # the frame the proposer looked at (this one or an earlier one)
    track: int | None  # the plate track it belongs to (`Artifacts.tracks()`)


@dataclass(frozen=True)
class BestCrop:
    frame: int
    region: int  # index in that frame's regions
    box: tuple[int, int, int, int]
    quality: float  # predicted readability, 0-1; `parts` says of what
    parts: dict[str, float]
    thumb: Path | None  # its JPEG, if one was written


@dataclass(frozen=True)
class Track:
    """One plate's pass through the view: the regions of consecutive frames joined."""

    track: int
    first_frame: int
    last_frame: int
    first_t: float
    last_t: float
    boxes: tuple[tuple[int, tuple[int, int, int, int]], ...]  # (frame, box) in frame order
    best: tuple[BestCrop, ...]  # best first


@dataclass(frozen=True)
class KeptFrame:
    frame: int
    t: float
    lighting: float
    blur: float
    motion: float
    confidence: float
    regions: tuple[Region, ...]


class Artifacts:
    """One artifact directory, checked when opened (`verify=False` skips the hashes)."""

    def __init__(self, directory: str | Path, *, verify: bool = True) -> None:
        self.directory = Path(directory)
        path = self.directory / "manifest.json"
        try:
            self.manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ArtifactError(f"{path} does not exist: the directory is not committed") from None
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{path} cannot be read: {exc}") from None
        version = self.manifest.get("schema_version")
        if version not in SUPPORTED_SCHEMAS:
            known = ", ".join(map(str, SUPPORTED_SCHEMAS))
            raise ArtifactError(f"{path}: schema_version {version!r}, this reader knows {known}")
        if verify:
            self._verify()

    @property
    def task_id(self) -> str:
        return str(self.manifest["task_id"])

    @property
    def source(self) -> str:
        """The source video as the task named it (relative to the NAS root)."""
        return str(self.manifest["source"]["path"])

    @property
    def video(self) -> dict[str, Any]:
        """width, height, fps (nominal), frame_count, rotation."""
        return dict(self.manifest["video"])

    def frames(self) -> Iterator[KeptFrame]:
        """Every kept frame, in frame order."""
        for record in self._lines("frames.jsonl"):
            yield KeptFrame(
                frame=int(record["frame"]),
                t=float(record["t"]),
                lighting=float(record["lighting"]),
                blur=float(record["blur"]),
                motion=float(record["motion"]),
                confidence=float(record["confidence"]),
                regions=tuple(self._region(r) for r in record["regions"]),
            )

    def regions(self) -> Iterator[tuple[KeptFrame, Region]]:
        """(frame, region) for every proposed plate region, in frame order."""
        for frame in self.frames():
            for region in frame.regions:
                yield frame, region

    def tracks(self) -> Iterator[Track]:
        """Every plate track, in the order they closed."""
        for record in self._lines("tracks.jsonl"):
            yield Track(
                track=int(record["track"]),
                first_frame=int(record["first_frame"]),
                last_frame=int(record["last_frame"]),
                first_t=float(record["first_t"]),
                last_t=float(record["last_t"]),
                boxes=tuple(
                    (int(f), (int(a), int(b), int(c), int(d))) for f, a, b, c, d in record["boxes"]
                ),
                best=tuple(
                    BestCrop(
                        frame=int(c["frame"]),
                        region=int(c["region"]),
                        box=(
                            int(c["box"][0]),
                            int(c["box"][1]),
                            int(c["box"][2]),
                            int(c["box"][3]),
                        ),
                        quality=float(c["quality"]),
                        parts={str(k): float(v) for k, v in c["parts"].items()},
                        thumb=None if c["thumb"] is None else self.directory / c["thumb"],
                    )
                    for c in record["best"]
                ),
            )

    def rejections(self) -> Iterator[tuple[int, int, str]]:
        """(first frame, last frame inclusive, reason) of every run of dropped frames."""
        for record in self._lines("rejections.jsonl"):
            yield int(record["from"]), int(record["to"]), str(record["reason"])

    def _region(self, record: dict[str, Any]) -> Region:
        x1, y1, x2, y2 = (int(v) for v in record["box"])
        thumb = record.get("thumb")
        return Region(
            box=(x1, y1, x2, y2),
            score=float(record["score"]),
            distance_m=None if record.get("distance_m") is None else float(record["distance_m"]),
            thumb=None if thumb is None else self.directory / thumb,
            proposed_on=record.get("proposed_on"),
            track=record.get("track"),
        )

    def _lines(self, name: str) -> Iterator[dict[str, Any]]:
        with (self.directory / name).open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                try:
                    yield json.loads(line)
                except ValueError:
                    raise ArtifactError(f"{name} line {number} is not JSON") from None

    def _verify(self) -> None:
        files = self.manifest.get("files")
        if not isinstance(files, dict):
            raise ArtifactError("manifest.json lists no files")
        root = self.directory.resolve()
        for name, entry in sorted(files.items()):
            path = (self.directory / name).resolve()
            if root not in path.parents:
                raise ArtifactError(f"manifest.json lists {name!r}, outside the directory")
            try:
                size = path.stat().st_size
            except OSError:
                raise ArtifactError(f"{name} is listed but missing") from None
            if size != entry.get("size") or _sha256(path) != entry.get("sha256"):
                raise ArtifactError(f"{name} does not match the manifest")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


__all__ = [
    "SUPPORTED_SCHEMAS",
    "ArtifactError",
    "Artifacts",
    "BestCrop",
    "KeptFrame",
    "Region",
    "Track",
]
