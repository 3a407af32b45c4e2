"""The rule benchmark's planted faults: sagemaker_code/train.py with one thing broken on purpose.

benchmarks/bench_rules.py ships this file in the source dir beside train.py and names it as the
entry point (`sagemaker_program`) of the runs whose fault is not a plain setting. The `fault`
hyperparameter picks what to break; then train.py runs unchanged:

- dead-activations: every normalisation layer's bias starts at -50, so every ReLU input is
  negative, every ReLU outputs 0 and passes no gradient back (VanishingGradient's fault);
- zero-init: every convolution and linear weight starts at 0 (PoorWeightInitialization's);
- frozen: the optimizer's learning rate is 0: no weight moves, the loss cannot fall
  (LossNotDecreasing's).
"""

from __future__ import annotations

import argparse
import sys

import torch
import train
from torch import nn

NORMALISATIONS = (nn.BatchNorm2d, nn.GroupNorm)
WEIGHTED = (nn.Conv2d, nn.Linear)


def dead_activations(network: nn.Module) -> None:
    for module in network.modules():
        if isinstance(module, NORMALISATIONS):
            nn.init.constant_(module.bias, -50.0)


def zero_init(network: nn.Module) -> None:
    for module in network.modules():
        if isinstance(module, WEIGHTED):
            nn.init.zeros_(module.weight)


def plant(fault: str) -> None:
    """Patch train.py's network or optimizer factory so the run carries `fault`."""
    if fault == "frozen":
        make_optimizer = train.make_optimizer
        train.make_optimizer = lambda name, params, lr, decay: make_optimizer(
            name, params, 0.0, 0.0
        )
        return
    breaks = {"dead-activations": dead_activations, "zero-init": zero_init}[fault]
    build_network = train.build_network

    def broken_network(env, hp, num_classes):
        network = build_network(env, hp, num_classes)
        with torch.no_grad():
            breaks(network)
        return network

    train.build_network = broken_network


if __name__ == "__main__":
    # train.py reports `--fault` as an unknown hyperparameter and ignores it.
    parser = argparse.ArgumentParser()
    parser.add_argument("--fault", type=lambda text: text.strip('"'), required=True)
    fault = parser.parse_known_args(sys.argv[1:])[0].fault
    print(f"planted fault: {fault}", flush=True)
    plant(fault)
    train.main(sys.argv[1:])
