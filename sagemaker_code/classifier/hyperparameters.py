"""The training hyperparameters: names, types, defaults and allowed values.

Values arrive as ``--name value`` arguments (keys sorted, values ``str()``-ed by the toolkit),
possibly JSON-encoded by the SageMaker SDK (``--backbone '"resnet18"'``). When an argument is
absent, the value from ``SM_HPS`` / ``hyperparameters.json`` is used, then the default below,
so the script also runs with only the environment set. Unknown names are reported and ignored.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from classifier.environment import decode_hyperparameter
from classifier.errors import TrainingError
from classifier.models import BACKBONES, FREEZE_POLICIES

OPTIMIZERS = ("adam", "adamw", "sgd")
PRETRAINED_WEIGHTS = ("imagenet", "none")


@dataclass(frozen=True)
class Hyperparameters:
    """One training configuration; attribute names are the wire names with ``_`` for ``-``.

    lr, weight_decay, optimizer: the optimizer's settings (``adam``, ``adamw``, ``sgd``).
    batch_size: pictures per step on each worker. epochs: passes over the training split.
    backbone, freeze: see ``classifier.models`` (BACKBONES, FREEZE_POLICIES).
    image_size: side of the square pictures the network sees (cached once at that size).
    label_smoothing: of the cross-entropy loss, in [0, 1). seed: weights, order, augmentation.
    num_workers: threads decoding pictures into the cache (None: one per CPU).
    pretrained_weights: a resnet's starting weights when there is no ``pretrained`` channel:
    ``imagenet`` (torchvision's) or ``none`` (from scratch). simplecnn always starts fresh.
    """

    lr: float
    batch_size: int
    epochs: int
    weight_decay: float
    backbone: str
    freeze: str
    image_size: int
    label_smoothing: float
    optimizer: str
    seed: int
    num_workers: int | None
    pretrained_weights: str


def _decoded(kind: Callable[[Any], Any]) -> Callable[[str], Any]:
    """An argparse ``type`` that JSON-decodes first, so ``'"adam"'`` and ``adam`` both work."""

    def convert(text: str) -> Any:
        return kind(decode_hyperparameter(text))

    convert.__name__ = kind.__name__  # argparse names the type in its error messages
    return convert


# name, type, default
_SPEC: tuple[tuple[str, Callable[[Any], Any], Any], ...] = (
    ("lr", float, 1e-3),
    ("batch-size", int, 32),
    ("epochs", int, 3),
    ("weight-decay", float, 0.0),
    ("backbone", str, "resnet18"),
    ("freeze", str, "head"),
    ("image-size", int, 224),
    ("label-smoothing", float, 0.0),
    ("optimizer", str, "adam"),
    ("seed", int, 0),
    ("num-workers", int, None),
    ("pretrained-weights", str, "imagenet"),
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would exit 2 without a failure file
        raise TrainingError(f"bad hyperparameter: {message}")


def parse_hyperparameters(
    argv: Sequence[str], from_environment: Mapping[str, Any]
) -> Hyperparameters:
    """Parse ``argv`` over the environment's values and the defaults; check the ranges."""
    parser = _Parser(prog="train.py", description="Train the image classifier.")
    for name, kind, default in _SPEC:
        convert = _decoded(kind)
        if name in from_environment:
            default = _convert_environment_value(name, convert, from_environment[name])
        parser.add_argument(f"--{name}", type=convert, default=default)
    known, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"ignoring unknown hyperparameter arguments: {unknown}", file=sys.stderr)
    hyperparameters = Hyperparameters(**vars(known))
    _check_ranges(hyperparameters)
    return hyperparameters


def _convert_environment_value(name: str, convert: Callable[[str], Any], value: Any) -> Any:
    try:
        return convert(str(value))
    except ValueError as error:
        raise TrainingError(
            f"bad hyperparameter {name}={value!r} in the environment: {error}"
        ) from error


def _check_ranges(hp: Hyperparameters) -> None:
    problems = [
        f"{name} must be {rule}, got {value}"
        for name, value, ok, rule in (
            ("lr", hp.lr, hp.lr > 0, "> 0"),
            ("batch-size", hp.batch_size, hp.batch_size >= 1, ">= 1"),
            ("epochs", hp.epochs, hp.epochs >= 1, ">= 1"),
            ("weight-decay", hp.weight_decay, hp.weight_decay >= 0, ">= 0"),
            ("image-size", hp.image_size, hp.image_size >= 16, ">= 16"),
            ("label-smoothing", hp.label_smoothing, 0 <= hp.label_smoothing < 1, "in [0, 1)"),
            ("backbone", hp.backbone, hp.backbone in BACKBONES, f"one of {BACKBONES}"),
            ("freeze", hp.freeze, hp.freeze in FREEZE_POLICIES, f"one of {FREEZE_POLICIES}"),
            ("optimizer", hp.optimizer, hp.optimizer in OPTIMIZERS, f"one of {OPTIMIZERS}"),
            (
                "pretrained-weights",
                hp.pretrained_weights,
                hp.pretrained_weights in PRETRAINED_WEIGHTS,
                f"one of {PRETRAINED_WEIGHTS}",
            ),
        )
        if not ok
    ]
    if problems:
        raise TrainingError("bad hyperparameters: " + "; ".join(problems))
