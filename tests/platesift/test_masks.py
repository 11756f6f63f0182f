"""Camera masks: the text form, its errors, the raster and the point test."""

from __future__ import annotations

import numpy as np
import pytest

from platesift.config import load_settings
from platesift.errors import ConfigError
from platesift.masks import masked, parse_masks, raster


def test_polygons_read_from_their_text_form() -> None:
    assert parse_masks("0,0 640,0 640,40 0,40; 10.5,20 30,20 20,35") == (
        ((0.0, 0.0), (640.0, 0.0), (640.0, 40.0), (0.0, 40.0)),
        ((10.5, 20.0), (30.0, 20.0), (20.0, 35.0)),
    )
    assert parse_masks("") == () and parse_masks(" ; ") == ()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("0,0 10,0", "mask 1 has 2 corners"),
        ("0,0 10,0 10,10; 0,0 5", "mask 2: corner '5' is not x,y"),
        ("0,0 10,x 10,10", "corner '10,x'"),
        ("0,0 -4,0 10,10", "corner '-4,0'"),
    ],
)
def test_a_malformed_mask_is_one_clear_config_error(text: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env={}, overrides=[f"camera.masks={text}"])
    assert says in str(err.value) and str(err.value).startswith("setting camera.masks: ")
    assert "\n" not in str(err.value)


def test_the_raster_scales_source_pixels_to_the_image_asked() -> None:
    masks = parse_masks("0,0 960,0 960,540 0,540")  # the top-left quarter of 1080p
    image = raster(masks, (1920, 1080), (240, 135))
    assert image is not None and image.shape == (135, 240)
    assert image[:67, :120].min() == 255 and image[69:, :].max() == 0  # edges included
    assert image[:, 122:].max() == 0
    assert raster((), (1920, 1080), (240, 135)) is None


def test_a_box_is_masked_by_its_centre() -> None:
    masks = parse_masks("0,0 100,0 100,50 0,50")
    assert masked(masks, (10, 10, 60, 30))
    assert not masked(masks, (80, 40, 200, 90))  # overlaps, but its centre is outside
    assert not masked((), (10, 10, 60, 30))
    assert np.isscalar(masked(masks, (0, 0, 1, 1)))
