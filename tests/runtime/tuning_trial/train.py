"""A training script whose validation accuracy is a known function of its hyperparameters.

Tuning tests and the tuning benchmark run it as a real training job (script mode, any Python,
stdlib only), so they can check what a tuning job must find without waiting for a real model:
the accuracy peaks at lr=0.01, batch-size=32, optimizer adam, and rises epoch by epoch towards
that ceiling. It prints the project's `#metrics` line once per epoch, like sagemaker_code/train.py.

`--fail-above-lr X` makes it exit 1 (after writing /opt/ml/output/failure) when lr > X, for
testing failed trials; `--epoch-seconds` sets how long an epoch takes, and `--first-trial-seconds S`
adds S seconds per epoch to a tuning job's first trial (TRAINING_JOB_NAME ends in `-001-<hex>`),
so the trials launched after it end before it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time


def final_accuracy(lr: float, batch_size: int, optimizer: str) -> float:
    """The accuracy a job converges to; 0.95 at the optimum, lower the further away."""
    lr_penalty = 0.3 * (math.log10(lr) + 2) ** 2
    batch_penalty = 0.2 * ((batch_size - 32) / 32) ** 2
    optimizer_penalty = 0.0 if optimizer == "adam" else 0.1
    return max(0.05, 0.95 - lr_penalty - batch_penalty - optimizer_penalty)


def accuracy_at(epoch: int, ceiling: float) -> float:
    """Each epoch closes half the remaining gap to the ceiling."""
    return ceiling * (1 - 0.5**epoch)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--epoch-seconds", type=float, default=0.1)
    parser.add_argument("--first-trial-seconds", type=float, default=0.0)
    parser.add_argument("--fail-above-lr", type=float, default=None)
    return parser.parse_known_args(argv)[0]


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.fail_above_lr is not None and args.lr > args.fail_above_lr:
        message = f"lr {args.lr} is above --fail-above-lr {args.fail_above_lr}"
        output_dir = os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output")
        with open(os.path.join(output_dir, "failure"), "w") as handle:
            handle.write(message)
        print(message, file=sys.stderr)
        return 1
    ceiling = final_accuracy(args.lr, args.batch_size, args.optimizer)
    first_trial = os.environ.get("TRAINING_JOB_NAME", "").split("-")[-2:-1] == ["001"]
    delay = args.first_trial_seconds if first_trial else 0.0
    for epoch in range(1, args.epochs + 1):
        time.sleep(args.epoch_seconds + delay)
        valid_acc = accuracy_at(epoch, ceiling)
        print(
            f"#metrics epoch={epoch} train_loss={1 - valid_acc:.4f} train_acc={valid_acc:.4f} "
            f"valid_loss={1 - valid_acc:.4f} valid_acc={valid_acc:.4f} "
            f"epoch_time={args.epoch_seconds:.2f} images_per_sec=100.0",
            flush=True,
        )
    model_dir = os.environ.get("SM_MODEL_DIR", "/opt/ml/model")
    with open(os.path.join(model_dir, "model.json"), "w") as handle:
        json.dump({"ceiling": ceiling, "hyperparameters": vars(args)}, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
