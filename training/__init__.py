"""Training for the shipped plate detector (`make model`): data, augmentation, the net, the
loss, int8 export and per-source evaluation, in that order. Needs the `[train]` extra
(TensorFlow); nothing in the runtime imports this package."""
