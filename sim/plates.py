"""Synthetic licence plates: deterministic plate images with known text, for scenes and tests."""

from __future__ import annotations

import cv2
import numpy as np

PLATE_ASPECT = 520 / 110  # EU plate, width / height
_LETTERS = "ABCDEFGHJKLMNPRSTVWXYZ"
_DIGITS = "0123456789"


def random_plate_text(rng: np.random.Generator) -> str:
    """A plate string like `AB 123 CD`."""

    def pick(alphabet: str, n: int) -> str:
        return "".join(alphabet[int(i)] for i in rng.integers(0, len(alphabet), n))

    return f"{pick(_LETTERS, 2)} {pick(_DIGITS, 3)} {pick(_LETTERS, 2)}"


def plate_size(height: int) -> tuple[int, int]:
    """(width, height) in pixels of a plate `height` pixels tall."""
    height = max(int(height), 4)
    return round(height * PLATE_ASPECT), height


def render_plate(text: str, height: int, background: int = 235, ink: int = 20) -> np.ndarray:
    """A BGR plate image `height` pixels tall: light background, dark border and characters."""
    width, height = plate_size(height)
    # Draw large, then shrink: anti-aliased characters at any size, deterministically.
    scale = max(1, 8 // max(1, height // 8))
    big_w, big_h = width * scale, height * scale
    img = np.full((big_h, big_w), background, np.uint8)
    border = max(1, big_h // 14)
    cv2.rectangle(img, (0, 0), (big_w - 1, big_h - 1), ink, border)
    font = cv2.FONT_HERSHEY_SIMPLEX
    thickness = max(1, big_h // 9)
    target_h = big_h * 0.62
    (tw, th), _ = cv2.getTextSize(text, font, 1.0, thickness)
    fs = min(target_h / th, (big_w * 0.88) / tw)
    (tw, th), _ = cv2.getTextSize(text, font, fs, thickness)
    org = ((big_w - tw) // 2, (big_h + th) // 2)
    cv2.putText(img, text, org, font, fs, ink, thickness, cv2.LINE_AA)
    small = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)


__all__ = ["PLATE_ASPECT", "plate_size", "random_plate_text", "render_plate"]
