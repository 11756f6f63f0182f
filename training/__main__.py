"""`python -m training` (what `make model` runs): train, export, evaluate, in that order."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "plates"
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "models" / "plates"
WORK = Path("build") / "model"


def main(argv: list[str] | None = None) -> int:
    from training.synthetic import STILLS
    from training.train import TrainConfig

    defaults = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    p.add_argument(
        "stage", nargs="?", default="all", choices=("all", "train", "export", "evaluate")
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dataset folder")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the model files go")
    p.add_argument("--work", type=Path, default=WORK, help="weights and checkpoints")
    p.add_argument("--steps", type=int, default=defaults.steps)
    p.add_argument("--batch", type=int, default=defaults.batch)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--sources", nargs="*", help="only these dataset sources")
    p.add_argument(
        "--synthetic",
        type=int,
        default=STILLS,
        help="synthetic street-scene stills added to training (default %(default)s)",
    )
    args = p.parse_args(argv)
    config = TrainConfig(steps=args.steps, batch=args.batch, seed=args.seed)
    from training.data import read_dataset

    samples = read_dataset(args.data, args.sources)
    weights = args.work / "plates.weights.h5"
    if args.stage in ("all", "train"):
        from training.synthetic import synthetic_stills
        from training.train import Photos, train

        train_set = [s for s in samples if s.split == "train"]
        made = synthetic_stills(args.synthetic)
        print(
            f"training on {len(train_set)} photographs and {len(made)} synthetic stills "
            f"for {config.steps} steps",
            flush=True,
        )
        weights = train(Photos(train_set, made), config, args.work)
    if args.stage in ("all", "export"):
        from training.export import export

        export(weights, samples, args.out, config)
    if args.stage in ("all", "evaluate"):
        from training.evaluate import evaluate_and_write

        evaluate_and_write(samples, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
