"""Settings: one TOML file, then `PLATESIFT_SECTION__KEY` environment variables, then
`--set section.key=value` overrides, validated at start with one clear message per mistake.

Every tunable lives here with its default, its bounds and a one-line description; the README's
settings table is generated from `describe()`.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from platesift.errors import ConfigError
from platesift.masks import parse_masks

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on the Jetson's Python 3.10
    import tomli as tomllib

ENV_PREFIX = "PLATESIFT_"
ANALYSIS_SECTIONS = (
    "analysis",
    "motion",
    "quality",
    "proposer",
    "tracking",
    "camera",
    "output",
)
"""Sections whose settings can change artifacts (and so may be set per task)."""
SECRET_KEYS = frozenset({"server.token"})


def _opt(
    default: Any,
    doc: str,
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple[str, ...] = (),
    file_name: bool = False,
) -> Any:
    meta = {"doc": doc, "lo": lo, "hi": hi, "choices": choices, "file_name": file_name}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class AnalysisSettings:
    width: int = _opt(480, "analysis frame width in pixels (luma, aspect kept)", 64, 3840)
    motion_width: int = _opt(
        240, "motion-detection frame width in pixels (at most analysis.width)", 32, 1920
    )
    decoder: str = _opt(
        "auto",
        "decoder: gstreamer (Jetson hardware, nvv4l2decoder), pyav (zero-copy), opencv, or "
        "auto (gstreamer if available, else pyav if installed)",
        choices=("auto", "gstreamer", "pyav", "opencv"),
    )
    fast_decode: str = _opt(
        "off",
        "opt-in decoding shortcut (pyav; H.264/HEVC): skip-deblock skips the in-loop deblocking "
        "filter except on keyframes (about 17% less decoding CPU, slightly blockier frames); "
        "off = exact decoding",
        choices=("off", "skip-deblock"),
    )


@dataclass(frozen=True)
class ResourceSettings:
    """How much of this machine a task uses: memory budgets and threads. None of these ever
    changes an artifact's bytes, and they are the service's to set, never a task's (a task
    that could raise them could make the service run out of memory)."""

    chunk_mb: int = _opt(
        18, "memory budget of one chunk of decoded frames (whole 4:2:0 frames), MiB", 4, 1024
    )
    prefetch_chunks: int = _opt(2, "chunks decoded ahead while the current one is analysed", 1, 8)
    propose_backlog_mb: int = _opt(
        48, "region crops of kept frames waiting for the proposer, MiB", 1, 1024
    )
    opencv_threads: int = _opt(
        1, "OpenCV worker threads (1: leave the cores to the decoder's own threads)", 0, 64
    )
    filter_nice: int = _opt(
        0,
        "how much lower than decoding the filtering threads run (Linux nice steps, 0-19; 0 = "
        "same priority)",
        0,
        19,
    )
    decode_threads: int = _opt(
        8,
        "FFmpeg decoding threads (pyav), at most; 0 = FFmpeg's choice (one per core, plus "
        "one). More than cores keep the cores busy while the filter holds one",
        0,
        64,
    )
    decode_mb: int = _opt(
        64,
        "memory FFmpeg's decoding threads may hold, MiB: each holds about two frames, so the "
        "thread count is cut to fit (all 8 at 1080p, 2 at 4K)",
        8,
        4096,
    )


@dataclass(frozen=True)
class MotionSettings:
    threshold: float = _opt(18.0, "minimum luma difference from the background", 1, 255)
    noise_factor: float = _opt(4.0, "threshold is at least this many times the noise level", 0, 50)
    min_area: float = _opt(0.0015, "smallest moving blob, as a fraction of the frame", 0, 1)
    background_rate: float = _opt(0.05, "background learning rate where nothing moves", 1e-4, 1)
    foreground_rate: float = _opt(0.002, "background learning rate under moving objects", 0, 1)
    shake_px: int = _opt(1, "camera-shake tolerance radius, motion-frame pixels", 0, 8)
    bootstrap_frames: int = _opt(
        12,
        "frames whose median seeds the background (held in memory together: 2 MB each at 1080p)",
        1,
        50,
    )


@dataclass(frozen=True)
class QualitySettings:
    dark_level: float = _opt(
        48.0, "the moving region's bright part (p99 luma) must reach this", 0, 255
    )
    flat_contrast: float = _opt(
        12.0, "the moving region's contrast (p95-p5) must reach this", 0, 255
    )
    max_edge_width: float = _opt(
        4.0, "sharpest edge wider than this (analysis px) = blurry", 0.5, 100
    )


@dataclass(frozen=True)
class ProposerSettings:
    backend: str = _opt(
        "auto",
        "region proposer: auto (Edge TPU, else CPU model, else opencv), edgetpu, tflite, "
        "opencv, none, or fake-edgetpu (a simulated Coral for tests and the fault harness)",
        choices=("auto", "edgetpu", "tflite", "opencv", "none", "fake-edgetpu"),
    )
    model: str = _opt(
        "",
        "model manifest (TOML) for edgetpu/tflite; empty = the shipped plate model "
        "(models/plates/MODEL_CARD.md); see models/manifest.py",
    )
    device: str = _opt("", 'Edge TPU device, e.g. "usb:0"; empty = the first one found')
    max_regions: int = _opt(4, "most regions kept per frame", 0, 64)
    frame_stride: int = _opt(
        0,
        "propose on at most every n-th kept frame of a moving object and carry the boxes along "
        "with the motion in between; 0 = auto (3 on the CPU model, else 1)",
        0,
        25,
    )
    min_plate_px: float = _opt(
        20.0,
        "narrowest plate (source pixels) a model must find: big crops are looked at in tiles "
        "so such a plate is not shrunk below what the model sees (smaller = more inferences)",
        4,
        4096,
    )
    min_score: float = _opt(
        0.35, "lowest proposal score kept (opencv; models use their manifest's)", 0, 1
    )
    deadline_s: float = _opt(
        1.0, "longest one inference may take before it counts as hung", 0.05, 60
    )
    start_timeout_s: float = _opt(30.0, "longest the inference process may take to start", 1, 600)
    restart_backoff_max_s: float = _opt(
        30.0, "longest wait before restarting a failed inference process", 0.1, 3600
    )
    fake_control: str = _opt("", "fake-edgetpu only: directory of its fault switch files")


@dataclass(frozen=True)
class CameraSettings:
    focal_length_px: float = _opt(
        0.0, "focal length in source pixels; 0 = unknown (no distance)", 0, 1e6
    )
    plate_width_m: float = _opt(0.52, "physical plate width in metres", 0.05, 2)
    masks: str = _opt(
        "",
        "areas to ignore (no motion, no plates there), polygons in source pixels: corners "
        "x,y separated by spaces, polygons by ';', e.g. \"0,0 640,0 640,40 0,40\"",
    )


@dataclass(frozen=True)
class TrackingSettings:
    max_gap_s: float = _opt(
        1.5,
        "a plate track survives this long without a region (missed or rejected frames), "
        "then it is closed",
        0,
        60,
    )
    min_frames: int = _opt(
        6,
        "a track seen in fewer kept frames is most likely a false alarm: tracks.jsonl lists its "
        "best crop, with no thumbnail",
        1,
        1000,
    )
    max_track_s: float = _opt(
        60.0,
        "a track is closed once this long and the plate starts a new one (bounds the memory a "
        "parked car's plate can hold)",
        1,
        3600,
    )


@dataclass(frozen=True)
class OutputSettings:
    thumbnails: str = _opt(
        "best",
        "JPEG crops written: best (each track's output.best_crops best), all (every region "
        "of every kept frame) or none",
        choices=("best", "all", "none"),
    )
    best_crops: int = _opt(3, "best crops of a plate track kept as its thumbnails", 1, 50)
    colour: bool = _opt(
        True,
        "thumbnails in colour where the decoder hands out the chroma planes (pyav, gstreamer; "
        "opencv gives luma only); false = greyscale",
    )
    thumb_margin: float = _opt(
        0.2, "margin around a region in its thumbnail, fraction of size", 0, 2
    )
    thumb_max_width: int = _opt(256, "thumbnails wider than this are scaled down", 16, 4096)
    jpeg_quality: int = _opt(90, "JPEG quality of thumbnails", 10, 100)


@dataclass(frozen=True)
class PathSettings:
    journal: str = _opt("", "journal SQLite file; empty = per-user state directory")
    scratch: str = _opt("", "local scratch directory; empty = per-user cache directory")
    nas_root: str = _opt("", "NAS mount point: every path in a task is confined to it")
    artifact_root: str = _opt("artifacts", "artifact directories, relative to the NAS root")
    nas_sentinel: str = _opt(
        "",
        "a file that exists on the mounted NAS (empty = no check)",
        file_name=True,
    )


@dataclass(frozen=True)
class JournalSettings:
    cycle_every_s: float = _opt(
        5.0,
        "chunk cycles (EXTRACTING -> FILTERING -> PROPOSING, every few frames) journaled: "
        "a task's first, then one per this many seconds; 0 = every cycle (about 600 rows per "
        "minute of 1080p video)",
        0,
        3600,
    )
    keep_days: float = _opt(
        30.0, "entries older than this are deleted (at start and after each task); 0 = keep all", 0
    )


@dataclass(frozen=True)
class ServerSettings:
    url: str = _opt("http://127.0.0.1:8750", "main server base URL")
    token: str = _opt("", "bearer token (better: PLATESIFT_SERVER__TOKEN); never logged")
    tls_verify: bool = _opt(True, "verify the server's TLS certificate")
    ca_bundle: str = _opt("", "CA bundle file for the server's certificate (empty = system)")
    worker_id: str = _opt("", "worker name sent with pulls (empty = host name)")
    task_type: str = _opt("PREPROCESS_VIDEO", "task type pulled")
    heavy_task_type: str = _opt("HEAVY_PROCESS", "task type published downstream")
    wait_s: float = _opt(20.0, "long-poll wait of one pull, seconds", 0, 20)
    timeout_s: float = _opt(10.0, "timeout of every HTTP call (on top of the long-poll)", 0.1, 300)
    backoff_max_s: float = _opt(
        60.0, "longest pause between retries when the server is down", 0.1, 3600
    )


@dataclass(frozen=True)
class Settings:
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    resources: ResourceSettings = field(default_factory=ResourceSettings)
    motion: MotionSettings = field(default_factory=MotionSettings)
    quality: QualitySettings = field(default_factory=QualitySettings)
    proposer: ProposerSettings = field(default_factory=ProposerSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    camera: CameraSettings = field(default_factory=CameraSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    paths: PathSettings = field(default_factory=PathSettings)
    journal: JournalSettings = field(default_factory=JournalSettings)
    server: ServerSettings = field(default_factory=ServerSettings)

    def effective_parameters(self) -> dict[str, dict[str, Any]]:
        """Every setting that can change an artifact's bytes, by section."""
        return {name: dataclasses.asdict(getattr(self, name)) for name in ANALYSIS_SECTIONS}

    def journal_path(self) -> Path:
        if self.paths.journal:
            return Path(self.paths.journal).expanduser()
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(base) / "platesift" / "journal.db"

    def scratch_path(self) -> Path:
        if self.paths.scratch:
            return Path(self.paths.scratch).expanduser()
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "platesift" / "scratch"


def _sections() -> dict[str, type]:
    return {f.name: f.default_factory for f in dataclasses.fields(Settings)}  # type: ignore[misc]


def _known_keys() -> list[str]:
    return [f"{s}.{f.name}" for s, cls in _sections().items() for f in dataclasses.fields(cls)]


MOVED_KEYS = {
    f"analysis.{f.name}": f"resources.{f.name}" for f in dataclasses.fields(ResourceSettings)
}
"""Settings that moved, old key -> new key: an old config gets one line saying where to."""


def _unknown(key: str) -> ConfigError:
    if key in MOVED_KEYS:
        return ConfigError(f"setting {key} is now {MOVED_KEYS[key]}")
    close = difflib.get_close_matches(key, _known_keys(), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return ConfigError(f"unknown setting {key}{hint}")


def _coerce(key: str, fld: dataclasses.Field[Any], value: Any, from_text: bool) -> Any:
    want = type(fld.default)
    if key in SECRET_KEYS and not isinstance(value, str):
        raise ConfigError(f"setting {key} must be text")
    if key == "output.thumbnails" and isinstance(value, bool):
        raise ConfigError(
            f"setting {key} is now best, all or none (true was all, false none), got {value!r}"
        )
    if from_text and isinstance(value, str):
        value = _parse_text(key, want, value)
    if want is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"setting {key} must be true or false, got {value!r}")
        return value
    if want is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"setting {key} must be a whole number, got {value!r}")
    elif want is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"setting {key} must be a number, got {value!r}")
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"setting {key} must be a finite number, got {value!r}")
    elif want is str and not isinstance(value, str):
        raise ConfigError(f"setting {key} must be text, got {value!r}")
    if key == "camera.masks":
        try:
            parse_masks(value)
        except ValueError as exc:
            raise ConfigError(f"setting {key}: {exc}") from None
    meta = fld.metadata
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(
            f"setting {key} must be one of {', '.join(meta['choices'])}, got {value!r}"
        )
    if meta.get("file_name") and value and ("/" in value or "\0" in value or value in (".", "..")):
        raise ConfigError(f"setting {key} must be a plain file name, got {value!r}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and value < lo:
        raise ConfigError(f"setting {key} must be at least {lo:g}, got {value!r}")
    if hi is not None and value > hi:
        raise ConfigError(f"setting {key} must be at most {hi:g}, got {value!r}")
    return value


def _parse_text(key: str, want: type, text: str) -> Any:
    text = text.strip()
    try:
        if want is bool:
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if want is int:
            return int(text)
        if want is float:
            return float(text)
    except ValueError:
        kind = {bool: "true or false", int: "a whole number", float: "a number"}[want]
        raise ConfigError(f"setting {key} must be {kind}, got {text!r}") from None
    return text


class _Builder:
    def __init__(self) -> None:
        self.values: dict[str, dict[str, Any]] = {name: {} for name in _sections()}

    def set(self, key: str, value: Any, from_text: bool) -> None:
        section, _, name = key.partition(".")
        cls = _sections().get(section)
        if cls is None or not name:
            raise _unknown(key)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if name not in fields:
            raise _unknown(key)
        self.values[section][name] = _coerce(key, fields[name], value, from_text)

    def build(self) -> Settings:
        parts = {s: cls(**self.values[s]) for s, cls in _sections().items()}
        return Settings(**parts)


def load_settings(
    config_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Iterable[str] = (),
) -> Settings:
    """Build validated settings from a TOML file, the environment and `key=value` overrides."""
    builder = _Builder()
    if config_file is not None:
        for key, value in _read_toml(Path(config_file)).items():
            builder.set(key, value, from_text=False)
    environ = os.environ if env is None else env
    for var in sorted(environ):
        if var.startswith(ENV_PREFIX) and "__" in var:
            section, _, name = var[len(ENV_PREFIX) :].lower().partition("__")
            if section in _sections():
                builder.set(f"{section}.{name}", environ[var], from_text=True)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item.split('=')[0]!r} must look like section.key=value")
        if key.strip() in SECRET_KEYS:
            raise ConfigError(
                f"{key.strip()} cannot be given on the command line (it would show in the "
                f"process list); use the config file or {ENV_PREFIX}SERVER__TOKEN"
            )
        builder.set(key.strip(), text, from_text=True)
    return builder.build()


PER_TASK_SECTIONS = tuple(s for s in ANALYSIS_SECTIONS if s != "proposer")
"""Sections a task may override: the proposer backend is the service's, not the task's."""


def with_task_params(base: Settings, params: Mapping[str, Any]) -> Settings:
    """`base` with a task's `{"section.key": value}` overrides (JSON values), validated."""
    builder = _Builder()
    for section in _sections():
        builder.values[section] = dataclasses.asdict(getattr(base, section))
    for key, value in sorted(params.items()):
        section = str(key).partition(".")[0]
        if section not in PER_TASK_SECTIONS:
            if section in _sections():
                raise ConfigError(f"setting {key} cannot be set per task")
            raise _unknown(str(key))
        builder.set(str(key), value, from_text=False)
    return builder.build()


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory") from None
    except PermissionError:
        raise ConfigError(f"config file {path} is not readable") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    flat: dict[str, Any] = {}
    for section, table in data.items():
        if not isinstance(table, dict):
            raise (
                _unknown(section)
                if section not in _sections()
                else ConfigError(f"config file {path}: [{section}] must be a table")
            )
        for name, value in table.items():
            flat[f"{section}.{name}"] = value
    return flat


def describe() -> list[tuple[str, str, str]]:
    """(key, default, description) for every setting, in declaration order."""
    rows = []
    for section, cls in _sections().items():
        for f in dataclasses.fields(cls):
            default = f.default
            text = str(default).lower() if isinstance(default, bool) else repr(default)
            rows.append((f"{section}.{f.name}", text, f.metadata["doc"]))
    return rows


__all__ = [
    "ANALYSIS_SECTIONS",
    "ENV_PREFIX",
    "MOVED_KEYS",
    "PER_TASK_SECTIONS",
    "SECRET_KEYS",
    "AnalysisSettings",
    "MotionSettings",
    "ProposerSettings",
    "QualitySettings",
    "ResourceSettings",
    "ServerSettings",
    "Settings",
    "describe",
    "load_settings",
    "with_task_params",
]


def markdown_table() -> str:
    """The README's settings table (`python -m platesift.config` prints it)."""
    rows = [f"| `{key}` | `{default}` | {doc} |" for key, default, doc in describe()]
    return "\n".join(["| setting | default | meaning |", "|---|---|---|", *rows])


if __name__ == "__main__":  # pragma: no cover
    print(markdown_table())
