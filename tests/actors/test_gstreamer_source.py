"""The GStreamer (Jetson hardware decoder) source, with its real subprocess plumbing: fake
`gst-launch-1.0` / `gst-inspect-1.0` executables on PATH decode with PyAV and write raw I420
frames exactly as the real pipeline's `fdsink` would, so frames, errors, truncation, stalls,
reaping and the `auto` choice are all exercised without a Jetson."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from actors import gstreamer_source as gst
from actors.decoder import Decoder
from actors.gstreamer_source import GStreamerSource, i420_layout, location_problem
from actors.video_sources import PyAVSource, open_source
from platesift.config import AnalysisSettings
from platesift.errors import ConfigError, TransientError, VideoError
from tests.conftest import moving_box_frames, write_timed_video, write_video
from tests.test_cli import run

FAKE_LAUNCH = r'''#!{python}
"""Fake gst-launch-1.0: decodes location= with PyAV, writes GStreamer-layout I420 to fd=N."""
import json, os, signal, sys

import av
import numpy as np

def ru(v, to):
    return (v + to - 1) // to * to

def plane(p, rows, cols):
    return np.frombuffer(memoryview(p), np.uint8).reshape(p.height, p.line_size)[:rows, :cols]

def i420(frame, w, h):
    if frame.format.name != "yuv420p" or (frame.width, frame.height) != (w, h):
        frame = frame.reformat(width=w, height=h, format="yuv420p")  # nvvidconv scales
    ys, cs, h2 = ru(w, 4), ru(ru(w, 2) // 2, 4), ru(h, 2)
    buf = np.zeros(ys * h2 + 2 * cs * (h2 // 2), np.uint8)
    buf[: ys * h2].reshape(h2, ys)[:h, :w] = plane(frame.planes[0], h, w)
    cw, ch = ru(w, 2) // 2, h2 // 2
    for i, start in ((1, ys * h2), (2, ys * h2 + cs * ch)):
        buf[start : start + cs * ch].reshape(ch, cs)[:ch, :cw] = plane(frame.planes[i], ch, cw)
    return buf.tobytes()

args = sys.argv[1:]
log = os.environ.get("FAKE_GST_ARGV_LOG")
if log:
    with open(log, "a") as fh:
        fh.write(json.dumps(args) + "\n")
mode = os.environ.get("FAKE_GST_MODE", "ok")
limit = int(os.environ.get("FAKE_GST_FRAMES", "5"))
print("Opening in BLOCKING MODE", flush=True)  # NVIDIA's libraries chatter on stdout
if args[:2] != ["-v", "filesrc"] or "nvv4l2decoder" not in args:
    sys.exit("fake gst-launch: unexpected pipeline %r" % args)
if mode == "fail":
    sys.stderr.write(
        "ERROR: from element /GstPipeline:pipeline0/GstParseBin:parsebin0: "
        "Stream doesn't contain enough data.\n"
        "Additional debug info:\nparsebin: can't typefind\n"
    )
    sys.exit(1)
location = next(a[len("location="):] for a in args if a.startswith("location="))
fd = int(next(a[len("fd="):] for a in args if a.startswith("fd=")))
caps_arg = next(a for a in args if a.startswith("video/x-raw"))
caps = dict(f.split("=", 1) for f in caps_arg.split(",")[1:])
w, h = int(caps["width"]), int(caps["height"])
out = os.fdopen(fd, "wb")
if mode == "hang":
    signal.pause()  # until killed
print("Setting pipeline to PAUSED ...", flush=True)
name = next(a[len("name="):] for a in args if a.startswith("name="))
count, size = 0, None
with av.open(location) as container:
    for frame in container.decode(video=0):
        if (frame.width, frame.height) != size:  # what gst-launch -v prints on new caps
            size = (frame.width, frame.height)
            print(
                f"/GstPipeline:pipeline0/nvv4l2decoder:{name}.GstPad:src: caps = "
                f"video/x-raw(memory:NVMM), format=(string)NV12, width=(int){size[0]}, "
                f"height=(int){size[1]}, framerate=(fraction)25/1",
                flush=True,
            )
        data = i420(frame, w, h)
        if count == limit and mode == "truncate":
            out.write(data[: len(data) // 2])
            out.flush()
            sys.exit(0)
        if count == limit and mode == "die":
            out.flush()
            sys.stderr.write("ERROR: from element nvv4l2decoder0: Failed to process frame.\n")
            sys.exit(1)
        out.write(data)
        count += 1
out.flush()
print("Got EOS from element \"pipeline0\".\nFreeing pipeline ...", flush=True)
'''

FAKE_INSPECT = r'''#!{python}
"""Fake gst-inspect-1.0: knows nvv4l2decoder only when told to."""
import sys
if sys.argv[1:] == ["nvv4l2decoder"] and {ok}:
    print("Factory Details:\n  Long-name  NVIDIA v4l2 video decoder")
    sys.exit(0)
sys.stderr.write("No such element or plugin %r\n" % sys.argv[1:])
sys.exit(1)
'''


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture(autouse=True)
def _fresh_probe() -> Iterator[None]:
    gst.clear_probe_cache()
    yield
    gst.clear_probe_cache()


FakeGst = Callable[..., Path]


@pytest.fixture
def fake_gst(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeGst:
    """Put fake GStreamer executables first on PATH; returns the argv log file."""

    def install(*, launch: bool = True, inspect_ok: bool = True, mode: str = "ok") -> Path:
        bin_dir = tmp_path / f"bin-{launch}-{inspect_ok}"
        bin_dir.mkdir(exist_ok=True)
        if launch:
            _script(bin_dir / "gst-launch-1.0", FAKE_LAUNCH.replace("{python}", sys.executable))
            _script(
                bin_dir / "gst-inspect-1.0",
                FAKE_INSPECT.replace("{python}", sys.executable).replace("{ok}", str(inspect_ok)),
            )
        # Only the fake directory: a real GStreamer on this machine must not leak in.
        monkeypatch.setenv("PATH", str(bin_dir))
        monkeypatch.setenv("FAKE_GST_MODE", mode)
        log = tmp_path / "argv.jsonl"
        monkeypatch.setenv("FAKE_GST_ARGV_LOG", str(log))
        return log

    return install


def write_h264(path: Path, frames: list[np.ndarray], fps: int = 25) -> Path:
    """An H.264 MP4 (what cameras record and what `auto` sends to the hardware decoder)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for bgr in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(bgr, format="bgr24")))
        out.mux(stream.encode(None))
    return path


def pyav_lumas(path: Path) -> list[np.ndarray]:
    src = PyAVSource(str(path))
    frames = []
    while (f := src.read()) is not None:
        frames.append(f.copy())
    src.close()
    return frames


def read_all(src: GStreamerSource) -> list[np.ndarray]:
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    return frames


def test_frames_are_pyavs_luma_planes_byte_for_byte(tmp_path: Path, fake_gst: FakeGst) -> None:
    log = fake_gst()
    # 330 px: luma rows padded to 332 in the pipe; a space and a "!" in the name.
    video = write_video(tmp_path / "cam 1 !.mp4", moving_box_frames(30, h=240, w=330))
    src = open_source(str(video), "gstreamer")
    assert isinstance(src, GStreamerSource)
    ref = PyAVSource(str(video))
    assert src.info == dataclasses.replace(ref.info, backend="gstreamer")
    ref.close()
    frames = read_all(src)
    want = pyav_lumas(video)
    assert len(frames) == len(want) == 30
    for got, exp in zip(frames, want):
        assert got.shape == (240, 330) and got.dtype == np.uint8
        assert np.ascontiguousarray(got).tobytes() == exp.tobytes()
    assert not src.corrupt and src.returncode == 0
    src.close()
    (argv,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert [a for a in argv if a.startswith("location=")] == [f"location={video}"]
    assert "video/x-raw,format=I420,width=330,height=240" in argv


def test_each_frame_hands_out_pyavs_chroma_planes_too(tmp_path: Path, fake_gst: FakeGst) -> None:
    fake_gst()
    video = write_video(tmp_path / "cam.mp4", moving_box_frames(8, h=240, w=330, colour=True))
    src = open_source(str(video), "gstreamer")
    ref = PyAVSource(str(video))
    got, want = [], []
    while src.read() is not None:
        assert src.chroma is not None
        got.append(tuple(np.ascontiguousarray(p) for p in src.chroma))
        assert ref.read() is not None and ref.chroma is not None
        want.append(tuple(p.copy() for p in ref.chroma))
    src.close()
    ref.close()
    assert len(got) == len(want) == 8
    for (gu, gv), (wu, wv) in zip(got, want):
        assert gu.shape == gv.shape == (120, 165)
        assert gu.tobytes() == wu.tobytes() and gv.tobytes() == wv.tobytes()
    assert any(np.ptp(u) > 10 for u, _ in got)  # a coloured box: the planes are not flat


def test_i420_chroma_finds_the_planes_after_an_odd_heights_padding_row() -> None:
    w, h = 330, 239
    y_stride, size = i420_layout(w, h)
    u = np.arange(120 * 165, dtype=np.uint32).astype(np.uint8).reshape(120, 165)
    v = (255 - u).astype(np.uint8)
    buf = np.zeros(size, np.uint8)
    c_stride, start = 168, y_stride * 240
    buf[start : start + c_stride * 120].reshape(120, c_stride)[:, :165] = u
    buf[start + c_stride * 120 :].reshape(120, c_stride)[:, :165] = v
    planes = gst.i420_chroma(buf[y_stride * h :], w, h)
    assert planes is not None
    assert planes[0].tobytes() == u.tobytes() and planes[1].tobytes() == v.tobytes()
    assert gst.i420_chroma(buf[: y_stride * h + 10], w, h) is None  # short: no planes


def test_a_failing_pipeline_is_one_video_error_line(tmp_path: Path, fake_gst: FakeGst) -> None:
    fake_gst(mode="fail")
    video = write_video(tmp_path / "v.mp4", moving_box_frames(10))
    src = GStreamerSource(str(video))
    with pytest.raises(VideoError) as err:
        src.read()
    message = err.value.message
    assert "\n" not in message
    assert "Stream doesn't contain enough data" in message and str(video) in message
    assert src.returncode == 1
    src.close()
    # Through the decoder, as a task sees it.
    decoder = Decoder(AnalysisSettings(decoder="gstreamer"))
    with pytest.raises(VideoError, match="GStreamer pipeline failed"):
        decoder.open(str(video), video.stat().st_size)


@pytest.mark.parametrize("mode", ["truncate", "die"])
def test_a_short_stream_is_marked_corrupt(tmp_path: Path, fake_gst: FakeGst, mode: str) -> None:
    fake_gst(mode=mode)
    video = write_video(tmp_path / "v.mp4", moving_box_frames(20))
    src = GStreamerSource(str(video))
    frames = read_all(src)
    assert len(frames) == 5
    assert [f.tobytes() for f in frames] == [f.tobytes() for f in pyav_lumas(video)[:5]]
    assert src.corrupt
    assert src.returncode == (0 if mode == "truncate" else 1)
    assert src.read() is None
    src.close()
    # The decoder's own check turns 5 of 20 declared frames into a clear error.
    decoder = Decoder(AnalysisSettings(decoder="gstreamer"))
    decoder.open(str(video), video.stat().st_size)
    with pytest.raises(VideoError, match=r"truncated or corrupt: decoded 5 of 20"):
        while decoder.next_chunk().frames:
            pass


def _reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_close_reaps_the_pipeline_at_the_end_and_early(tmp_path: Path, fake_gst: FakeGst) -> None:
    fake_gst()
    video = write_video(tmp_path / "v.mp4", moving_box_frames(40))
    src = GStreamerSource(str(video))
    read_all(src)
    src.close()
    assert src.pid is not None and src.returncode == 0 and _reaped(src.pid)
    early = GStreamerSource(str(video))
    assert early.read() is not None
    # One I420 frame is larger than a pipe's buffer: the pipeline is blocked writing.
    assert early.returncode is None
    early.close()
    assert early.pid is not None and early.returncode is not None and _reaped(early.pid)
    assert early.read() is None
    early.close()  # twice is harmless


def test_a_stalled_pipeline_is_stopped_as_transient(tmp_path: Path, fake_gst: FakeGst) -> None:
    fake_gst(mode="hang")
    video = write_video(tmp_path / "v.mp4", moving_box_frames(10))
    src = GStreamerSource(str(video), stall_timeout_s=0.5)
    with pytest.raises(TransientError, match=r"gave no frame for 0\.5 s"):
        src.read()
    assert src.pid is not None and src.returncode is not None and _reaped(src.pid)
    src.close()


def test_auto_uses_the_hardware_decoder_only_when_it_is_there(
    tmp_path: Path, fake_gst: FakeGst
) -> None:
    video = write_h264(tmp_path / "v.mp4", moving_box_frames(10))
    fake_gst(launch=False)
    src = open_source(str(video), "auto")
    assert src.info.backend == "pyav"
    src.close()
    fake_gst(inspect_ok=False)  # gst-launch is there, nvv4l2decoder is not
    src = open_source(str(video), "auto")
    assert src.info.backend == "pyav"
    src.close()
    fake_gst()
    src = open_source(str(video), "auto")
    assert isinstance(src, GStreamerSource) and src.info.backend == "gstreamer"
    assert [f.tobytes() for f in read_all(src)] == [f.tobytes() for f in pyav_lumas(video)]
    src.close()
    # Not for codecs every Jetson may not decode, nor for names gst-launch cannot carry.
    mpeg4 = write_video(tmp_path / "v2.mp4", moving_box_frames(6))
    src = open_source(str(mpeg4), "auto")
    assert src.info.backend == "pyav"
    src.close()
    quoted = write_h264(tmp_path / 'say "cheese".mp4', moving_box_frames(6))
    src = open_source(str(quoted), "auto")
    assert src.info.backend == "pyav"
    src.close()
    with pytest.raises(VideoError, match="double quote"):
        open_source(str(quoted), "gstreamer")


def test_the_probe_is_cached(tmp_path: Path, fake_gst: FakeGst) -> None:
    fake_gst()
    assert gst.gstreamer_status().usable
    inspect = tmp_path / "bin-True-True" / "gst-inspect-1.0"
    inspect.unlink()
    inspect.symlink_to("/bin/false")  # same path: the cached answer stands
    assert gst.gstreamer_status().usable
    gst.clear_probe_cache()
    assert not gst.gstreamer_status().usable


def test_a_slow_inspection_is_not_cached(
    tmp_path: Path, fake_gst: FakeGst, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_gst()
    inspect = tmp_path / "bin-True-True" / "gst-inspect-1.0"
    good = inspect.read_text()
    _script(inspect, f"#!{sys.executable}\nimport signal\nsignal.pause()\n")
    monkeypatch.setattr(gst, "INSPECT_TIMEOUT_S", 0.3)
    status = gst.gstreamer_status()
    assert not status.usable and "took more than 0.3 s" in status.problem
    _script(inspect, good)  # the registry is built now
    assert gst.gstreamer_status().usable


def test_explicit_gstreamer_without_it_is_one_config_error_at_start(
    fake_gst: FakeGst,
) -> None:
    fake_gst(launch=False)
    with pytest.raises(ConfigError) as err:
        Decoder(AnalysisSettings(decoder="gstreamer"))
    assert "\n" not in err.value.message
    assert "gst-launch-1.0 is not on PATH" in err.value.message
    assert "nvidia-l4t-gstreamer" in err.value.message
    fake_gst(inspect_ok=False)
    with pytest.raises(ConfigError, match="no nvv4l2decoder element"):
        Decoder(AnalysisSettings(decoder="gstreamer"))
    fake_gst()
    Decoder(AnalysisSettings(decoder="gstreamer")).close()


def test_location_rules_and_i420_layout() -> None:
    assert location_problem("/nas/cam 1/it's (1)!.mp4") == ""
    assert location_problem("/nas/Straße/ä.mp4") == ""
    assert location_problem('/nas/a"b.mp4') == "a double quote"
    assert location_problem("/nas/a\\b.mp4") == "a backslash"
    assert location_problem("/nas/a\tb.mp4") == "a control character"
    assert location_problem("/nas/a\nb.mp4") == "a control character"
    assert location_problem("/nas/\udcff.mp4") == "bytes that are not UTF-8"
    assert i420_layout(1920, 1080) == (1920, 1920 * 1080 * 3 // 2)
    assert i420_layout(330, 240) == (332, 332 * 240 + 2 * 168 * 120)
    assert i420_layout(5, 3) == (8, 8 * 4 + 2 * 4 * 2)


def test_preprocess_with_the_hardware_decoder_matches_pyav(
    tmp_path: Path, fake_gst: FakeGst
) -> None:
    from sim.scenes import preset, render

    log = fake_gst()
    video = tmp_path / "street.mp4"
    render(preset("street", seconds=6.0), video)
    out = tmp_path / "out"  # the same directory (it is named in heavy_task.json)
    runs: dict[str, dict[str, bytes]] = {}
    for decoder in ("pyav", "gstreamer"):
        args = ["preprocess", str(video), "--out", str(out), "--task-id", "t1"]
        result = run([*args, "--set", f"analysis.decoder={decoder}"], tmp_path)
        assert result.returncode == 0, result.stderr
        runs[decoder] = {
            str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()
        }
    assert len(log.read_text().splitlines()) == 1  # the (fake) hardware pipeline ran once
    pyav, hw = runs["pyav"], runs["gstreamer"]
    assert sorted(pyav) == sorted(hw)
    assert any(name.startswith("thumbs/") for name in pyav), "no region was proposed"
    for name in pyav:
        if name != "manifest.json":
            assert pyav[name] == hw[name], name
    # The manifest differs only in the decoder: the setting that chose it, and the one that ran.
    ma, mb = (json.loads(files["manifest.json"]) for files in (pyav, hw))
    assert ma["parameters"]["analysis"].pop("decoder") == ma["video"].pop("decoder") == "pyav"
    assert mb["parameters"]["analysis"].pop("decoder") == mb["video"].pop("decoder") == "gstreamer"
    assert ma == mb


def test_preprocess_explicit_gstreamer_without_it(tmp_path: Path, fake_gst: FakeGst) -> None:
    fake_gst(launch=False)
    video = write_video(tmp_path / "v.mp4", moving_box_frames(10))
    result = run(
        [
            "preprocess",
            str(video),
            "--out",
            str(tmp_path / "o"),
            "--set",
            "analysis.decoder=gstreamer",
        ],
        tmp_path,
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("platesift: error: analysis.decoder = gstreamer needs")


def test_times_rotation_and_a_size_change_match_the_software_decoder(
    tmp_path: Path, fake_gst: FakeGst
) -> None:
    """The pipe carries bare pixels: times come from the container's packets (B-frames
    reordered), the rotation from the probe, a resolution change from the decoder's caps."""
    fake_gst()
    times = [0.0, 0.04, 0.08, 1.0, 1.04, 3.0, 3.5, 3.54, 3.58, 7.28]
    video = write_timed_video(tmp_path / "vfr.mp4", moving_box_frames(10), times, rotation_ccw=90)
    d = Decoder(AnalysisSettings(decoder="gstreamer", width=160))
    info = d.open(str(video), video.stat().st_size)
    assert info.rotation == 270
    got = []
    while not (chunk := d.next_chunk()).end:
        got.extend(round(f.t, 4) for f in chunk.frames)
    assert got == times
    d.close()

    from tests.actors.test_decoder import two_sizes_ts

    joined = two_sizes_ts(tmp_path)
    d = Decoder(AnalysisSettings(decoder="gstreamer", width=160))
    d.open(str(joined), joined.stat().st_size)
    with pytest.raises(VideoError, match=r"changes mid-stream at frame \d+ \(160x120 -> 320x240\)"):
        while not d.next_chunk().end:
            pass
    d.close()


def test_decoder_caps_lines_are_read_whatever_the_field_order() -> None:
    head = "/GstPipeline:pipeline0/GstNvV4l2Decoder:platesift_decoder.GstPad:src: caps = "
    nvmm = "video/x-raw(memory:NVMM), width=(int)1920, height=(int)1080"
    assert gst.decoder_size(head + nvmm) == (1920, 1080)
    assert gst.decoder_size(
        head + "video/x-raw, height=(int)720, format=(string)NV12, width=(int)1280"
    ) == (1280, 720)
    other = "/GstPipeline:pipeline0/GstCapsFilter:capsfilter0.GstPad:src: caps = video/x-raw, "
    other += "width=(int)1, height=(int)1"
    assert gst.decoder_size(other) is None
