"""MODEL_CARD.md, written from the metrics of the model it describes (so the card cannot
drift from the model): data and attribution, how it was trained, its input and outputs, and
recall, precision and latency per validation source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.plate_geometry import INPUT_SIZE, MIN_PLATE_PX, STRIDE
from training.data import CLOSE_UP_AREA, audited
from training.synthetic import STILLS
from training.train import TRAIN_CROP, TrainConfig

CARD_FILE = "MODEL_CARD.md"
SOURCES = {
    "intl-web": (
        "Roboflow Universe platerecognition-7gchs/experiment-plates (via chirag-agrawal24/ANPR)",
        "MIT",
    ),
    "openimages": (
        "Roboflow Universe samrat-sahoo/license-plates-f8vsn v3, an Open Images subset "
        "(via TechKhid/LicensePlateDetection)",
        "annotations CC BY 4.0, images CC BY 2.0",
    ),
    "ro-dashcam": ("RobertLucian/license-plate-dataset", "MIT"),
    "ru-street": (
        "Roboflow Universe snowy-car-detection/number-plate-detection-c3hto v2 "
        "(via 70Null07/plateyolov8train)",
        "MIT",
    ),
    "us-roboflow": (
        "Roboflow Universe objects-in-the-wild/license-plate-recognition-lhqow "
        "(via AbdulQayyumAhmed/NUMBER-PLATE-DETECTOR)",
        "CC BY 4.0",
    ),
}
REPORT_SPLIT = {
    "intl-web": "test (close-ups + audited)",
    "openimages": "test",
    "ro-dashcam": "valid",
    "ru-street": "test",
    "us-roboflow": "test",
}


TUNE_SPLIT = {
    "intl-web": "valid (close-ups)",
    "openimages": "valid",
    "ro-dashcam": "1 in 7 of train",
    "ru-street": "valid",
    "us-roboflow": "valid",
}


def _table(rows: dict[str, dict[str, Any]], splits: dict[str, str]) -> list[str]:
    out = [
        "| source | split | images | plates | recall | plates >= 20 px | recall >= 20 px "
        "| precision | boxes / image |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for source, m in rows.items():
        split = splits.get(source, "")
        out.append(
            f"| {source} | {split} | {m['images']} | {m['plates']} | {m['recall']:.3f} "
            f"| {m['plates_20px']} | {m['recall_20px']:.3f} | {m['precision']:.3f} "
            f"| {m['boxes_per_image']:.2f} |"
        )
    return out


def write_card(out: Path, metrics: dict[str, Any]) -> Path:
    config = TrainConfig()
    checked = len(audited("intl-web") or ())
    lines = [
        "# Model card: platesift-plates",
        "",
        "The plate-region detector shipped with platesift (`plates.tflite`, manifest "
        "`plates.toml`). This card is written by `make model` from `metrics.json`.",
        "",
        "## What it is",
        f"- A CenterNet-style fully convolutional net, {metrics['model_bytes']:,} bytes, full "
        "integer (uint8 input and outputs, int8 inside), built only from CONV_2D, ADD, "
        "RESIZE_NEAREST_NEIGHBOR, LOGISTIC and QUANTIZE: ops the Edge TPU compiler maps.",
        f"- Input: one grey (luma) channel, {INPUT_SIZE} x {INPUT_SIZE}, uint8 pixels.",
        f"- Outputs: a heat map of plate centres on a {INPUT_SIZE // STRIDE} x "
        f"{INPUT_SIZE // STRIDE} grid (stride {STRIDE}) and four box channels per cell (centre "
        "offset, log width, log height), decoded in numpy (`models/plate_geometry.py`): "
        "3 x 3 peaks above the score threshold, then NMS at IoU 0.4.",
        f"- Finds plates from about {MIN_PLATE_PX} input pixels wide. Bigger images are looked at "
        "in tiles (`models/plate_geometry.tile_plan`), so a plate of `proposer.min_plate_px` "
        "(default 20) source pixels is never shrunk below that; a close-up view at half the "
        "whole-image scale (in the same input where the image leaves room) finds plates that "
        "fill a photo, wider than the model was trained on.",
        f"- Score threshold {metrics['score_threshold']} (picked on the tune split, below).",
        f"- Cost: {metrics['macs_per_inference'] / 1e6:.0f} M multiply-accumulates per "
        f"inference. Latency: {metrics['inference_ms_one_core']} ms per inference on one core "
        f"of the evaluation machine ({metrics['cpu']}; TFLite XNNPACK via ai-edge-litert). "
        "An int8 model's CPU speed hangs on int8 dot-product instructions (x86 VNNI, Arm "
        "SDOT): the same file took 0.98 ms on an x86-64 core with AVX-512 VNNI. A Jetson "
        "Nano's Cortex-A57 has none; expect tens of milliseconds there "
        "(`docs/plate-model.md`).",
        "",
        "## Data",
        "Trained and validated only on real photographs with plate boxes (the shared "
        "`datasets/plates` folder, not in this repository):",
        "",
        "| source | from | licence |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {v[0]} | {v[1]} |" for k, v in SOURCES.items()]
    lines += [
        "",
        "CC BY sources are used under their licence, with attribution as above.",
        "",
        "Splits, per source (`training/data.py`): **report** = the publisher's test split, or "
        "its valid split where there is no test (ro-dashcam); **tune** = the publisher's valid "
        "split where there is a test, else a fixed 1 in 7 of train; **train** = the rest. "
        "Nothing reported below was trained or tuned on.",
        "",
        "intl-web's labels were checked first: most boxes of its car photographs are two to "
        "five times the plate or beside it (by eye: of its 399 test photos that are not "
        f"close-ups, {checked} have right boxes). Only its close-ups (every box >= "
        f"{CLOSE_UP_AREA:.0%} of the image) and the {checked} checked test photos are used "
        "(`training/audit/intl-web.txt`), so its report row is mostly close-ups.",
        "",
        f"Training adds {STILLS} synthetic stills: frames of `sim/` street scenes on seeds and "
        "settings of their own (not the scenes the tests measure), with noise, rain, flicker, "
        "shake, night and motion blur (`training/synthetic.py`).",
        "",
        "## Training",
        f"`make model` (= `python -m training`): from scratch, no pretrained weights, seed "
        f"{config.seed}, {config.steps} steps of {config.batch} crops of {TRAIN_CROP} x "
        f"{TRAIN_CROP}, AdamW with warm-up and cosine decay from {config.learning_rate}, "
        "CenterNet focal loss plus L1 box loss. Each crop is a training photo warped so its "
        f"plate is {MIN_PLATE_PX - 2}-{int(0.8 * 240)} px wide (small rotation, perspective, "
        "aspect jitter, mirror, square sources widened back), then degraded as street video "
        "is: blur or motion blur, low light, noise, a lower resolution, JPEG blockiness "
        "(`training/augment.py`). Then post-training full-integer quantisation calibrated on "
        "256 training crops (`training/export.py`) and this evaluation "
        "(`training/evaluate.py`). About 40-55 minutes on 2 CPU cores.",
        "",
        "## Validation (report split)",
        f"A plate counts as found when a proposed box overlaps it at IoU >= {metrics['iou']}; "
        "each box counts once. Detection runs as `platesift propose` does: the whole grey "
        "image, tiled, at most 4 boxes (`proposer.max_regions`). Plates narrower than 20 px are "
        "counted apart as well: no OCR reads them.",
        "",
        *_table(metrics["report"], REPORT_SPLIT),
        "",
        "Tune split, for comparison (the threshold was picked here):",
        "",
        *_table(metrics["tune"], TUNE_SPLIT),
        "",
        "## Limits",
        "- Strongest on street and dashcam views of a car (ro-dashcam, ru-street) and on "
        "close-ups; weaker on far or tiny plates (us-roboflow and openimages have many plates "
        "under "
        "20 px) and unusual plates.",
        "- intl-web's report row is mostly close-ups (its other labels are wrong, see Data); "
        "the street views are measured by ro-dashcam, ru-street, us-roboflow and openimages.",
        "- Small plates: on the tune split, recall is about 0.7 for plates 12-40 px wide at "
        "the model's input and 0.9 from 40 px. `proposer.min_plate_px` 15 instead of 20 looks "
        "closer (about twice the inferences on a motion crop) and finds more of them "
        "(`docs/plate-model.md`).",
        "- CPU cost: on a CPU without int8 dot-product instructions an inference is tens of "
        "milliseconds, and a motion crop takes one to three; `proposer.frame_stride` (auto: 3 "
        "on the CPU) sets how often a moving object is looked at.",
        "- Low precision at this threshold (the tune split's F2 favours recall): the GPU stage "
        "gets some boxes that are lights, grilles or signs.",
        "- Photographs, not video: the augmentation imitates video, but no real street video "
        "with plate boxes was available for validation.",
        "- Three sources were stretched to a square by their publishers, so plate shapes there "
        "are distorted; the small sources (ru-street, openimages) give wide error bars.",
        "",
    ]
    path = out / CARD_FILE
    path.write_text("\n".join(lines))
    return path


__all__ = ["CARD_FILE", "REPORT_SPLIT", "SOURCES", "TUNE_SPLIT", "write_card"]
