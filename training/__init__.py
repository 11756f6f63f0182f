"""Training for the shipped plate detector (`make model`): data, augmentation, the net, the
loss, int8 export and per-source evaluation, in that order. Needs the `[train]` extra
(TensorFlow); nothing in the runtime imports this package.

oneDNN's custom CPU ops are turned off before TensorFlow is imported: with them, two
600-step runs of the same seed differed (weights up to 10 apart); without them they are
bit-identical, at about 40% more time per step."""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
