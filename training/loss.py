"""The detector's loss: CenterNet's penalty-reduced focal loss on the heat map plus an L1
loss on the box channels, weighted around each plate centre."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

BOX_WEIGHT = 1.0


def focal(heat_true: Any, heat_pred: Any) -> Any:
    """CenterNet focal loss (alpha 2, beta 4), normalised by the number of plates."""
    p = tf.clip_by_value(heat_pred, 1e-4, 1 - 1e-4)
    pos = tf.cast(heat_true >= 1.0, tf.float32)
    pos_loss = -tf.math.log(p) * (1 - p) ** 2 * pos
    neg_loss = -tf.math.log(1 - p) * p**2 * (1 - heat_true) ** 4 * (1 - pos)
    return (tf.reduce_sum(pos_loss) + tf.reduce_sum(neg_loss)) / tf.maximum(tf.reduce_sum(pos), 1)


def box_l1(box_true: Any, box_pred: Any, weight: Any) -> Any:
    """L1 on offsets and log sizes, where the heat map is at least half a peak."""
    err = tf.reduce_sum(tf.abs(box_true - box_pred), axis=-1, keepdims=True)
    return tf.reduce_sum(err * weight) / tf.maximum(tf.reduce_sum(weight), 1e-3)


def total(heat_true: Any, box_true: Any, weight: Any, heat_pred: Any, box_pred: Any) -> Any:
    return focal(heat_true, heat_pred) + BOX_WEIGHT * box_l1(box_true, box_pred, weight)


__all__ = ["BOX_WEIGHT", "box_l1", "focal", "total"]
