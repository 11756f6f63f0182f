"""Training crops: real photographs made to look like the pipeline's inputs.

A crop is a CROP x CROP window of one grey photograph, warped (scale, small rotation and
perspective, aspect jitter, mirror) so that its plate is between MIN_PLATE_PX and
MAX_PLATE_PX wide, padded with black where it runs off the photo (as the detector letterboxes
a motion crop), then degraded as video is: blur, low light, sensor noise, JPEG/H.264-like
blockiness, a lower resolution. Deterministic for a given numpy Generator.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from models.plate_geometry import GRID, MAX_PLATE_PX, MIN_PLATE_PX, STRIDE, encode_box

PlateBox = tuple[float, float, float, float]
SMALLEST_TARGET_PX = 5.0
"""Plates narrower than this after warping are too small to be a target (nor a negative)."""


def warp_matrix(
    rng: np.random.Generator, plates: tuple[PlateBox, ...], height: int, width: int, crop: int
) -> np.ndarray:
    """A 3 x 3 matrix from photo pixels to crop pixels."""
    if plates and rng.random() < 0.9:
        x1, y1, x2, y2 = plates[int(rng.integers(len(plates)))]
        target = math.exp(rng.uniform(math.log(MIN_PLATE_PX - 2), math.log(MAX_PLATE_PX * 0.8)))
        scale = target / max(x2 - x1, 1.0)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        margin = min(crop / 2 - 1, target / 2 + 4)
        px, py = rng.uniform(margin, crop - margin), rng.uniform(crop / 2 - crop * 0.4, crop * 0.9)
        py = min(max(py, 4.0), crop - 4.0)
    else:
        fit = crop / max(height, width)
        scale = fit * math.exp(rng.uniform(0.0, math.log(6.0)))
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        px, py = crop / 2, crop / 2
    aspect = math.exp(rng.uniform(-0.15, 0.15))
    if height == width:
        # The square sources were stretched to a square from wider photos: widen them back.
        aspect *= math.exp(rng.uniform(0.0, math.log(1.8)) / 2)
    angle = math.radians(rng.normal(0, 4))
    sx, sy = scale * aspect, scale / aspect
    if rng.random() < 0.5:
        sx = -sx
    c, s = math.cos(angle), math.sin(angle)
    linear = np.array([[c * sx, -s * sy], [s * sx, c * sy]])
    m = np.eye(3)
    m[:2, :2] = linear
    m[:2, 2] = np.array([px, py]) - linear @ np.array([cx, cy])
    shear = np.eye(3)
    shear[2, 0], shear[2, 1] = rng.normal(0, 0.0006), rng.normal(0, 0.0006)
    centre = np.array([[1, 0, -px], [0, 1, -py], [0, 0, 1.0]])
    return np.linalg.inv(centre) @ shear @ centre @ m


def warp_boxes(m: np.ndarray, plates: tuple[PlateBox, ...], crop: int) -> list[PlateBox]:
    """Plate boxes through `m`, clipped to the crop; plates mostly outside it are dropped."""
    out = []
    for x1, y1, x2, y2 in plates:
        corners = np.array([[x1, y1, 1], [x2, y1, 1], [x2, y2, 1], [x1, y2, 1]]).T
        p = m @ corners
        xs, ys = p[0] / p[2], p[1] / p[2]
        bx1, by1, bx2, by2 = xs.min(), ys.min(), xs.max(), ys.max()
        area = (bx2 - bx1) * (by2 - by1)
        cx1, cy1 = max(bx1, 0.0), max(by1, 0.0)
        cx2, cy2 = min(bx2, float(crop)), min(by2, float(crop))
        if area <= 0 or cx2 <= cx1 or cy2 <= cy1:
            continue
        if (cx2 - cx1) * (cy2 - cy1) < 0.6 * area:
            continue
        out.append((float(cx1), float(cy1), float(cx2), float(cy2)))
    return out


def degrade(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Lighting, blur, noise and compression as a street camera's video has them."""
    img: np.ndarray = image.astype(np.float32)
    gain = math.exp(rng.normal(0, 0.3))
    if rng.random() < 0.2:
        gain *= rng.uniform(0.15, 0.5)  # night
    img = (img - 128) * math.exp(rng.normal(0, 0.25)) + 128  # contrast
    img = img * gain + rng.normal(0, 12)
    if rng.random() < 0.3:
        gamma = math.exp(rng.normal(0, 0.3))
        img = 255 * (np.clip(img, 0, 255) / 255) ** gamma
    img = np.clip(img, 0, 255).astype(np.uint8)
    roll = rng.random()
    if roll < 0.25:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.6))
    elif roll < 0.4:
        length = int(rng.integers(3, 8))
        kernel: np.ndarray = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        img = cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))
    if rng.random() < 0.2:
        size = img.shape[0]
        small = max(16, int(size * rng.uniform(0.4, 0.8)))
        img = cv2.resize(
            cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA), (size, size)
        )
    if rng.random() < 0.35:
        sigma = rng.uniform(2, 9)
        img = np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        quality = int(rng.integers(15, 80))
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if ok else None
        if decoded is not None:
            img = decoded
    return img


def targets(boxes: list[PlateBox], grid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heat map (grid, grid, 1), box regression (grid, grid, 4) and regression weight
    (grid, grid, 1) for plates in crop pixels."""
    heat = np.zeros((grid, grid), np.float32)
    reg = np.zeros((grid, grid, 4), np.float32)
    weight = np.zeros((grid, grid), np.float32)
    ys, xs = np.mgrid[0:grid, 0:grid].astype(np.float32)
    for x1, y1, x2, y2 in boxes:
        w, h = x2 - x1, y2 - y1
        if w < SMALLEST_TARGET_PX:
            continue
        gx, gy = (x1 + x2) / 2 / STRIDE, (y1 + y2) / 2 / STRIDE
        sx, sy = max(0.5, 0.15 * w / STRIDE), max(0.5, 0.15 * h / STRIDE)
        g = np.exp(-((xs + 0.5 - gx) ** 2) / (2 * sx * sx) - (ys + 0.5 - gy) ** 2 / (2 * sy * sy))
        cx, cy = min(int(gx), grid - 1), min(int(gy), grid - 1)
        g[cy, cx] = 1.0
        heat = np.maximum(heat, g)
        core = (g >= 0.5) & (g >= weight)
        lw, lh = encode_box(w, h)
        reg[core, 0] = gx - (xs[core] + 0.5)
        reg[core, 1] = gy - (ys[core] + 0.5)
        reg[core, 2], reg[core, 3] = lw, lh
        weight[core] = g[core]
    return heat[..., None], reg, weight[..., None]


def training_crop(
    rng: np.random.Generator, image: np.ndarray, plates: tuple[PlateBox, ...], crop: int
) -> tuple[np.ndarray, list[PlateBox]]:
    """One augmented grey crop and its plate boxes (crop pixels)."""
    height, width = image.shape
    m = warp_matrix(rng, plates, height, width, crop)
    border = cv2.BORDER_CONSTANT if rng.random() < 0.5 else cv2.BORDER_REFLECT
    warped = cv2.warpPerspective(image, m, (crop, crop), flags=cv2.INTER_LINEAR, borderMode=border)
    return degrade(rng, warped), warp_boxes(m, plates, crop)


__all__ = ["GRID", "degrade", "targets", "training_crop", "warp_boxes", "warp_matrix"]
