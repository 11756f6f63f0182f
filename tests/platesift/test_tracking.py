"""The plate tracker: one track per pass through gaps and crossings, never two plates in one,
closed after a gap or at the length limit, best candidates ranked, memory bounded."""

from __future__ import annotations

import pytest

from platesift.records import Box
from platesift.tracking import Candidate, ClosedTrack, Tracker

FPS = 25.0


def plate_at(x: float, y: float, w: int = 60, h: int = 14) -> Box:
    return (round(x), round(y), round(x) + w, round(y) + h)


def feed(
    tracker: Tracker[None], frames: list[list[Box]], start: int = 0
) -> tuple[list[list[int]], list[ClosedTrack[None]]]:
    ids, closed = [], []
    for i, boxes in enumerate(frames):
        frame = start + i
        got, done = tracker.update(frame, frame / FPS, boxes)
        ids.append(got)
        closed += done
    return ids, closed


def new_tracker(**kw: float) -> Tracker[None]:
    settings = {"max_gap_s": 1.5, "max_track_s": 60.0, "keep": 3, **kw}
    return Tracker(
        max_gap_s=settings["max_gap_s"],
        max_track_s=settings["max_track_s"],
        keep=int(settings["keep"]),
    )


def test_one_plate_moving_across_is_one_track() -> None:
    tracker = new_tracker()
    ids, closed = feed(tracker, [[plate_at(10 + 8 * i, 200)] for i in range(60)])
    closed += tracker.finish()
    assert {i for frame in ids for i in frame} == {1}
    assert len(closed) == 1
    track = closed[0]
    assert (track.first_frame, track.last_frame) == (0, 59)
    assert [f for f, _ in track.boxes] == list(range(60))
    assert track.first_t == 0.0 and track.last_t == pytest.approx(59 / FPS)


def test_a_plate_hidden_for_a_second_keeps_its_track() -> None:
    tracker = new_tracker()
    # Moving 8 px per frame; unseen (occluded, or frames rejected) for 25 frames.
    frames = [[plate_at(10 + 8 * i, 200)] if not 20 <= i < 45 else [] for i in range(70)]
    ids, _ = feed(tracker, frames)
    assert {i for frame in ids for i in frame} == {1}


def test_a_plate_unseen_longer_than_the_gap_starts_a_new_track() -> None:
    tracker = new_tracker(max_gap_s=0.4)
    frames = [[plate_at(100, 200)] if not 10 <= i < 30 else [] for i in range(40)]
    ids, closed = feed(tracker, frames)
    assert ids[0] == [1] and ids[-1] == [2]
    assert [t.track for t in closed] == [1]  # closed as soon as a later frame came
    assert closed[0].last_frame == 9


def test_two_plates_crossing_in_opposite_directions_stay_apart() -> None:
    tracker = new_tracker()
    frames = []
    for i in range(80):
        left = plate_at(20 + 7 * i, 200)  # to the right
        right = plate_at(580 - 7 * i, 204)  # to the left, nearly the same row
        frames.append([left, right] if i % 2 else [right, left])
    ids, _ = feed(tracker, frames)
    closed = tracker.finish()
    assert len(closed) == 2
    by_track = {t.track: t for t in closed}
    goes_right = by_track[ids[0][1]]  # frame 0 lists `right` first
    xs = [box[0] for _, box in goes_right.boxes]
    assert xs == sorted(xs) and len(xs) == 80


def test_another_plate_near_where_a_lost_one_was_expected_is_a_new_track() -> None:
    tracker = new_tracker()
    frames: list[list[Box]] = [[plate_at(100 + 8 * i, 200)] for i in range(20)]  # then hidden
    # Five frames later the lost plate is expected at x = 100 + 8 * 24 = 292; another plate
    # shows 55 px (0.9 of a plate width) further on, and goes the other way.
    frames += [[] for _ in range(4)] + [[plate_at(347 - 8 * i, 200)] for i in range(10)]
    ids, _ = feed(tracker, frames)
    assert ids[0] == [1] and ids[-1] == [2]


def test_a_looser_second_box_on_the_same_plate_joins_its_track() -> None:
    tracker = new_tracker()
    ids, _ = feed(
        tracker,
        [[plate_at(100 + 5 * i, 200), (90 + 5 * i, 190, 180 + 5 * i, 224)] for i in range(5)],
    )
    assert all(frame == [1, 1] for frame in ids)


def test_sizes_too_different_are_not_one_plate() -> None:
    tracker = new_tracker()
    ids, _ = feed(tracker, [[plate_at(100, 200, w=40)], [plate_at(90, 195, w=200, h=50)]])
    assert ids == [[1], [2]]


def test_a_carried_box_joins_without_moving_the_prediction() -> None:
    tracker = new_tracker()
    for i in range(4):
        tracker.update(i, i / FPS, [plate_at(100 + 10 * i, 200)])
    before = tracker.predict(1, 5 / FPS)
    # A carried box far off the path (a bad motion estimate) is joined but not trusted.
    ids, _ = tracker.update(4, 4 / FPS, [plate_at(148, 222)], [False])
    assert ids == [1]
    assert tracker.predict(1, 5 / FPS) == before == plate_at(150, 200)


def test_a_track_is_closed_at_its_length_limit_and_the_plate_goes_on_in_a_new_one() -> None:
    tracker = new_tracker(max_track_s=2.0)
    ids, closed = feed(tracker, [[plate_at(100, 200)] for _ in range(125)])  # a parked car
    assert [t.track for t in closed] == [1, 2]
    assert all(len(t.boxes) <= 2.0 * FPS + 1 for t in closed)
    assert ids[-1] == [3]


def test_memory_is_bounded_by_the_plates_in_view_not_the_stream_length() -> None:
    tracker = new_tracker(max_gap_s=0.5)
    frame, closed = 0, 0
    for _ in range(200):  # 200 cars, one after another, 30 frames each, 20 frames apart
        for i in range(30):
            _, done = tracker.update(frame, frame / FPS, [plate_at(10 + 15 * i, 200)])
            closed += len(done)
            assert len(tracker._open) <= 1
            frame += 1
        frame += 20
    assert closed == 199 and tracker.opened == 200


def test_the_best_candidates_are_kept_best_first_ties_by_earlier_frame() -> None:
    tracker: Tracker[str] = Tracker(max_gap_s=1.0, max_track_s=60.0, keep=2)
    qualities = [0.3, 0.9, 0.5, 0.9, 0.1]
    for frame, q in enumerate(qualities):
        (track,), _ = tracker.update(frame, frame / FPS, [plate_at(100 + frame, 200)])
        tracker.offer(track, Candidate(frame, 0, plate_at(100 + frame, 200), q, {}, f"px{frame}"))
    (done,) = tracker.finish()
    assert [(c.frame, c.quality, c.payload) for c in done.best] == [
        (1, 0.9, "px1"),
        (3, 0.9, "px3"),
    ]


def test_same_input_same_tracks() -> None:
    def once() -> list[ClosedTrack[None]]:
        tracker = new_tracker()
        frames = [
            [plate_at(20 + 7 * i, 200), plate_at(580 - 7 * i, 204), plate_at(300, 50 + i)]
            for i in range(50)
        ]
        _, closed = feed(tracker, frames)
        return closed + tracker.finish()

    assert once() == once()


def test_frames_must_come_in_order() -> None:
    tracker = new_tracker()
    tracker.update(5, 0.2, [])
    with pytest.raises(ValueError, match="not increasing"):
        tracker.update(5, 0.2, [])
    with pytest.raises(KeyError):
        tracker.offer(9, Candidate(5, 0, plate_at(0, 0), 0.5))
