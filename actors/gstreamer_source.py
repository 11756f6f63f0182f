"""The Jetson's hardware decoder as a `VideoSource`: raw frames read from a `gst-launch-1.0`
subprocess (`nvv4l2decoder` decodes, `nvvidconv` copies to system memory as I420), so it works
with any Python and any OpenCV build (the opencv-python wheels have no GStreamer).

This module owns: finding out whether GStreamer with NVIDIA's decoder is installed (probed once
per pair of executables), the pipeline's argv (never a shell; the video path is one argv element
and is refused when the pipeline parser could misread it), probing the container with PyAV
(size, rate, declared frames, display rotation: one frame decoded), reading exact I420 frames
from a dedicated pipe, taking their Y plane, each frame's presentation time (the pipe carries
bare pixels, so the times come from the container's packets, `PresentationTimes`), and the
subprocess's whole life (its error line, a stall, truncation, kill and reap on close).

The pipeline scales every frame to the size the container declared at the start, so a
resolution change mid-stream cannot be seen in the pixels: it is seen in the decoder's output
caps, which `gst-launch -v` prints (`DECODER_CAPS`), and rejected like on the PyAV path.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import logging
import math
import os
import re
import select
import shutil
import subprocess
import threading
from dataclasses import dataclass
from typing import IO

import numpy as np

from actors.container_probe import PresentationTimes, Probe, probe_video
from actors.source_facts import SourceInfo, check_size
from platesift.errors import ConfigError, TransientError, VideoError
from platesift.thumbs import Chroma

logger = logging.getLogger(__name__)

GST_LAUNCH = "gst-launch-1.0"
GST_INSPECT = "gst-inspect-1.0"
HW_DECODER = "nvv4l2decoder"
DECODER_NAME = "platesift_decoder"
# `gst-launch -v` prints every caps negotiated; the decoder's output caps carry the size of the
# frames it decodes, e.g. `/GstPipeline:pipeline0/GstNvV4l2Decoder:platesift_decoder.GstPad:src:
# caps = video/x-raw(memory:NVMM), format=(string)NV12, width=(int)1920, height=(int)1080, ...`.
# A second size there is a resolution change (nvvidconv would silently scale it to the first).
DECODER_CAPS = f":{DECODER_NAME}.GstPad:src: caps = "
_CAPS_FIELD = {key: re.compile(rf"\b{key}=\(int\)(\d+)") for key in ("width", "height")}
# gst-launch's own progress lines: never the reason a pipeline failed.
PROGRESS_PREFIXES = (
    "/",
    "Setting pipeline",
    "Pipeline is",
    "Redistribute",
    "New clock",
    "Got EOS",
    "Execution ended",
    "Freeing pipeline",
    "Got context",
)
# Between `filesrc` and the caps filter: demux + parse whatever the container holds, decode on
# the NVDEC engine, copy (and convert) to system memory with the VIC. `parsebin` offers every
# stream; gst-launch links the first one nvv4l2decoder accepts (the video) and leaves audio
# unlinked, exactly like the usual `qtdemux ! h264parse ! nvv4l2decoder`.
DECODE_ELEMENTS = ("parsebin", "!", HW_DECODER, f"name={DECODER_NAME}", "!", "nvvidconv")
# Codecs `auto` sends to NVDEC: the two every Jetson decodes (the others vary by module, e.g.
# AV1 only on Orin). Anything else goes to the software decoder; an explicit `gstreamer` tries
# every codec.
HW_CODECS = frozenset({"h264", "hevc"})
INSPECT_TIMEOUT_S = 30.0  # the first gst-inspect on a Nano may rebuild the plugin registry
STALL_TIMEOUT_S = 60.0  # no bytes from the pipeline for this long = the decoder is stuck
EXIT_TIMEOUT_S = 10.0  # after the last frame, the pipeline must exit within this
TERMINATE_TIMEOUT_S = 2.0  # close(): SIGTERM, then SIGKILL after this
STDERR_LINES = 40


# --- is it there? -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GstStatus:
    """What the machine offers: `problem` is empty when the hardware pipeline can run."""

    launch: str  # path of gst-launch-1.0, "" when not on PATH
    problem: str  # "" = usable; else what is missing, one line

    @property
    def usable(self) -> bool:
        return not self.problem


_probed: dict[tuple[str, str], GstStatus] = {}


def gstreamer_status() -> GstStatus:
    """gst-launch-1.0 on PATH and `gst-inspect-1.0 nvv4l2decoder` succeeding. Cached per pair
    of executables, except an inspection that timed out (a first run may rebuild GStreamer's
    plugin registry for longer than we wait): that one is asked again next time."""
    key = (shutil.which(GST_LAUNCH) or "", shutil.which(GST_INSPECT) or "")
    status = _probed.get(key)
    if status is None:
        status, final = _probe(*key)
        if final:
            _probed[key] = status
    return status


def clear_probe_cache() -> None:
    _probed.clear()


def _probe(launch: str, inspect: str) -> tuple[GstStatus, bool]:
    """(status, whether it is worth caching)."""
    if not launch:
        return GstStatus("", f"{GST_LAUNCH} is not on PATH"), True
    if not inspect:
        problem = f"{GST_INSPECT} is not on PATH (needed to find {HW_DECODER})"
        return GstStatus(launch, problem), True
    try:
        done = subprocess.run(
            [inspect, HW_DECODER],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=INSPECT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        problem = f"{GST_INSPECT} {HW_DECODER} took more than {INSPECT_TIMEOUT_S:g} s"
        return GstStatus(launch, problem), False
    except OSError as exc:
        return GstStatus(launch, f"{GST_INSPECT} {HW_DECODER} did not run ({exc})"), True
    if done.returncode != 0:
        problem = f"GStreamer has no {HW_DECODER} element (NVIDIA's plugins)"
        return GstStatus(launch, problem), True
    return GstStatus(launch, ""), True


def require_gstreamer() -> str:
    """gst-launch-1.0's path, or one ConfigError line saying what is missing and the fix."""
    status = gstreamer_status()
    if not status.usable:
        raise ConfigError(
            f"analysis.decoder = gstreamer needs the Jetson's hardware decoder, but "
            f"{status.problem}: on a Jetson install JetPack's GStreamer "
            f"(sudo apt install gstreamer1.0-tools nvidia-l4t-gstreamer); "
            f"elsewhere set analysis.decoder = auto"
        )
    return status.launch


def location_problem(path: str) -> str:
    """Why `path` cannot be one `location=` argument of gst-launch, or "" when it can.

    gst-launch joins its argv into one pipeline description, escaping only spaces; its parser
    then treats double quotes and backslashes specially and splits on any other whitespace.
    Such names (and names that are not UTF-8, which GStreamer rejects) are refused, never
    quoted by guesswork."""
    for bad, what in (('"', "a double quote"), ("\\", "a backslash")):
        if bad in path:
            return what
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "bytes that are not UTF-8"
    if any(c.isspace() and c != " " for c in path) or not path.isprintable():
        return "a control character"
    return ""


def pipeline_argv(launch: str, path: str, width: int, height: int, fd: int) -> list[str]:
    """The gst-launch argv: I420 frames of exactly width x height, written to `fd`."""
    return [
        launch,
        "-v",  # print negotiated caps: the decoder's tell its frame size (DECODER_CAPS)
        "filesrc",
        f"location={path}",
        "!",
        *DECODE_ELEMENTS,
        "!",
        f"video/x-raw,format=I420,width={width},height={height}",
        "!",
        "fdsink",
        f"fd={fd}",
        "sync=false",
    ]


def i420_layout(width: int, height: int) -> tuple[int, int]:
    """(luma row stride, frame size) of an I420 buffer in GStreamer's default layout
    (`gst_video_info_set_format`: rows padded to 4 bytes, planes to an even height)."""
    y_stride = _round_up(width, 4)
    c_stride = _round_up(_round_up(width, 2) // 2, 4)
    h2 = _round_up(height, 2)
    return y_stride, y_stride * h2 + 2 * c_stride * (h2 // 2)


def i420_chroma(rest: np.ndarray, width: int, height: int) -> Chroma | None:
    """Views of the U and V planes in what follows the luma rows of an I420 buffer
    (`i420_layout`): the even-height padding row, if any, then U, then V."""
    y_stride, size = i420_layout(width, height)
    h2 = _round_up(height, 2)
    c_stride = _round_up(_round_up(width, 2) // 2, 4)
    start = y_stride * (h2 - height)
    plane = c_stride * (h2 // 2)
    if len(rest) != size - y_stride * height or plane == 0:
        return None
    w2 = (width + 1) // 2
    u = rest[start : start + plane].reshape(h2 // 2, c_stride)[:, :w2]
    v = rest[start + plane : start + 2 * plane].reshape(h2 // 2, c_stride)[:, :w2]
    return u, v


def _round_up(value: int, to: int) -> int:
    return (value + to - 1) // to * to


def open_gstreamer(path: str, explicit: bool) -> GStreamerSource | None:
    """`analysis.decoder = gstreamer` (`explicit`) or `auto` on a machine that has it.

    Explicit: a missing GStreamer is a ConfigError and a path it cannot carry a VideoError.
    Auto: None (use the software decoder) for those and for codecs NVDEC does not decode."""
    if explicit:
        launch = require_gstreamer()
    else:
        status = gstreamer_status()
        launch = status.launch if status.usable else ""
    if not explicit and (not launch or location_problem(os.path.abspath(path))):
        return None
    probe = probe_video(path)
    if not explicit and probe.codec not in HW_CODECS:
        logger.info("%s: codec %s is not hardware-decoded; using PyAV", path, probe.codec)
        return None
    return GStreamerSource(path, launch=launch, probe=probe)


# --- the source ---------------------------------------------------------------------------------


class GStreamerSource:
    """Full-resolution luma planes from a gst-launch subprocess, in order, None at the end."""

    def __init__(
        self,
        path: str,
        *,
        launch: str | None = None,
        probe: Probe | None = None,
        stall_timeout_s: float = STALL_TIMEOUT_S,
    ) -> None:
        launch = launch or require_gstreamer()
        self._location = os.path.abspath(path)
        problem = location_problem(self._location)
        if problem:
            raise VideoError(
                f"{path} cannot be given to {GST_LAUNCH} safely (its name contains {problem}); "
                f"rename it or set analysis.decoder = pyav"
            )
        probe = probe or probe_video(path)
        self.path = path
        self.info = SourceInfo(
            width=probe.width,
            height=probe.height,
            fps=probe.fps,
            declared_frames=probe.declared_frames,
            luma_path=True,
            backend="gstreamer",
        )
        self.corrupt = False
        self.frames = 0
        self.time_s: float | None = None
        self.rotation = probe.rotation
        self.chroma: Chroma | None = None
        self._times: PresentationTimes | None = None
        self._stall_s = stall_timeout_s
        self._done = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._pipe: io.FileIO | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self._sizes: list[tuple[int, int]] = []  # the decoder's frame sizes, in order
        self._stderr_thread: threading.Thread | None = None
        w, h = probe.width, probe.height
        if w <= 0 or h <= 0 or not math.isfinite(probe.fps):
            # Let the decoder's validation report it; there is nothing to run.
            self._done = True
            self._y_stride, self._frame_bytes = 0, 0
            self._rest = 0
            return
        self._y_stride, self._frame_bytes = i420_layout(w, h)
        self._rest = self._frame_bytes - self._y_stride * h  # bytes after the luma rows
        self._times = PresentationTimes(self._location)
        self._start(launch)

    def _start(self, launch: str) -> None:
        w, h = self.info.width, self.info.height
        read_fd, write_fd = os.pipe()
        try:
            argv = pipeline_argv(launch, self._location, w, h, write_fd)
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                # NVIDIA's libraries print to stdout ("Opening in BLOCKING MODE"): frames travel
                # on their own pipe, and stdout joins stderr for the error line.
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(write_fd,),
                close_fds=True,
            )
        except OSError as exc:  # it was there a moment ago: not the video's fault
            os.close(read_fd)
            raise TransientError(f"cannot start {GST_LAUNCH} for {self.path}: {exc}") from None
        finally:
            os.close(write_fd)
        self._pipe = io.FileIO(read_fd, "rb", closefd=True)
        assert self._proc.stdout is not None
        self._stderr_thread = threading.Thread(
            target=_drain, args=(self._proc.stdout, self._stderr, self._sizes), daemon=True
        )
        self._stderr_thread.start()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        """The pipeline's exit status once it has been reaped, else None."""
        return self._proc.returncode if self._proc is not None else None

    def read(self) -> np.ndarray | None:
        if self._done:
            return None
        w, h = self.info.width, self.info.height
        self.chroma = None
        luma = np.empty((h, self._y_stride), np.uint8)
        want = luma.nbytes
        got = self._fill(luma.data.cast("B"))
        # Each frame's chroma is its own buffer: a kept frame's colour thumbnails need it.
        chroma = np.empty(self._rest, np.uint8)
        if got == want and len(chroma):
            got += self._fill(chroma.data.cast("B"))
        if got == 0:
            self._finish()
            return None
        if got < self._frame_bytes:
            self._finish(partial=got)
            return None
        self._check_sizes()
        self.frames += 1
        self.time_s = self._times.next() if self._times is not None else None
        self.chroma = i420_chroma(chroma, w, h)
        return luma if self._y_stride == w else luma[:, :w]

    def _check_sizes(self) -> None:
        """VideoError once the decoder has reported a second frame size (the notice may come
        a few frames late; the end of the stream waits for every notice)."""
        sizes = list(self._sizes)
        changed = [size for size in sizes if size != sizes[0]]
        if changed:
            self._done = True
            self._stop()
            first = dataclasses.replace(self.info, width=sizes[0][0], height=sizes[0][1])
            check_size(self.path, self.frames, first, *changed[0])

    def _fill(self, view: memoryview) -> int:
        """Read into `view` until it is full or the pipe ends; bytes read."""
        assert self._pipe is not None
        poller = select.poll()
        poller.register(self._pipe.fileno(), select.POLLIN)
        done = 0
        while done < len(view):
            if not poller.poll(self._stall_s * 1000):
                self._done = True
                self._stop()
                raise TransientError(
                    f"{GST_LAUNCH} gave no frame for {self._stall_s:g} s on {self.path} "
                    f"(hardware decoder or storage stalled); stopped it"
                )
            n = self._pipe.readinto(view[done:])
            if not n:
                break
            done += n
        return done

    def _finish(self, partial: int = 0) -> None:
        """The pipe ended: reap the pipeline and judge how it ended."""
        self._done = True
        code = self._wait()
        self._check_sizes()  # every notice is in: the drain thread has ended
        reason = self._error_line()
        if code != 0 and self.frames == 0:
            raise VideoError(f"{self.path}: the GStreamer pipeline failed ({reason})")
        if code != 0:
            self.corrupt = True
            logger.warning(
                "%s: decoding stopped after %d frames: %s", self.path, self.frames, reason
            )
        elif partial:
            self.corrupt = True
            logger.warning(
                "%s: the last frame is incomplete (%d of %d bytes): truncated stream",
                self.path,
                partial,
                self._frame_bytes,
            )

    def _wait(self) -> int:
        assert self._proc is not None
        try:
            code = self._proc.wait(timeout=EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._stop()
            code = self._proc.returncode
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=EXIT_TIMEOUT_S)
        return code

    def _error_line(self) -> str:
        lines = [line for line in self._stderr if line and not line.startswith(PROGRESS_PREFIXES)]
        errors = [line for line in lines if line.startswith("ERROR")]
        line = (errors[:1] or lines[-1:] or [f"{GST_LAUNCH} exited with {self.returncode}"])[0]
        return line[:300]

    def _stop(self) -> None:
        """Terminate (then kill) the pipeline if it still runs, and reap it."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=TERMINATE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        self._done = True
        if self._times is not None:
            self._times.close()
            self._times = None
        if self._pipe is not None:
            self._pipe.close()  # a pipeline still writing gets EPIPE
            self._pipe = None
        self._stop()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=EXIT_TIMEOUT_S)
            self._stderr_thread = None
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()


def decoder_size(line: str) -> tuple[int, int] | None:
    """The frame size in a `gst-launch -v` line announcing the decoder's output caps."""
    _, found, caps = line.partition(DECODER_CAPS)
    if not found:
        return None
    width, height = (_CAPS_FIELD[key].search(caps) for key in ("width", "height"))
    if width is None or height is None:
        return None
    return int(width[1]), int(height[1])


def _drain(stream: IO[bytes], lines: collections.deque[str], sizes: list[tuple[int, int]]) -> None:
    """Keep the last lines of the pipeline's stdout+stderr and every frame size its decoder
    reported (and never let the pipe fill)."""
    try:
        for raw in stream:
            line = raw.decode("utf-8", "replace").strip()
            size = decoder_size(line)
            if size is not None:
                sizes.append(size)
            lines.append(line)
    except (OSError, ValueError):  # closed under us by close()
        pass


__all__ = [
    "GStreamerSource",
    "GstStatus",
    "clear_probe_cache",
    "decoder_size",
    "gstreamer_status",
    "i420_layout",
    "location_problem",
    "open_gstreamer",
    "pipeline_argv",
    "require_gstreamer",
]
