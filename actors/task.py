"""The task actor: drives one task through the state machine, talking to the other actors.

    IDLE -> PULLED -> (EXTRACTING -> FILTERING -> PROPOSING)* -> PUBLISHING -> COMPLETING -> IDLE

The chunk loop keeps `prefetch_chunks` decode requests in flight, so the decoder works on the
next chunks while the current one is filtered and proposed; memory is bounded by those few
chunks whatever the video's length. Artifacts are staged in local scratch and committed to the
NAS in one step at the end; the downstream task is published only after the manifest is
durable, and the task is completed only after publishing.

A permanent error (bad input) ends in COMPLETING with outcome `rejected`; a transient one
(hardware, NAS, server, cancellation) returns to IDLE with nothing published or completed, so
the task is simply pulled again later. A fatal one (the service's own credentials or model)
is handled like a transient one, flagged `fatal` so that the service stops.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pykka
from pykka.typing import ActorMemberMixin, proxy_method

from actors.coral import CoralProxy
from actors.decoder import DecoderProxy
from actors.messages import TaskOutcome, TaskSpec, Verdict, VideoInfo
from actors.motion import MotionProxy
from actors.nas import NasProxy, Staging
from fsm.machine import Recorder, TaskModel, build_machine
from journal.entry import JournalEntry
from models.proposer import Box, Proposal
from models.regions import Crop, carry_proposals, crop_regions, proposal_stride
from platesift import artifacts, failpoints
from platesift.config import Settings
from platesift.crop_quality import crop_quality
from platesift.errors import (
    CancelledError,
    DeliveryError,
    FatalError,
    NasUnavailableError,
    PermanentError,
    PlatesiftError,
    ProposerUnavailableError,
)
from platesift.heuristics import confidence, distance_m
from platesift.masks import Polygon, masked, parse_masks
from platesift.priority import lower_this_thread
from platesift.records import REJECTION_REASONS, KeptFrame, Region
from platesift.thumbs import encode_jpeg, thumb_pixels
from platesift.tracking import Candidate, ClosedTrack, Tracker

logger = logging.getLogger(__name__)

DECODE_TIMEOUT_S = 120.0  # one chunk; a NAS that hangs longer is treated as gone
ACTOR_TIMEOUT_S = 120.0
CARRIED_QUALITY = 0.8
"""A carried box (moved along its track, not proposed on its frame) is a little less sure to
frame the plate: its crop quality counts this much when a track picks its best."""

Progress = Callable[[int, int], None]  # (frames decoded, frames declared or 0)


class TaskSink(Protocol):
    """Where a finished task goes: the main server in production, nowhere for local runs."""

    def publish(self, heavy_task: dict[str, Any]) -> None: ...

    def complete(self, outcome: str, detail: dict[str, Any]) -> None: ...


class LocalSink:
    """For `platesift preprocess`: no server; the heavy task is only written as an artifact."""

    def publish(self, heavy_task: dict[str, Any]) -> None:
        return None

    def complete(self, outcome: str, detail: dict[str, Any]) -> None:
        return None


class TaskRunner:
    """Plain logic of the task actor; the other actors are reached through proxies."""

    def __init__(
        self,
        settings: Settings,
        *,
        decoder: DecoderProxy,
        motion: MotionProxy,
        coral: CoralProxy,
        nas: NasProxy,
        record: Recorder,
        scratch: Path,
    ) -> None:
        self.settings = settings
        self.decoder = decoder
        self.motion = motion
        self.coral = coral
        self.nas = nas
        self.record = _never_raising(record)
        self.scratch = scratch
        self.model = TaskModel()
        self.machine = build_machine(self.model, self.record, settings.journal.cycle_every_s)
        self.cancel = threading.Event()
        self.peak_scratch_bytes = 0
        self.current = settings  # the settings of the task being run
        # The current task's frame size, and the last frame proposed on: (index, its motion
        # boxes, its proposals, their tracks), carried to the frames the proposer skips.
        self._frame_size = (0, 0)
        self._carry: tuple[int, tuple[Box, ...], list[Proposal], list[int]] | None = None
        self._masks: tuple[Polygon, ...] = ()
        self._damage = ""  # why the current source looks damaged, or ""
        self._tracker: Tracker[np.ndarray] = self._new_tracker(settings)

    # --- the task -------------------------------------------------------------------------------

    def run(
        self, spec: TaskSpec, sink: TaskSink | None = None, progress: Progress | None = None
    ) -> TaskOutcome:
        sink = sink or LocalSink()
        started = time.monotonic()
        self.model.task_id, self.model.attempt = spec.task_id, spec.attempt
        self.model.pull(source=spec.source_name, dest=spec.dest)
        staging: Staging | None = None
        try:
            size = self.nas.check_source(spec.source).get(timeout=ACTOR_TIMEOUT_S)
            self.nas.check_output_dir(spec.dest).get(timeout=ACTOR_TIMEOUT_S)
            settings = spec.settings or self.settings
            self.current = settings
            info = self.decoder.open(spec.source, size, settings.analysis).get(
                timeout=DECODE_TIMEOUT_S
            )
            self.motion.start_video(info, settings).get(timeout=ACTOR_TIMEOUT_S)
            described = self.coral.describe().get(timeout=ACTOR_TIMEOUT_S)
            stride = proposal_stride(settings.proposer.frame_stride, str(described["backend"]))
            proposer: dict[str, Any] = {**described, "frame_stride": stride}
            staging = Staging(self.scratch, spec.task_id)
            counts = self._process(spec, info, stride, staging, progress)
            self.model.publish(**counts)
            heavy, manifest_sha = self._commit(spec, info, proposer, counts, staging)
            _delivered(sink.publish, heavy)
            self.model.complete(manifest_sha256=manifest_sha)
            _delivered(sink.complete, "done", {"manifest_sha256": manifest_sha})
            self.model.finish(outcome="done")
            done: dict[str, Any] = {"manifest_sha256": manifest_sha}
            if self._damage:
                logger.warning("task %s: the source looks damaged: %s", spec.task_id, self._damage)
                done["damaged"] = self._damage
            self._note(spec, "outcome", "done", done)
            return TaskOutcome(
                task_id=spec.task_id,
                outcome="done",
                detail=f"source damaged: {self._damage}" if self._damage else "",
                counts=counts,
                manifest_sha256=manifest_sha,
                heavy_task=heavy,
                dest=spec.dest,
                seconds=time.monotonic() - started,
            )
        except FatalError as exc:  # the service is broken, not the task: never reject for it
            return self._failed(spec, exc, started)
        except PermanentError as exc:
            return self._rejected(spec, sink, exc, started)
        except Exception as exc:
            return self._failed(spec, exc, started)
        finally:
            self._cleanup(staging)
            # Reset only now: a cancel that arrives before a task starts must not be lost.
            self.cancel.clear()

    def _process(
        self,
        spec: TaskSpec,
        info: VideoInfo,
        stride: int,
        staging: Staging,
        progress: Progress | None,
    ) -> dict[str, Any]:
        """Decode, filter and propose chunk by chunk. The proposer runs on a kept frame when
        `stride` frames have passed since the last one it ran on; the frames between carry its
        boxes along with the motion."""
        declared = info.declared_frames
        runs = artifacts.RejectionRuns()
        rejected = dict.fromkeys(REJECTION_REASONS, 0)
        totals = {"kept": 0, "regions": 0, "frames_with_regions": 0, "tracks": 0, "thumbnails": 0}
        decoded = 0
        # The first chunk holds every frame that seeds the background model, so the seed
        # never depends on the memory budget (`resources.chunk_mb`).
        first = self.current.motion.bootstrap_frames
        pending = deque(
            self.decoder.next_chunk(first if i == 0 else 0)
            for i in range(self.current.resources.prefetch_chunks)
        )
        # Proposal batches in flight, oldest first: (future, frames), bounded by crop bytes.
        inflight: deque[tuple[Any, list[_Waiting]]] = deque()
        inflight_bytes = 0
        budget = self.current.resources.propose_backlog_mb * 1024 * 1024
        self._frame_size = (info.width, info.height)
        self._carry = None
        self._damage = ""
        self._tracker = self._new_tracker(self.current)
        self._masks = parse_masks(self.current.camera.masks)
        last_proposed = -stride
        colour = self.current.output.colour and self.current.output.thumbnails != "none"
        chunk_no = 0
        while True:
            self.model.extract(chunk=chunk_no)
            if chunk_no == 1:
                failpoints.hit("mid_task", self.cancel)  # tests: a task that is surely under way
            if self.cancel.is_set():
                raise CancelledError("task cancelled")
            chunk = _get(
                pending.popleft(), DECODE_TIMEOUT_S, NasUnavailableError, "decoding stalled"
            )
            if chunk.end:
                self._damage = chunk.damage
                break
            pending.append(self.decoder.next_chunk())
            self.model.filter(chunk=chunk_no, frames=len(chunk.frames))
            verdicts: tuple[Verdict, ...] = self.motion.judge(chunk).get(timeout=ACTOR_TIMEOUT_S)
            decoded += len(chunk.frames)
            waiting = []
            for frame, verdict in zip(chunk.frames, verdicts):
                if verdict.kept:
                    # Keep only copies of the regions around the motion; the frame goes now.
                    due = frame.index - last_proposed >= stride
                    last_proposed = frame.index if due else last_proposed
                    crops = crop_regions(frame.full, verdict.rois, frame.chroma if colour else None)
                    waiting.append(_Waiting(frame.index, frame.t, verdict, crops, due))
                    continue
                rejected[verdict.reason or "static"] += 1
                line = runs.add(verdict.index, verdict.reason or "static")
                if line is not None:
                    staging.append_rejection(line)
            del chunk
            if waiting:
                self.model.propose(chunk=chunk_no, kept=len(waiting))
                due_crops = [w.crops for w in waiting if w.propose]
                inflight.append((self.coral.propose(due_crops), waiting))
                inflight_bytes += sum(w.nbytes for w in waiting)
            # Write what the proposer has finished; wait only when the backlog is too big.
            while inflight and (inflight_bytes > budget or _ready(inflight[0][0])):
                inflight_bytes -= self._collect(inflight.popleft(), staging, totals)
            self.peak_scratch_bytes = max(self.peak_scratch_bytes, staging.bytes_used())
            if progress is not None:
                progress(decoded, declared)
            chunk_no += 1
        while inflight:
            self._collect(inflight.popleft(), staging, totals)
        self._write_tracks(self._tracker.finish(), staging, totals)
        self.peak_scratch_bytes = max(self.peak_scratch_bytes, staging.bytes_used())
        last = runs.finish()
        if last is not None:
            staging.append_rejection(last)
        if decoded == 0:
            raise NasUnavailableError("no frames decoded")  # open() saw one: the source vanished
        return {
            "decoded": decoded,
            "kept": totals["kept"],
            "rejected": rejected,
            "regions": totals["regions"],
            "frames_with_regions": totals["frames_with_regions"],
            "tracks": totals["tracks"],
            "thumbnails": totals["thumbnails"],
        }

    def _collect(
        self, item: tuple[Any, list[_Waiting]], staging: Staging, totals: dict[str, int]
    ) -> int:
        """Wait for one proposal batch, write its frames in order; return the bytes freed."""
        future, waiting = item
        results = _get(
            future, ACTOR_TIMEOUT_S, ProposerUnavailableError, "the proposer stopped answering"
        )
        answers = iter(results)
        for w in waiting:
            if w.propose:
                found, source = next(answers), w.index
            else:
                assert self._carry is not None  # the first kept frame is always proposed on
                source, rois_then, then, tracks = self._carry
                predicted = [self._tracker.predict(track, w.t) for track in tracks]
                found = tuple(
                    carry_proposals(
                        then, rois_then, w.verdict.rois, w.crops, self._frame_size, predicted
                    )
                )
            if self._masks:
                found = tuple(f for f in found if not masked(self._masks, f[1].box))
            record = self._kept_frame(w, found, staging, source, totals)
            if w.propose:
                self._carry = (
                    w.index,
                    w.verdict.rois,
                    [p for _, p in found],
                    [r.track for r in record.regions if r.track is not None],
                )
            staging.append_frame(artifacts.frame_line(record))
            totals["kept"] += 1
            totals["regions"] += len(record.regions)
            totals["frames_with_regions"] += bool(record.regions)
        return sum(w.nbytes for w in waiting)

    def refuse(
        self, task_id: str, attempt: int, exc: PlatesiftError, sink: TaskSink | None = None
    ) -> TaskOutcome:
        """Reject a task whose request is unusable before any work (bad path, bad params)."""
        self.model.task_id, self.model.attempt = task_id, attempt
        self.model.pull()
        spec = TaskSpec(task_id=task_id, source="", source_name="", dest="", attempt=attempt)
        return self._rejected(spec, sink or LocalSink(), exc, time.monotonic())

    def _kept_frame(
        self,
        w: _Waiting,
        found: tuple[tuple[int, Proposal], ...],
        staging: Staging,
        proposed_on: int,
        totals: dict[str, int],
    ) -> KeptFrame:
        cam, out, q = self.current.camera, self.current.output, self.current.quality
        tracks, closed = self._tracker.update(
            w.index, w.t, [p.box for _, p in found], [proposed_on == w.index] * len(found)
        )
        self._write_tracks(closed, staging, totals)
        width, height = self._frame_size
        regions = []
        for i, ((crop_index, proposal), track) in enumerate(zip(found, tracks)):
            crop = w.crops[crop_index]
            x1, y1, x2, y2 = proposal.box
            local = (x1 - crop.x, y1 - crop.y, x2 - crop.x, y2 - crop.y)
            thumb = None
            pixels = None
            if out.thumbnails != "none":
                pixels = thumb_pixels(
                    crop.pixels,
                    local,
                    margin=out.thumb_margin,
                    max_width=out.thumb_max_width,
                    chroma=crop.chroma,
                )
            if out.thumbnails == "all" and pixels is not None:
                thumb = artifacts.thumb_name(w.index, i)
                staging.write_thumb(thumb, encode_jpeg(pixels, out.jpeg_quality))
                totals["thumbnails"] += 1
                pixels = None  # written already: the track only needs its name
            plate = crop.pixels[
                max(0, local[1]) : max(0, local[3]), max(0, local[0]) : max(0, local[2])
            ]
            quality = crop_quality(
                plate,
                float(proposal.score),
                touches_edge=x1 <= 0 or y1 <= 0 or x2 >= width or y2 >= height,
            )
            weight = 1.0 if proposed_on == w.index else CARRIED_QUALITY
            self._tracker.offer(
                track,
                Candidate(
                    frame=w.index,
                    region=i,
                    box=proposal.box,
                    quality=round(quality.value * weight, 4),
                    parts=quality.parts(),
                    payload=pixels,
                ),
            )
            regions.append(
                Region(
                    box=proposal.box,
                    score=round(float(proposal.score), 4),
                    distance_m=distance_m(proposal.box, cam.focal_length_px, cam.plate_width_m),
                    thumb=thumb,
                    proposed_on=proposed_on,
                    track=track,
                )
            )
        best = max((r.score for r in regions), default=None)
        v = w.verdict
        return KeptFrame(
            index=w.index,
            t=w.t,
            lighting=v.lighting,
            blur=v.blur,
            motion=v.motion,
            confidence=confidence(
                lighting=v.lighting, dark_level=q.dark_level, clarity=v.blur, best_score=best
            ),
            regions=tuple(regions),
        )

    def _write_tracks(
        self, closed: list[ClosedTrack[np.ndarray]], staging: Staging, totals: dict[str, int]
    ) -> None:
        """tracks.jsonl lines of tracks that closed, and (`output.thumbnails = best`) the
        thumbnails of their best crops; with `all` every region's was written already. A track
        shorter than `tracking.min_frames` (most likely a false alarm) lists its best crop
        only, with no thumbnail of its own."""
        out, short = self.current.output, self.current.tracking.min_frames
        for track in closed:
            brief = len(track.boxes) < short
            if brief:
                track = dataclasses.replace(track, best=track.best[:1])
            names: dict[tuple[int, int], str] = {}
            for c in track.best:
                name = artifacts.thumb_name(c.frame, c.region)
                if out.thumbnails == "best" and c.payload is not None and not brief:
                    staging.write_thumb(name, encode_jpeg(c.payload, out.jpeg_quality))
                    totals["thumbnails"] += 1
                    names[(c.frame, c.region)] = name
                elif out.thumbnails == "all":
                    names[(c.frame, c.region)] = name
            staging.append_track(artifacts.track_line(track, names))
            totals["tracks"] += 1

    @staticmethod
    def _new_tracker(settings: Settings) -> Tracker[np.ndarray]:
        return Tracker(
            max_gap_s=settings.tracking.max_gap_s,
            max_track_s=settings.tracking.max_track_s,
            keep=settings.output.best_crops,
        )

    def _commit(
        self,
        spec: TaskSpec,
        info: VideoInfo,
        proposer: dict[str, Any],
        counts: dict[str, Any],
        staging: Staging,
    ) -> tuple[dict[str, Any], str]:
        heavy = {
            "type": spec.heavy_task_type,
            "payload": {
                "source_task_id": spec.task_id,
                "video": spec.source_name,
                "artifacts": spec.dest_name or spec.dest,
                "counts": counts,
                "metadata": spec.metadata,
            },
        }
        staging.write_heavy_task(artifacts.manifest_json(heavy))
        fields: dict[str, Any] = {
            "task_id": spec.task_id,
            "source": {"path": spec.source_name, "size": info.size},
            "video": {
                "width": info.width,
                "height": info.height,
                "fps": round(info.fps, 6),
                "frame_count": counts["decoded"],
                "rotation": info.rotation,
                "decoder": info.decoder,
                "damaged": self._damage or None,
            },
            "analysis": {"width": info.analysis_width, "height": info.analysis_height},
            "parameters": self.current.effective_parameters(),
            "proposer": proposer,
            "counts": counts,
            "extra": {"metadata": spec.metadata} if spec.metadata else None,
        }
        manifest = artifacts.build_manifest(**fields)
        _, manifest_sha = self.nas.commit(staging, spec.dest, manifest).get(timeout=ACTOR_TIMEOUT_S)
        heavy["payload"]["manifest_sha256"] = manifest_sha  # type: ignore[index]
        return heavy, manifest_sha

    # --- endings ----------------------------------------------------------------------------------

    def _rejected(
        self, spec: TaskSpec, sink: TaskSink, exc: PlatesiftError, started: float
    ) -> TaskOutcome:
        self.model.reject(error=exc.message, kind=exc.kind)
        try:
            sink.complete("rejected", {"error": exc.message, "kind": exc.kind})
        except Exception as sink_exc:
            return self._failed(spec, sink_exc, started)
        self.model.finish(outcome="rejected")
        try:  # the output check made the directory: a rejected task leaves none behind
            self.nas.remove_if_empty(spec.dest).get(timeout=ACTOR_TIMEOUT_S)
        except Exception as rm_exc:  # diagnostics only: the rejection stands
            logger.warning("task %s: empty artifact directory left: %s", spec.task_id, rm_exc)
        self._note(spec, "outcome", "rejected", {"error": exc.message, "kind": exc.kind})
        return TaskOutcome(
            task_id=spec.task_id,
            outcome="rejected",
            detail=exc.message,
            error_kind=exc.kind,
            dest=spec.dest,
            seconds=time.monotonic() - started,
        )

    def _failed(self, spec: TaskSpec, exc: BaseException, started: float) -> TaskOutcome:
        fatal = isinstance(exc, PlatesiftError) and exc.fatal
        if isinstance(exc, PlatesiftError):
            message, kind = exc.message, exc.kind
        else:
            logger.exception("task %s failed unexpectedly", spec.task_id)
            message, kind = f"internal error: {type(exc).__name__}: {exc}", "InternalError"
        if self.model.state.value != "IDLE":
            self.model.fail(error=message, kind=kind)
        self._note(spec, "outcome", "failed", {"error": message, "kind": kind, "fatal": fatal})
        return TaskOutcome(
            task_id=spec.task_id,
            outcome="failed",
            detail=message,
            error_kind=kind,
            dest=spec.dest,
            seconds=time.monotonic() - started,
            fatal=fatal,
        )

    def _note(self, spec: TaskSpec, kind: str, event: str, detail: dict[str, Any]) -> None:
        state = self.model.state.value
        self.record(
            JournalEntry(
                task_id=spec.task_id,
                attempt=spec.attempt,
                kind=kind,
                event=event,
                source=state,
                dest=state,
                detail=detail,
            )
        )

    def _cleanup(self, staging: Staging | None) -> None:
        try:
            self.decoder.close().get(timeout=ACTOR_TIMEOUT_S)
        except Exception:
            logger.exception("closing the decoder failed")
        if staging is not None:
            staging.cleanup()


@dataclass(frozen=True)
class _Waiting:
    """A kept frame waiting for its proposals: only its region crops are kept."""

    index: int
    t: float
    verdict: Verdict
    crops: tuple[Crop, ...]
    propose: bool = True  # False: carry the boxes of the last frame proposed on

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.crops)


def _ready(future: Any) -> bool:
    """True when a pykka future already holds its result (or error)."""
    try:
        future.get(timeout=0)
    except pykka.Timeout:
        return False
    except Exception:
        return True  # its error is raised again when it is collected
    return True


def _never_raising(record: Recorder) -> Recorder:
    """The journal is for diagnostics only: its failures are logged, never raised."""

    def safe(entry: JournalEntry) -> None:
        try:
            record(entry)
        except Exception:
            logger.warning("journal entry dropped (%s %s)", entry.kind, entry.event, exc_info=True)

    return safe


def _delivered(call: Callable[..., None], *args: Any) -> None:
    """`call` (the sink's publish or complete); a refusal from the server there is a
    DeliveryError (transient): the artifacts are committed, so it can never reject the task."""
    try:
        call(*args)
    except FatalError:
        raise  # bad credentials: the service stops; the task is retried once they are fixed
    except PermanentError as exc:
        raise DeliveryError(f"the server refused the finished task: {exc.message}") from exc


def _get(future: Any, timeout: float, error: type[PlatesiftError], message: str) -> Any:
    try:
        return future.get(timeout=timeout)
    except pykka.Timeout:
        raise error(f"{message} (no answer within {timeout:g} s)") from None


class TaskActor(pykka.ThreadingActor):
    """Runs one task at a time. `cancel` is an event set from outside (shutdown, lost lease)."""

    def __init__(self, runner: TaskRunner) -> None:
        super().__init__()
        self.runner = runner

    def on_start(self) -> None:
        lower_this_thread(self.runner.settings.resources.filter_nice)

    def run(
        self, spec: TaskSpec, sink: TaskSink | None = None, progress: Progress | None = None
    ) -> TaskOutcome:
        return self.runner.run(spec, sink, progress)

    def refuse(
        self, task_id: str, attempt: int, exc: PlatesiftError, sink: TaskSink | None = None
    ) -> TaskOutcome:
        return self.runner.refuse(task_id, attempt, exc, sink)


class TaskProxy(ActorMemberMixin, pykka.ActorProxy[TaskActor]):
    """Typed proxy of a `TaskActor`: `cast(TaskProxy, ref.proxy())`."""

    run = proxy_method(TaskActor.run)
    refuse = proxy_method(TaskActor.refuse)


__all__ = [
    "LocalSink",
    "Progress",
    "TaskActor",
    "TaskProxy",
    "TaskRunner",
    "TaskSink",
]
