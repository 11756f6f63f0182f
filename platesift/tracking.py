"""Plate tracks: the regions of consecutive kept frames joined into one track per plate pass.

Association is greedy on the overlap of each open track's predicted box (its last box moved
at its measured velocity to the new frame's time) with the new regions, best overlap first,
ties broken by track and region order, so the same input always gives the same tracks. A
region that overlaps no prediction (or whose size is too far from the track's) starts a new
track. A track survives up to `max_gap_s` without a region (missed or rejected frames) and is
closed after that, or once it is `max_track_s` long (a parked car's plate must not hold an
endless stream's memory), and handed back once, with its boxes and its best candidates.

The tracker knows nothing of pixels: a candidate is any payload with a quality; each track
keeps only its `keep` best (quality first, then earliest frame), so memory is bounded by
the plates in view, not by the video's length.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from platesift.records import Box

MAX_CENTRE_SHIFT = 0.6
"""Most distance between a track's predicted centre and a region's to join them, as a
fraction of the wider of the two boxes, for a track measured on the frame before."""
MIN_OVERLAP = 0.05
"""Affinity of a joinable region that barely overlaps the prediction (better ones score
their IoU)."""
MAX_SIZE_RATIO = 3.0
"""A region more than this much wider or narrower than the track's last box never joins it
(the detector's box on one plate can be loose in one frame and tight in the next)."""
SAME_PLATE_SHARE = 0.7
"""A region lying this much inside another region of the same frame is the same plate."""
HISTORY = 16
"""Measured centres a track keeps: its velocity is their displacement over their time span."""
GAP_SHIFT_PER_S = 1.0
"""The centre distance allowed grows by this fraction of the width per second unseen (the
prediction is less sure the longer the plate was hidden)."""

Payload = TypeVar("Payload")


@dataclass(frozen=True)
class Candidate(Generic[Payload]):
    """One region of a track that could be its thumbnail: `frame` and `region` (index in that
    frame's regions) say where it is, `quality` ranks it (`parts` say why), `payload` is the
    caller's (pixels)."""

    frame: int
    region: int
    box: Box
    quality: float
    parts: Mapping[str, float] = field(default_factory=dict, compare=False)
    payload: Payload | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ClosedTrack(Generic[Payload]):
    """A finished track: every (frame, box) it had, in frame order, and its best candidates,
    best first."""

    track: int
    first_t: float
    last_t: float
    boxes: tuple[tuple[int, Box], ...]
    best: tuple[Candidate[Payload], ...]

    @property
    def first_frame(self) -> int:
        return self.boxes[0][0]

    @property
    def last_frame(self) -> int:
        return self.boxes[-1][0]


class _Open(Generic[Payload]):
    def __init__(self, track: int, frame: int, t: float, box: Box) -> None:
        self.track = track
        self.first_t = t
        self.last_t = t
        self.box = box  # the last measured box: predictions start from it
        self.measured_t = t
        self.history: deque[tuple[float, float, float]] = deque([(t, *_centre(box))], HISTORY)
        self.velocity = (0.0, 0.0)  # centre, source pixels per second
        self.boxes: list[tuple[int, Box]] = [(frame, box)]
        self.best: list[Candidate[Payload]] = []

    def predicted(self, t: float) -> tuple[float, float, float, float]:
        dt = t - self.measured_t
        dx, dy = self.velocity[0] * dt, self.velocity[1] * dt
        x1, y1, x2, y2 = self.box
        return (x1 + dx, y1 + dy, x2 + dx, y2 + dy)

    def extend(self, frame: int, t: float, box: Box, measured: bool) -> None:
        self.last_t = t
        if self.boxes[-1][0] != frame:  # a second region of one frame: keep the first box
            self.boxes.append((frame, box))
        if not measured:
            return  # a carried box only repeats an earlier measurement
        self.history.append((t, *_centre(box)))
        # Velocity over the longest baseline kept: one jittery box barely moves it.
        t0, x0, y0 = self.history[0]
        if t > t0:
            self.velocity = (
                (self.history[-1][1] - x0) / (t - t0),
                (self.history[-1][2] - y0) / (t - t0),
            )
        self.box, self.measured_t = box, t

    def offer(self, candidate: Candidate[Payload], keep: int) -> None:
        self.best.append(candidate)
        self.best.sort(key=lambda c: (-c.quality, c.frame, c.region))
        del self.best[keep:]

    def closed(self) -> ClosedTrack[Payload]:
        return ClosedTrack(
            track=self.track,
            first_t=self.first_t,
            last_t=self.last_t,
            boxes=tuple(self.boxes),
            best=tuple(self.best),
        )


class Tracker(Generic[Payload]):
    """Tracks of one video. Feed every kept frame, in order, with `update`; collect closed
    tracks from its return value and, at the end, from `finish`. Track ids count from 1."""

    def __init__(self, *, max_gap_s: float, max_track_s: float, keep: int) -> None:
        self.max_gap_s = max_gap_s
        self.max_track_s = max_track_s
        self.keep = max(1, keep)
        self._open: list[_Open[Payload]] = []
        self._next_id = 1
        self._last_frame = -1

    @property
    def opened(self) -> int:
        """Tracks started so far."""
        return self._next_id - 1

    def update(
        self, frame: int, t: float, boxes: Sequence[Box], measured: Sequence[bool] | None = None
    ) -> tuple[list[int], list[ClosedTrack[Payload]]]:
        """Join this frame's region boxes to tracks: the track id of each box, and the tracks
        that closed before this frame (unseen for longer than `max_gap_s`, or too long).

        `measured[i]` is False for a box that was not found on this frame but carried from an
        earlier one (`proposer.frame_stride`): it joins a track but does not move its
        prediction."""
        if frame <= self._last_frame:
            raise ValueError(f"frame {frame} after frame {self._last_frame}: not increasing")
        self._last_frame = frame
        fresh = list(measured) if measured is not None else [True] * len(boxes)
        closed = self._close(lambda o: t - o.last_t > self.max_gap_s)
        closed += self._close(lambda o: t - o.first_t > self.max_track_s)
        pairs = []
        for ti, track in enumerate(self._open):
            guess = track.predicted(t)
            reach = MAX_CENTRE_SHIFT + GAP_SHIFT_PER_S * (t - track.measured_t)
            for bi, box in enumerate(boxes):
                affinity = _affinity(guess, box, reach)
                if affinity > 0:
                    pairs.append((-affinity, ti, bi))
        ids: list[int | None] = [None] * len(boxes)
        taken: set[int] = set()
        for _, ti, bi in sorted(pairs):
            if ti in taken or ids[bi] is not None:
                continue
            taken.add(ti)
            ids[bi] = self._open[ti].track
            self._open[ti].extend(frame, t, boxes[bi], fresh[bi])
        for bi, box in enumerate(boxes):
            if ids[bi] is not None:
                continue
            # A second, looser or tighter box on a plate already placed in this frame.
            same = [
                ids[j]
                for j in range(len(boxes))
                if ids[j] is not None and _containment(box, boxes[j]) >= SAME_PLATE_SHARE
            ]
            if same:
                ids[bi] = same[0]
                continue
            track = _Open[Payload](self._next_id, frame, t, box)
            self._next_id += 1
            self._open.append(track)
            ids[bi] = track.track
        return [i for i in ids if i is not None], closed

    def predict(self, track: int, t: float) -> Box | None:
        """Where open track `track` expects its plate at time `t` (its last measured box moved
        at its velocity), or None if it is closed or has no velocity yet (one measurement)."""
        for open_track in self._open:
            if open_track.track == track:
                if len(open_track.history) < 2:
                    return None
                x1, y1, x2, y2 = open_track.predicted(t)
                return (round(x1), round(y1), round(x2), round(y2))
        return None

    def offer(self, track: int, candidate: Candidate[Payload]) -> None:
        """A candidate crop for open track `track` (kept if it is among its `keep` best)."""
        for open_track in self._open:
            if open_track.track == track:
                open_track.offer(candidate, self.keep)
                return
        raise KeyError(f"track {track} is not open")

    def finish(self) -> list[ClosedTrack[Payload]]:
        """The end of the video: every open track, closed."""
        return self._close(lambda o: True)

    def _close(self, done: Callable[[_Open[Payload]], bool]) -> list[ClosedTrack[Payload]]:
        closing = [o for o in self._open if done(o)]
        self._open = [o for o in self._open if o not in closing]
        return [o.closed() for o in closing]  # opened in id order, so closed in id order


def _affinity(guess: Sequence[float], box: Box, reach: float) -> float:
    """How well `box` continues a track predicted at `guess`: their IoU, or a small positive
    value when they barely overlap; 0 when they cannot be one plate (sizes too different, or
    centres too far apart: another plate crossing this one's path)."""
    width = guess[2] - guess[0]
    if not 1 / MAX_SIZE_RATIO <= (box[2] - box[0]) / max(width, 1) <= MAX_SIZE_RATIO:
        return 0.0
    (gx, gy), (bx, by) = _centre(guess), _centre(box)
    shift = ((gx - bx) ** 2 + (gy - by) ** 2) ** 0.5 / max(width, box[2] - box[0], 1)
    if shift >= reach:
        return 0.0
    return max(iou(guess, box), MIN_OVERLAP * (1 - shift / reach))


def _containment(a: Sequence[float], b: Sequence[float]) -> float:
    """The share of the smaller of two boxes that lies inside the other."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / max(smaller, 1e-9)


def _centre(box: Sequence[float]) -> tuple[float, float]:
    return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


__all__ = [
    "MAX_CENTRE_SHIFT",
    "MAX_SIZE_RATIO",
    "MIN_OVERLAP",
    "SAME_PLATE_SHARE",
    "Candidate",
    "ClosedTrack",
    "Tracker",
    "iou",
]
