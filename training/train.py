"""Training: seeded batches of augmented crops, Adam with warm-up and cosine decay, a
progress bar, and the Keras weights at the end. Same data, seed and steps: the same model
(TensorFlow's op determinism is on)."""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.plate_geometry import STRIDE
from training.augment import targets, training_crop
from training.data import Sample, load_grey

TRAIN_CROP = 192
"""Training crops are smaller than the model input: the net is fully convolutional."""


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 12000
    batch: int = 32
    learning_rate: float = 2e-3
    warmup: int = 300
    seed: int = 1234


class Photos:
    """The training photographs, decoded once, and how often each source is drawn."""

    def __init__(
        self, samples: Sequence[Sample], made: Sequence[tuple[Sample, np.ndarray]] = ()
    ) -> None:
        """`samples` are read from disk; `made` come with their grey image (synthetic)."""
        self.samples = list(samples) + [s for s, _ in made]
        self.images = [load_grey(s.path) for s in samples] + [image for _, image in made]
        sources = sorted({s.source for s in self.samples})
        counts = {src: sum(s.source == src for s in self.samples) for src in sources}
        # Each source is drawn in proportion to the square root of its size, so the small
        # sets closest to a street camera are not drowned by the big web set.
        weights = np.array([math.sqrt(counts[s.source]) / counts[s.source] for s in self.samples])
        self.weights = weights / weights.sum()


def batches(photos: Photos, config: TrainConfig) -> Iterator[tuple[np.ndarray, ...]]:
    """Endless seeded batches: images [B, C, C, 1] in [0, 1], heat, box, weight."""
    rng = np.random.default_rng(config.seed)
    grid = TRAIN_CROP // STRIDE
    while True:
        xs, hs, bs, ws = [], [], [], []
        picks = rng.choice(len(photos.samples), size=config.batch, p=photos.weights)
        for i in picks:
            crop, boxes = training_crop(rng, photos.images[i], photos.samples[i].plates, TRAIN_CROP)
            heat, box, weight = targets(boxes, grid)
            xs.append(crop[..., None])
            hs.append(heat)
            bs.append(box)
            ws.append(weight)
        yield (
            np.stack(xs).astype(np.float32) / 255.0,
            np.stack(hs),
            np.stack(bs),
            np.stack(ws),
        )


def _prefetched(
    source: Iterator[tuple[np.ndarray, ...]], stop: threading.Event, depth: int = 4
) -> Generator[tuple[np.ndarray, ...], None, None]:
    """Batches made in a background thread (in order, so still deterministic), until `stop`."""
    q: queue.Queue[tuple[np.ndarray, ...]] = queue.Queue(depth)

    def fill() -> None:
        for item in source:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return

    thread = threading.Thread(target=fill, name="batches", daemon=True)
    thread.start()
    try:
        while True:
            yield q.get()
    finally:
        stop.set()
        thread.join()


def train(photos: Photos, config: TrainConfig, out: Path) -> Path:
    """Train from scratch; the Keras weights file written to `out`."""
    import keras
    import tensorflow as tf

    from training.loss import total
    from training.net import build

    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    model = build(TRAIN_CROP)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0,
        max(1, config.steps - config.warmup),
        warmup_target=config.learning_rate,
        warmup_steps=min(config.warmup, config.steps // 2),
    )
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=1e-4)

    @tf.function(reduce_retracing=True)
    def step(x: tf.Tensor, heat: tf.Tensor, box: tf.Tensor, weight: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            heat_pred, box_pred = model(x, training=True)
            loss = total(heat, box, weight, heat_pred, box_pred)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    bar = keras.utils.Progbar(config.steps, stateful_metrics=["loss"])
    smooth = None
    stop = threading.Event()
    feed = _prefetched(batches(photos, config), stop)
    for i, (x, heat, box, weight) in enumerate(feed):
        if i >= config.steps:
            break
        loss = float(step(x, heat, box, weight))
        smooth = loss if smooth is None else 0.98 * smooth + 0.02 * loss
        bar.update(i + 1, [("loss", smooth)])
        if (i + 1) % 2000 == 0:
            model.save_weights(out / "plates.weights.h5")
    feed.close()  # stops and joins the batch thread
    path = out / "plates.weights.h5"
    model.save_weights(path)
    return path


__all__ = ["TRAIN_CROP", "Photos", "TrainConfig", "batches", "train"]
