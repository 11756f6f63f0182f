"""The synthetic scenes' vocabulary: scene and vehicle specs, the per-frame ground truth, the
seeded random streams and frame counting. Every scene is a pure function of its `SceneSpec`."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from sim.plates import plate_size

Image = npt.NDArray[np.float32]
Frame = npt.NDArray[np.uint8]

NIGHT_LEVEL = 0.12  # scene brightness at night, as a fraction of day
AE_PERIOD_S = 5.0  # period of the auto-exposure drift
PLATE_EMISSION = 0.9  # a lit plate at night shows at this fraction of its day brightness
MIN_READABLE_PLATE_PX = 8
MAX_READABLE_BLUR_PX = 2
_SUPERSAMPLE = 2  # vehicle bodies are drawn at this scale and shrunk, for smooth edges

# Stream ids for the seeded generators (one independent stream per purpose).
_S_PLATES, _S_BACKGROUND, _S_SCENE, _S_VEHICLE = 1, 2, 3, 4
_S_FLICKER, _S_RAIN, _S_SHAKE, _S_NOISE = 11, 12, 13, 14


@dataclass(frozen=True)
class Vehicle:
    """One vehicle crossing the frame horizontally, carrying a plate facing the camera."""

    enter_s: float  # time the vehicle's leading edge reaches the frame edge
    speed_px_s: float  # pixels per second along its path (source pixels); >0
    direction: int = 1  # +1 left->right, -1 right->left
    lane_y: float = 0.75  # y of the vehicle's bottom edge, as a fraction of frame height
    length_px: int = 220  # body size at scale 1 (source pixels)
    height_px: int = 110
    color: tuple[int, int, int] = (40, 60, 160)  # BGR body colour
    plate_text: str = ""  # "" -> random_plate_text from the scene rng
    plate_height_px: int = 22  # plate height in source pixels
    blur_px: int = 0  # motion-blur kernel length along the direction of travel (0 = sharp)
    lit: bool = True  # at night: headlights/taillights on and plate lit
    stop_s: float = 0.0  # vehicle pauses this long with its centre mid-frame (0 = never)

    def __post_init__(self) -> None:
        if not self.speed_px_s > 0:
            raise ValueError(f"speed_px_s must be > 0, got {self.speed_px_s}")
        if self.direction not in (1, -1):
            raise ValueError(f"direction must be +1 or -1, got {self.direction}")
        if not 0.0 < self.lane_y <= 1.0:
            raise ValueError(f"lane_y must be in (0, 1], got {self.lane_y}")
        if self.length_px < 40 or self.height_px < 30:
            raise ValueError(f"vehicle too small: {self.length_px}x{self.height_px} px (min 40x30)")
        if self.blur_px < 0 or self.stop_s < 0:
            raise ValueError("blur_px and stop_s must be >= 0")
        plate_w, plate_h = plate_size(self.plate_height_px)
        if plate_w > 0.9 * self.length_px or plate_h > 0.36 * self.height_px:
            raise ValueError(
                f"a {plate_w}x{plate_h} px plate does not fit on a "
                f"{self.length_px}x{self.height_px} px body"
            )


@dataclass(frozen=True)
class SceneSpec:
    """Everything that determines a synthetic clip; rendering is a pure function of this."""

    width: int = 640
    height: int = 360
    fps: float = 25.0
    seconds: float = 8.0
    seed: int = 0
    vehicles: tuple[Vehicle, ...] = ()
    noise_sigma: float = 2.0  # Gaussian sensor noise, luma levels
    rain: float = 0.0  # rain streaks per frame per 100k pixels (0 = dry)
    flicker: float = 0.0  # per-frame random global gain amplitude (0.1 = +-10%)
    auto_exposure: float = 0.0  # slow global gain drift amplitude (sinusoid over ~5 s)
    shake_px: float = 0.0  # per-frame random camera translation amplitude, source px
    night: bool = False  # scene at ~12% brightness; lit vehicles bright lights + lit plate
    fourcc: str = "mp4v"  # cv2.VideoWriter fourcc; "mp4v" -> .mp4, "MJPG" -> .avi

    def __post_init__(self) -> None:
        if self.width < 64 or self.height < 64:
            raise ValueError(f"frame too small: {self.width}x{self.height} (min 64x64)")
        if not self.fps > 0 or self.seconds < 0:
            raise ValueError(f"need fps > 0 and seconds >= 0, got {self.fps}, {self.seconds}")
        if min(self.noise_sigma, self.rain, self.flicker, self.auto_exposure, self.shake_px) < 0:
            raise ValueError("nuisance amplitudes must be >= 0")
        if self.flicker >= 1 or self.auto_exposure >= 1:
            raise ValueError("flicker and auto_exposure must be < 1 (the gain stays positive)")
        if len(self.fourcc) != 4:
            raise ValueError(f"fourcc must be 4 characters, got {self.fourcc!r}")


@dataclass(frozen=True)
class PlateTruth:
    """Where one plate is in one frame, and whether a reader could read it."""

    box: tuple[int, int, int, int]  # x1, y1, x2, y2 (exclusive), source px, clipped to frame
    text: str
    fully_visible: bool  # whole plate inside the frame
    # fully_visible and height >= 8 px and (day or lit) and blur_px <= 2 and no nearer
    # vehicle covers any of it
    readable: bool


@dataclass(frozen=True)
class FrameTruth:
    """Ground truth of one frame."""

    index: int
    t: float
    # A vehicle with some pixel in the frame (alpha >= 1/255, counting its light glow and
    # blur smear) is moving; a stopped one is not. Rendered positions are whole pixels, so a
    # creeping vehicle can be "moving" in a frame identical to the previous one.
    moving: bool
    plates: tuple[PlateTruth, ...]


@dataclass(frozen=True)
class GroundTruth:
    """The spec of a clip and the truth of every frame."""

    spec: SceneSpec
    frames: tuple[FrameTruth, ...]

    def to_json(self) -> str:
        """Deterministic JSON (sorted keys, compact)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> GroundTruth:
        data = json.loads(text)
        spec_d = dict(data["spec"])
        spec_d["vehicles"] = tuple(
            Vehicle(**{**v, "color": _int3(v["color"])}) for v in spec_d["vehicles"]
        )
        frames = tuple(
            FrameTruth(
                index=int(f["index"]),
                t=float(f["t"]),
                moving=bool(f["moving"]),
                plates=tuple(
                    PlateTruth(
                        box=_int4(p["box"]),
                        text=str(p["text"]),
                        fully_visible=bool(p["fully_visible"]),
                        readable=bool(p["readable"]),
                    )
                    for p in f["plates"]
                ),
            )
            for f in data["frames"]
        )
        return cls(spec=SceneSpec(**spec_d), frames=frames)

    def moving_frames(self) -> set[int]:
        """Indices of frames in which some vehicle in view is moving."""
        return {f.index for f in self.frames if f.moving}

    def readable_plate_frames(self) -> set[int]:
        """Indices of frames showing at least one readable plate."""
        return {f.index for f in self.frames if any(p.readable for p in f.plates)}


def _int3(v: Any) -> tuple[int, int, int]:
    return int(v[0]), int(v[1]), int(v[2])


def _int4(v: Any) -> tuple[int, int, int, int]:
    return int(v[0]), int(v[1]), int(v[2]), int(v[3])


def _f32(a: Any) -> Image:
    """An OpenCV result as a float32 ndarray (no copy when it already is one)."""
    return np.asarray(a, dtype=np.float32)


def _pad_x(a: Image, n: int) -> Image:
    """Pad `n` zero columns on both sides."""
    return _f32(cv2.copyMakeBorder(a, 0, 0, n, n, cv2.BORDER_CONSTANT, value=0))


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """An independent, reproducible generator for (seed, keys...)."""
    return np.random.default_rng([seed % 2**64, *keys])


def frame_count(spec: SceneSpec) -> int:
    """Number of frames in the clip: round(seconds * fps)."""
    return round(spec.seconds * spec.fps)


__all__ = [
    "AE_PERIOD_S",
    "MAX_READABLE_BLUR_PX",
    "MIN_READABLE_PLATE_PX",
    "NIGHT_LEVEL",
    "PLATE_EMISSION",
    "Frame",
    "FrameTruth",
    "GroundTruth",
    "Image",
    "PlateTruth",
    "SceneSpec",
    "Vehicle",
    "frame_count",
]
