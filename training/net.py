"""The plate detector net (Keras): a small feature pyramid on one grey channel with a
CenterNet-style head at stride STRIDE, built only from ops the Edge TPU maps (Conv2D with
batch norm folded and ReLU fused, nearest-neighbour resizing, Add, Logistic)."""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from models.plate_geometry import STRIDE

WIDTHS = (16, 32, 64, 96, 128)
"""Channels at strides 2, 4, 8, 16 and 32."""
PYRAMID = (32, 48, 64)
"""Channels of the top-down path at strides 4, 8 and 16."""


def _conv(x: Any, channels: int, kernel: int = 3, stride: int = 1) -> Any:
    x = layers.Conv2D(channels, kernel, stride, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.97)(x)
    return layers.ReLU()(x)


def _up(x: Any, size: int) -> Any:
    """Nearest-neighbour 2x upsampling to a static size: one RESIZE_NEAREST_NEIGHBOR op
    (Keras's UpSampling2D converts to TILE and dynamic SHAPE ops, which the Edge TPU lacks)."""
    return layers.Resizing(size, size, interpolation="nearest")(x)


def build(size: int, batch: int | None = None) -> keras.Model:
    """The detector for `size` x `size` inputs (training crops, or the shipped input size;
    the weights are the same for any size, a multiple of 32). Export fixes `batch` at 1: the
    Edge TPU wants every shape static.

    Input: grey pixels scaled to [0, 1]. Outputs: `heat` (sigmoid) and `box`."""
    assert STRIDE == 4 and size % 32 == 0
    inp = keras.Input((size, size, 1), batch_size=batch, name="luma")
    x = _conv(inp, WIDTHS[0], stride=2)
    feats = []
    for width in WIDTHS[1:]:
        x = _conv(x, width, stride=2)
        x = _conv(x, width)
        feats.append(x)
    c4, c8, c16, c32 = feats
    p = layers.Conv2D(PYRAMID[2], 1)(c32)
    p = layers.Add()([_up(p, size // 16), layers.Conv2D(PYRAMID[2], 1)(c16)])
    p = _conv(p, PYRAMID[2])
    p = layers.Conv2D(PYRAMID[1], 1)(p)
    p = layers.Add()([_up(p, size // 8), layers.Conv2D(PYRAMID[1], 1)(c8)])
    p = _conv(p, PYRAMID[1])
    p = layers.Conv2D(PYRAMID[0], 1)(p)
    p = layers.Add()([_up(p, size // 4), layers.Conv2D(PYRAMID[0], 1)(c4)])
    p = _conv(p, PYRAMID[0])
    heat = layers.Conv2D(
        1, 1, activation="sigmoid", name="heat", bias_initializer=keras.initializers.Constant(-4.6)
    )(_conv(p, PYRAMID[0]))
    box = layers.Conv2D(4, 1, name="box")(_conv(p, PYRAMID[0]))
    return keras.Model(inp, [heat, box], name="platesift_plates")


__all__ = ["PYRAMID", "WIDTHS", "build"]
