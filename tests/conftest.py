"""Shared fixtures: real video files written with OpenCV, nothing mocked."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np
import pytest


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Wait, without sleeping, until `predicate()` holds: it is re-checked on a short event
    timeout. True if it held within `timeout` seconds."""
    tick = threading.Event()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        tick.wait(0.02)
    return predicate()


def write_video(
    path: Path, frames: Iterable[np.ndarray], fps: float = 25.0, fourcc: str = "mp4v"
) -> Path:
    """Write BGR (or grey) frames to `path` and return it."""
    it = iter(frames)
    first = next(it)
    h, w = first.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path} with {fourcc}")
    for frame in (first, *it):
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        writer.write(frame)
    writer.release()
    return path


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A static textured grey background (BGR)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 180, (h // 8 + 1, w // 8 + 1), dtype=np.uint8)
    img = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)


def moving_box_frames(
    n: int, h: int = 240, w: int = 320, seed: int = 0, start: int = 10, colour: bool = False
) -> list[np.ndarray]:
    """A textured background with a bright box (orange with `colour`) crossing from frame
    `start` on."""
    bg = textured(h, w, seed)
    frames = []
    fill = (30, 140, 250) if colour else (240, 240, 240)
    for i in range(n):
        f = bg.copy()
        if i >= start or colour:
            x = 4 * max(0, i - start)
            cv2.rectangle(f, (x, h // 3), (x + 60, h // 3 + 40), fill, -1)
        frames.append(f)
    return frames


class FakeClock:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def small_video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "small.mp4", moving_box_frames(40))


@pytest.fixture(scope="session")
def plate_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The manifest of the synthetic TFLite plate detector (built here: no download)."""
    pytest.importorskip("ai_edge_litert")
    from sim.detector_model import write_models

    return write_models(tmp_path_factory.mktemp("model"))


class FailingDisk:
    """A real ext4 filesystem on a loop device, mounted at `point`, that can be made to fail
    every write with EIO the way a dying disk or a NAS whose storage broke does (the kernel's
    own EXT4_IOC_SHUTDOWN, the ioctl behind `xfs_io -c shutdown`)."""

    SHUTDOWN_IOCTL = 0x8004587D  # _IOR('X', 125, __u32)
    NOLOGFLUSH = 2

    def __init__(self, point: Path) -> None:
        self.point = point

    def fail(self) -> None:
        import fcntl
        import os
        import struct

        fd = os.open(self.point, os.O_RDONLY)
        try:
            fcntl.ioctl(fd, self.SHUTDOWN_IOCTL, struct.pack("I", self.NOLOGFLUSH))
        finally:
            os.close(fd)


@pytest.fixture
def failing_disk(tmp_path: Path) -> Iterable[FailingDisk]:
    """A fresh 16 MiB ext4 mounted from a loop device (root only; skipped where the machine
    cannot), unmounted after."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a loop device needs root")
    image, point = tmp_path / "disk.img", tmp_path / "disk"
    point.mkdir()
    with image.open("wb") as fh:
        fh.truncate(16 * 1024 * 1024)
    steps = (["mkfs.ext4", "-q", "-F", str(image)], ["mount", "-o", "loop", str(image), str(point)])
    for step in steps:
        if subprocess.run(step, capture_output=True, check=False).returncode != 0:
            pytest.skip(f"cannot {step[0]} a loop-device ext4 here")
    yield FailingDisk(point)
    subprocess.run(["umount", str(point)], capture_output=True, check=False)


def write_timed_video(
    path: Path,
    frames: Iterable[np.ndarray],
    times_s: Iterable[float],
    *,
    rotation_ccw: int = 0,
    container: str | None = None,
    codec: str = "libx264",
) -> Path:
    """Write BGR frames with the given presentation times (variable frame rate, gaps) and an
    optional display rotation (counter-clockwise, as the container's matrix says), with PyAV."""
    from fractions import Fraction

    import av

    images = list(frames)
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=25)
        stream.height, stream.width = images[0].shape[:2]
        ms = Fraction(1, 1000)
        stream.codec_context.time_base = stream.time_base = ms
        stream.pix_fmt = "yuv420p"
        if rotation_ccw:
            stream.set_display_rotation(rotation_ccw)
        for image, t in zip(images, times_s, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = round(t * 1000), ms  # the muxer may change the stream's
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
