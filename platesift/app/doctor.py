"""`platesift doctor`: checks the machine and the configuration, one line each with a fix.

Exit code 1 when something REQUIRED for the configured setup is missing; optional things
(a Coral when the proposer does not need one, GStreamer) only warn.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models.coral_usb import coral_devices
from platesift.config import Settings


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok", "warn", "fail"
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}[self.status]
        fix = f"  -> {self.fix}" if self.fix and self.status != "ok" else ""
        return f"[{mark}] {self.name}: {self.detail}{fix}"


def check_coral(required: bool) -> Check:
    devices = coral_devices()
    fail = "fail" if required else "warn"
    if not devices:
        return Check(
            "Coral Edge TPU",
            fail,
            "no Coral USB accelerator on the bus (ids 1a6e:089a / 18d1:9302)",
            "plug it into a USB 3 port; check `lsusb`; install the udev rule in deploy/",
        )
    name, speed = devices[0]
    if speed.isdigit() and int(speed) < 5000:
        return Check(
            "Coral Edge TPU",
            "warn",
            f"{name} on USB 2 ({speed} Mbit/s): ~3x slower",
            "use a USB 3 port (blue) and a short USB 3 cable",
        )
    return Check("Coral Edge TPU", "ok", f"{name}, {speed} Mbit/s")


def check_libedgetpu(required: bool) -> Check:
    try:
        ctypes.CDLL("libedgetpu.so.1")
    except OSError as exc:
        return Check(
            "libedgetpu",
            "fail" if required else "warn",
            f"not loadable ({exc})",
            "install libedgetpu1-std (or -max) from Coral's apt repository",
        )
    return Check("libedgetpu", "ok", "libedgetpu.so.1 loads")


def check_tflite(required: bool) -> Check:
    from models.tflite_runtime import INSTALL_HINT, RUNTIME_MODULES, find_runtime

    runtime = find_runtime()  # imported for real: a wheel built for another numpy fails here
    if runtime is not None:
        return Check("TFLite runtime", "ok", f"{runtime.module} imports and works")
    packages = [m.split(".")[0] for m in RUNTIME_MODULES]
    broken = [m for m in packages if importlib.util.find_spec(m)]
    detail = (
        f"{broken[0]} is installed but does not import (built for numpy < 2?)"
        if broken
        else "neither tflite_runtime nor ai_edge_litert is importable"
    )
    return Check("TFLite runtime", "fail" if required else "warn", detail, INSTALL_HINT)


def check_model(settings: Settings) -> Check:
    """The proposer's model manifest, its files, and (CPU model) its tensors; and what
    `proposer.backend = auto` resolves to on this machine."""
    from models.registry import resolve_backend
    from platesift.errors import PlatesiftError

    p = settings.proposer
    if p.backend in ("opencv", "none"):
        return Check("model", "ok", f"proposer {p.backend} needs no model")
    try:
        from models.edgetpu_ops import edgetpu_problems
        from models.manifest import load_manifest
        from models.registry import model_manifest_path
        from models.tflite_detector import open_cpu
        from models.tflite_runtime import find_runtime

        manifest = load_manifest(model_manifest_path(p))
        runtime = find_runtime()
        tested = ""
        if manifest.cpu_file is not None and runtime is not None:
            open_cpu(manifest, runtime).close()  # tensors checked against the manifest
            tested = ", CPU model loaded and matches"
            if edgetpu_problems(manifest.cpu_file):
                tested += " (not fully Edge-TPU-compatible)"
        files = ", ".join(
            f.name for f in (manifest.cpu_file, manifest.edgetpu_file) if f is not None
        )
        runs = resolve_backend(p)
    except PlatesiftError as exc:
        return Check("model", "fail", exc.message, "fix the manifest or the model files")
    which = "" if p.model else " (shipped)"
    return Check(
        "model",
        "ok",
        f"{manifest.name}{which}: {files}{tested}; proposer {p.backend} runs {runs}",
    )


def check_opencv() -> Check:
    import cv2

    info = cv2.getBuildInformation()
    gst = any("GStreamer" in line and "YES" in line for line in info.splitlines())
    ffmpeg = any("FFMPEG" in line and "YES" in line for line in info.splitlines())
    detail = (
        f"OpenCV {cv2.__version__}, FFmpeg {'yes' if ffmpeg else 'NO'}, "
        f"GStreamer {'yes' if gst else 'no'}"
    )
    if not ffmpeg:
        return Check("OpenCV", "fail", detail, "install opencv-python-headless from PyPI")
    return Check("OpenCV", "ok", detail)


def check_decoder() -> Check:
    if importlib.util.find_spec("av") is None:
        return Check(
            "PyAV decoder",
            "warn",
            "PyAV missing: decoding falls back to OpenCV (slower)",
            "pip install av",
        )
    return Check("PyAV decoder", "ok", "PyAV is importable (zero-copy luma)")


JETSON_RELEASE = Path("/etc/nv_tegra_release")
DEVICE_MODEL = Path("/proc/device-tree/model")


def is_jetson() -> bool:
    """An NVIDIA Jetson (L4T release file, or the device tree's model name)."""
    if JETSON_RELEASE.exists():
        return True
    try:
        return "jetson" in DEVICE_MODEL.read_text(errors="replace").lower()
    except OSError:
        return False


def check_hw_decoder(required: bool) -> Check:
    """gst-launch-1.0 with NVIDIA's nvv4l2decoder: what `analysis.decoder = auto` picks first."""
    from actors.gstreamer_source import gstreamer_status

    name = "Jetson hardware decoder"
    status = gstreamer_status()
    if status.usable:
        return Check(name, "ok", "gst-launch-1.0 with nvv4l2decoder (used by decoder auto)")
    if not required and not is_jetson():
        return Check(
            name,
            "warn",
            f"{status.problem}; not a Jetson: software decoding (PyAV) is used",
            "nothing to do off a Jetson",
        )
    return Check(
        name,
        "fail" if required else "warn",
        f"{status.problem}: decoding falls back to software (slower, more CPU)",
        "install JetPack's GStreamer plugins: "
        "sudo apt install gstreamer1.0-tools nvidia-l4t-gstreamer",
    )


def check_nas(settings: Settings) -> Check:
    root = settings.paths.nas_root
    if not root:
        return Check(
            "NAS",
            "warn",
            "paths.nas_root is not set (needed by `serve` only)",
            "set paths.nas_root to the NAS mount point",
        )
    path = Path(root)
    if not path.is_dir():
        return Check("NAS", "fail", f"{root} is not a directory", "mount the NAS there")
    mounted = os.path.ismount(path)
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".platesift-doctor-"):
            pass
    except OSError as exc:
        return Check(
            "NAS",
            "fail",
            f"{root} is not writable ({exc.strerror})",
            "give the service user write access to the NAS share",
        )
    if not mounted:
        return Check(
            "NAS",
            "warn",
            f"{root} is writable but not a mount point",
            "check the NAS is mounted (else tasks would see an empty folder)",
        )
    return Check("NAS", "ok", f"{root} is a mounted, writable directory")


def check_scratch(settings: Settings) -> Check:
    from platesift.errors import ConfigError
    from platesift.scratch import MARKER, check_scratch_location

    path = settings.scratch_path()
    nas = Path(settings.paths.nas_root) if settings.paths.nas_root else None
    try:
        real = check_scratch_location(path, nas)
    except ConfigError as exc:
        return Check("scratch", "fail", exc.message, "point paths.scratch at a local directory")
    if real.exists() and not (real / MARKER).is_file():
        return Check(
            "scratch",
            "fail",
            f"{real} exists but was not created by platesift",
            "point paths.scratch at a new directory",
        )
    return Check("scratch", "ok", f"{real} is safe to wipe")


def check_server(settings: Settings) -> Check:
    from platesift.app.client import TaskClient
    from platesift.errors import AuthError, PlatesiftError

    if not settings.server.token:
        return Check(
            "server",
            "warn",
            f"{settings.server.url}: no token configured",
            "set PLATESIFT_SERVER__TOKEN (or server.token in the config file)",
        )
    client = TaskClient(settings.server, "doctor")
    try:
        client.check()
    except AuthError as exc:
        return Check("server", "fail", exc.message, "check the token")
    except PlatesiftError as exc:
        return Check("server", "warn", exc.message, "is the main server up and reachable?")
    finally:
        client.close()
    return Check("server", "ok", f"{settings.server.url} answers and accepts the token")


def run_checks(settings: Settings, *, server: bool = True) -> list[Check]:
    needs_tpu = settings.proposer.backend == "edgetpu"
    checks: list[Callable[[], Check]] = [
        lambda: check_coral(needs_tpu),
        lambda: check_libedgetpu(needs_tpu),
        lambda: check_tflite(settings.proposer.backend in ("edgetpu", "tflite", "fake-edgetpu")),
        lambda: check_model(settings),
        check_opencv,
        check_decoder,
        lambda: check_hw_decoder(settings.analysis.decoder == "gstreamer"),
        lambda: check_nas(settings),
        lambda: check_scratch(settings),
    ]
    if server:
        checks.append(lambda: check_server(settings))
    return [c() for c in checks]


__all__ = [
    "Check",
    "check_coral",
    "check_hw_decoder",
    "check_model",
    "check_server",
    "coral_devices",
    "run_checks",
]
