"""`platesift doctor`: checks the machine and the configuration, one line each with a fix.

Exit code 1 when something REQUIRED for the configured setup is missing; optional things
(a Coral when the proposer does not need one, GStreamer) only warn.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models.coral_usb import coral_device_dirs, coral_devices
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
    sentinel = settings.paths.nas_sentinel
    if sentinel and not (path / sentinel).is_file():
        return Check(
            "NAS",
            "fail",
            f"{root} has no {sentinel} (paths.nas_sentinel): the NAS is not mounted there",
            f"mount the NAS, or create {sentinel} at the top of the share once",
        )
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


def check_journal(settings: Settings) -> Check:
    """The journal's folder exists or can be created, and is writable, by this user."""
    path = settings.journal_path()
    probe = path.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        return Check(
            "journal",
            "fail",
            f"{path} cannot be written ({probe} is not writable by this user)",
            "set paths.journal, or give the service user its StateDirectory (deploy/)",
        )
    return Check("journal", "ok", f"{path} is writable")


def check_usb_access() -> Check | None:
    """The Coral's device node is readable and writable by this user (the udev rule's job);
    None without a Coral."""
    devices = coral_device_dirs()
    if not devices:
        return None
    sysfs = devices[0][0]
    try:
        bus = int((sysfs / "busnum").read_text())
        dev = int((sysfs / "devnum").read_text())
    except (OSError, ValueError):
        return Check("Coral USB access", "warn", f"cannot find the device node of {sysfs.name}")
    node = Path(f"/dev/bus/usb/{bus:03d}/{dev:03d}")
    if not os.access(node, os.R_OK | os.W_OK):
        return Check(
            "Coral USB access",
            "fail",
            f"{node} is not readable and writable by this user",
            "install deploy/99-platesift-coral.rules and add the user to plugdev; replug",
        )
    return Check("Coral USB access", "ok", f"{node} is readable and writable")


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


EDGETPU_FIX = (
    "install the libedgetpu built for your TFLite runtime (docs/jetson.md), check the Coral's "
    "cable and power, then run doctor again"
)


def check_edgetpu_inference(settings: Settings) -> Check | None:
    """One real inference on the Edge TPU, in the proposer's own child process, so a segfault,
    abort or hang there is a FAIL line here and never takes doctor down. None when the
    proposer does not use the Edge TPU (`fake-edgetpu`, the tests' stand-in, counts)."""
    import time

    import numpy as np

    from models.manifest import load_manifest
    from models.registry import make_proposer, model_manifest_path, resolve_backend
    from models.tflite_runtime import installed_versions
    from platesift.errors import PlatesiftError

    name = "Edge TPU inference"
    try:
        backend = resolve_backend(settings.proposer)
        if backend not in ("edgetpu", "fake-edgetpu"):
            return None
        manifest = load_manifest(model_manifest_path(settings.proposer))
        width, height = manifest.input_width, manifest.input_height
        proposer = make_proposer(settings.proposer, f"platesift-doctor-{os.getpid()}")
    except PlatesiftError as exc:
        return Check(name, "fail", exc.message, EDGETPU_FIX)
    versions = installed_versions()
    pairing = known_bad_pairing(versions.get("runtime", ""), versions.get("libedgetpu", ""))
    if pairing:
        proposer.close()
        return Check(name, "fail", pairing, EDGETPU_FIX)
    try:
        proposer.ensure_ready()
        luma = np.zeros((height, width), np.uint8)
        started = time.monotonic()
        proposer.propose(luma, [(0, 0, width, height)])
        took_ms = (time.monotonic() - started) * 1000
    except PlatesiftError as exc:
        return Check(name, "fail", exc.message, EDGETPU_FIX)
    finally:
        proposer.close()
    about = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
    return Check(
        name, "ok", f"{backend}: one inference in {took_ms:.1f} ms ({about or 'versions unknown'})"
    )


def known_bad_pairing(runtime: str, libedgetpu: str) -> str:
    """Why this runtime and libedgetpu crash together, or "" (as far as is known).

    Coral's own libedgetpu 16.0 was built against TensorFlow 2.5: with a TFLite runtime newer
    than 2.11 the first inference segfaults (google-coral/edgetpu issue 812). Community builds
    named for their TensorFlow version (`16.0tf2.19.1`) must match the runtime's version."""
    lib = re.search(r"(\d+\.\d+)(?:tf(\d+\.\d+))?", libedgetpu)
    if not runtime or lib is None:
        return ""
    name, _, version = runtime.partition(" ")
    release = tuple(int(v) for v in re.findall(r"\d+", version)[:2])
    newer_than_211 = name == "ai-edge-litert" or release > (2, 11)
    built_for = lib.group(2)
    if built_for is None and newer_than_211:
        return (
            f"{libedgetpu} (built for TensorFlow 2.5) segfaults with {runtime}: use "
            "tflite-runtime <= 2.11, or the libedgetpu built for this runtime"
        )
    if built_for and name == "tflite-runtime" and release != tuple(map(int, built_for.split("."))):
        return f"{libedgetpu} is built for TFLite {built_for}, the runtime is {runtime}"
    return ""


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
        lambda: check_journal(settings),
    ]
    if server:
        checks.append(lambda: check_server(settings))
    done = [c() for c in checks]
    usb = check_usb_access()
    if usb is not None:
        done.append(usb)
    inference = check_edgetpu_inference(settings)  # last: it starts the device's process
    return done if inference is None else [*done, inference]


__all__ = [
    "Check",
    "check_coral",
    "check_edgetpu_inference",
    "check_hw_decoder",
    "check_journal",
    "check_model",
    "check_nas",
    "check_server",
    "check_usb_access",
    "coral_devices",
    "known_bad_pairing",
    "run_checks",
]
