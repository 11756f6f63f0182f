"""Export: the trained Keras weights -> a full-integer (uint8 in and out) TFLite model at the
shipped input size, calibrated on seeded training crops, plus its manifest.

Quantisation is TensorFlow Lite's post-training full-integer route with a representative
dataset (the route to `edgetpu_compiler`): every tensor between the input and the outputs is
int8, so the Edge TPU compiler can map the whole graph.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from models.plate_geometry import INPUT_SIZE, MIN_PLATE_PX
from training.augment import training_crop
from training.data import Sample, load_grey
from training.train import TrainConfig

MODEL_FILE = "plates.tflite"
MANIFEST_FILE = "plates.toml"
CALIBRATION_CROPS = 256
DEFAULT_THRESHOLD = 0.3


def representative(samples: Sequence[Sample], seed: int) -> Iterator[list[np.ndarray]]:
    """Seeded input-sized training crops, for calibrating the int8 ranges."""
    train = [s for s in samples if s.split == "train"]
    rng = np.random.default_rng(seed + 1)
    for i in rng.choice(len(train), CALIBRATION_CROPS, replace=len(train) < CALIBRATION_CROPS):
        crop, _ = training_crop(rng, load_grey(train[i].path), train[i].plates, INPUT_SIZE)
        yield [crop[None, :, :, None].astype(np.float32) / 255.0]


def convert(weights: Path, samples: Sequence[Sample], seed: int) -> bytes:
    """The int8 TFLite flatbuffer of the net with `weights` at INPUT_SIZE."""
    import tensorflow as tf

    from training.net import build

    model = build(INPUT_SIZE, batch=1)
    model.load_weights(weights)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: representative(samples, seed)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    return bytes(converter.convert())


def manifest_text(threshold: float) -> str:
    return (
        "# The plate detector shipped with platesift: see MODEL_CARD.md. Rebuilt by `make model`.\n"
        "[model]\n"
        'name = "platesift-plates"\n'
        f'cpu_file = "{MODEL_FILE}"\n'
        'labels = ["plate"]\n'
        'plate_label = "plate"\n'
        f"input_size = [{INPUT_SIZE}, {INPUT_SIZE}]\n"
        "input_channels = 1\n"
        'input_type = "uint8"\n'
        'output_layout = "centernet"\n'
        f"score_threshold = {threshold}\n"
        f"min_plate_px = {MIN_PLATE_PX}\n"
    )


def export(weights: Path, samples: Sequence[Sample], out: Path, config: TrainConfig) -> Path:
    """Write the model and a manifest (score threshold to be tuned by `evaluate`)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL_FILE).write_bytes(convert(weights, samples, config.seed))
    manifest = out / MANIFEST_FILE
    manifest.write_text(manifest_text(DEFAULT_THRESHOLD))
    print(f"wrote {out / MODEL_FILE} ({(out / MODEL_FILE).stat().st_size} bytes)", flush=True)
    return manifest


__all__ = [
    "CALIBRATION_CROPS",
    "DEFAULT_THRESHOLD",
    "MANIFEST_FILE",
    "MODEL_FILE",
    "convert",
    "export",
    "manifest_text",
    "representative",
]
