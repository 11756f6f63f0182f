"""The decoder on real video files: the luma fast path, the colour fallback, bounded chunks,
and every kind of bad video."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from actors.decoder import Decoder, FrameClock
from actors.video_sources import decode_thread_count
from platesift.config import AnalysisSettings, ResourceSettings
from platesift.errors import NasUnavailableError, VideoError
from tests.conftest import moving_box_frames, write_timed_video, write_video

BACKENDS = ("pyav", "opencv")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def settings(backend: str, **kw: object) -> AnalysisSettings:
    return AnalysisSettings(decoder=backend, **kw)  # type: ignore[arg-type]


def decode_all(decoder: Decoder) -> list:
    frames = []
    while True:
        chunk = decoder.next_chunk()
        if chunk.end:
            return frames
        frames.extend(chunk.frames)


def test_luma_plane_path_decodes_every_frame(small_video: Path, backend: str) -> None:
    d = Decoder(settings(backend, width=160))
    info = d.open(str(small_video), small_video.stat().st_size)
    assert info.luma_path
    assert (info.width, info.height, info.fps, info.declared_frames) == (320, 240, 25.0, 40)
    assert (info.analysis_width, info.analysis_height) == (160, 120)
    frames = decode_all(d)
    assert [f.index for f in frames] == list(range(40))
    assert frames[5].t == pytest.approx(0.2)
    assert frames[0].full.shape == (240, 320) and frames[0].full.dtype == np.uint8
    # The luma plane matches OpenCV's own colour decode converted to grey (within codec range).
    cap = cv2.VideoCapture(str(small_video))
    ok, bgr = cap.read()
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(int)
    assert ok and np.abs(frames[0].full.astype(int) - grey).mean() < 20
    d.close()


def test_colour_fallback_for_non_planar_sources(tmp_path: Path, backend: str) -> None:
    video = write_video(tmp_path / "v.mkv", moving_box_frames(12), fourcc="FFV1")
    d = Decoder(settings(backend, width=160))
    info = d.open(str(video), video.stat().st_size)
    assert not info.luma_path
    frames = decode_all(d)
    assert len(frames) == 12 and frames[0].full.shape == (240, 320)


def test_chunks_are_sized_by_the_memory_budget(small_video: Path, backend: str) -> None:
    d = Decoder(settings(backend, width=160), ResourceSettings(chunk_mb=4))
    d.open(str(small_video), small_video.stat().st_size)
    # 4 MiB / (320*240*1.5) bytes of a whole 4:2:0 frame = 36 frames
    assert d.chunk_frames == 36
    chunk = d.next_chunk()
    assert len(chunk.frames) == 36 and len(d.next_chunk().frames) == 4


def test_not_a_video(tmp_path: Path, backend: str) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video")
    with pytest.raises(VideoError, match="not a video"):
        Decoder(settings(backend)).open(str(bad), bad.stat().st_size)


def test_truncated_video_is_a_permanent_error(tmp_path: Path, backend: str) -> None:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (120, 160, 3), np.uint8) for _ in range(60)]
    video = write_video(tmp_path / "v.avi", frames, fourcc="MJPG")
    data = video.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    d = Decoder(settings(backend, width=160))
    d.open(str(cut), cut.stat().st_size)
    with pytest.raises(VideoError, match=r"truncated or corrupt: decoded \d+ of 60 frames"):
        decode_all(d)


def test_truncated_mp4_cannot_even_open(tmp_path: Path, backend: str) -> None:
    video = write_video(tmp_path / "v.mp4", moving_box_frames(20))
    data = video.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError):
        Decoder(settings(backend)).open(str(cut), cut.stat().st_size)


def _patch_avi_rate(path: Path, scale: int, rate: int) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(b"strh")
    struct.pack_into("<II", data, at + 28, scale, rate)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("scale", "rate"), [(1, 100000), (1000, 1)])
def test_absurd_frame_rate(tmp_path: Path, scale: int, rate: int, backend: str) -> None:
    video = write_video(tmp_path / "v.avi", moving_box_frames(5), fourcc="MJPG")
    _patch_avi_rate(video, scale, rate)
    with pytest.raises(VideoError, match="absurd frame rate"):
        Decoder(settings(backend)).open(str(video), video.stat().st_size)


def test_source_vanishing_mid_read_is_transient(tmp_path: Path, backend: str) -> None:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (120, 160, 3), np.uint8) for _ in range(60)]
    video = write_video(tmp_path / "v.avi", frames, fourcc="MJPG")
    d = Decoder(settings(backend, width=160), ResourceSettings(chunk_mb=4))
    d.open(str(video), video.stat().st_size)
    os.remove(video)  # the NAS went away under us
    with pytest.raises(NasUnavailableError, match="became unreadable"):
        decode_all(d)


def test_fast_decode_skips_deblocking_on_h264(tmp_path: Path) -> None:
    from platesift.app.bench_clips import encode_h264

    rng = np.random.default_rng(3)
    frames = [
        np.clip(f.astype(int) + rng.integers(-20, 20, f.shape), 0, 255).astype(np.uint8)
        for f in moving_box_frames(60)
    ]
    video = encode_h264(frames, tmp_path / "v.mp4", 25.0, 150_000)  # low bitrate: blocky
    exact, fast = (
        decode_all(_opened(video, AnalysisSettings(decoder="pyav", fast_decode=mode)))
        for mode in ("off", "skip-deblock")
    )
    assert len(exact) == len(fast) == 60
    diffs = [np.abs(a.full.astype(int) - b.full.astype(int)).mean() for a, b in zip(exact, fast)]
    assert diffs[0] == 0  # the keyframe is still deblocked
    assert max(diffs) > 0  # later frames are not: the option reached FFmpeg
    assert max(diffs) < 8  # blockier, not broken


def _opened(video: Path, s: AnalysisSettings) -> Decoder:
    d = Decoder(s)
    d.open(str(video), video.stat().st_size)
    return d


def test_decode_threads_do_not_change_a_single_pixel(small_video: Path) -> None:
    from actors.video_sources import PyAVSource

    def frames(threads: int) -> list[bytes]:
        source = PyAVSource(str(small_video), threads=threads)
        out = []
        while (luma := source.read()) is not None:
            out.append(luma.tobytes())
        source.close()
        return out

    one = frames(1)
    assert len(one) == 40 and frames(4) == one and frames(0) == one


VFR_TIMES = [0.0, 0.04, 0.08, 1.0, 1.04, 3.0, 3.5, 3.54, 3.58, 7.28]


def test_frame_times_are_presentation_times(tmp_path: Path, backend: str) -> None:
    """Variable frame rate and a recording gap: `t` is each frame's own timestamp."""
    video = write_timed_video(tmp_path / "vfr.mp4", moving_box_frames(10), VFR_TIMES)
    d = Decoder(settings(backend, width=160))
    d.open(str(video), video.stat().st_size)
    assert [round(f.t, 4) for f in decode_all(d)] == VFR_TIMES


def test_rotation_is_recorded_and_frames_stay_as_stored(tmp_path: Path, backend: str) -> None:
    video = write_timed_video(
        tmp_path / "rot.mp4", moving_box_frames(5), [i / 25 for i in range(5)], rotation_ccw=90
    )
    d = Decoder(settings(backend, width=160))
    info = d.open(str(video), video.stat().st_size)
    assert info.rotation == 270  # degrees clockwise: a quarter turn counter-clockwise
    assert (info.width, info.height) == (320, 240)  # as stored: landscape
    assert {f.full.shape for f in decode_all(d)} == {(240, 320)}


def two_sizes_ts(tmp_path: Path) -> Path:
    """One MPEG-TS whose resolution changes after 20 frames (two recordings concatenated, as
    a camera that was reconfigured writes them)."""
    small = [cv2.resize(f, (160, 120)) for f in moving_box_frames(20)]
    a = write_timed_video(tmp_path / "a.ts", small, [i / 25 for i in range(20)], container="mpegts")
    b = write_timed_video(
        tmp_path / "b.ts",
        moving_box_frames(20),
        [(20 + i) / 25 for i in range(20)],
        container="mpegts",
    )
    joined = tmp_path / "two-sizes.ts"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    return joined


def test_a_resolution_change_mid_stream_is_a_clear_rejection(tmp_path: Path) -> None:
    video = two_sizes_ts(tmp_path)
    d = Decoder(settings("pyav", width=160))
    d.open(str(video), video.stat().st_size)
    with pytest.raises(VideoError, match=r"changes mid-stream at frame 20 \(160x120 -> 320x240\)"):
        decode_all(d)


@pytest.mark.parametrize(
    ("stamps", "want"),
    [
        ([10.0, 10.04, 10.5, 12.0], [0.0, 0.04, 0.5, 2.0]),  # counted from the first frame
        ([None, None, None], [0.0, 0.04, 0.08]),  # no timestamps: the frame rate
        ([0.0, 0.04, None, 0.12], [0.0, 0.04, 0.08, 0.12]),  # one missing
        ([0.0, 0.04, 0.04, 0.08], [0.0, 0.04, 0.08, 0.08]),  # a duplicate: never backwards
        ([5.0, 5.04, 0.0, 0.04], [0.0, 0.04, 0.08, 0.12]),  # the clock jumped back (a wrap)
    ],
)
def test_frame_clock(stamps: list[float | None], want: list[float]) -> None:
    clock = FrameClock(25.0)
    assert [round(clock.time(i, s), 6) for i, s in enumerate(stamps)] == want


def test_decoding_threads_are_cut_to_the_memory_budget() -> None:
    assert decode_thread_count(8, 64, 1920, 1080) == 8  # 6 MiB a thread: all of them
    assert decode_thread_count(8, 64, 3840, 2160) == 2  # 24 MiB a thread
    assert decode_thread_count(8, 8, 7680, 4320) == 1  # never none
    assert decode_thread_count(3, 0, 3840, 2160) == 3  # no budget: as asked
    assert decode_thread_count(0, 0, 640, 480) == (os.cpu_count() or 1) + 1  # FFmpeg's choice
