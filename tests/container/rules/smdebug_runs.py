"""Real smdebug output for the rule tests: tiny torch models trained with ``smdebug.pytorch.Hook``.

(``conftest.py`` puts ``sagemaker_code/`` on sys.path for the tests beside it.)

``record_training`` trains a small MLP on Gaussian blobs, saving the collections the built-in
rules read (losses, gradients, weights, biases, relu_input) in TRAIN and EVAL mode, exactly as
a training script with a Debugger hook does. Each scenario tweaks one thing (learning rate,
initial weights, frozen body, labels) so that one rule has a reason to fire.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import smdebug.pytorch as smd
import torch
from smdebug.core.reduction_config import ReductionConfig
from smdebug.core.save_config import SaveConfig
from torch import nn

SAGEMAKER_CODE = Path(__file__).resolve().parents[3] / "sagemaker_code"

COLLECTIONS = ["losses", "gradients", "weights", "biases", "relu_input"]


class Block(nn.Module):
    """Linear + ReLU; the ReLU is an attribute named ``relu`` so its input matches .*relu_input."""

    def __init__(self, inputs: int, outputs: int):
        super().__init__()
        self.fc = nn.Linear(inputs, outputs)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.fc(x))


def mlp(inputs: int, hidden: int, depth: int, classes: int) -> nn.Sequential:
    """``depth`` ReLU blocks and a linear head, He-initialised (keeps activation variance flat)."""
    blocks = [Block(inputs if i == 0 else hidden, hidden) for i in range(depth)]
    model = nn.Sequential(*blocks, nn.Linear(hidden, classes))
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return model


def blobs(samples: int, classes: int, features: int, spread: float, seed: int):
    """Gaussian class blobs: class c is centred on a fixed random point, noise ``spread``."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, features, generator=torch.Generator().manual_seed(99)) * 2
    labels = torch.randint(0, classes, (samples,), generator=generator)
    points = centres[labels] + spread * torch.randn(samples, features, generator=generator)
    return points, labels


@dataclass
class Scenario:
    """What to train; defaults give a healthy, still-learning run."""

    lr: float = 0.01
    optimizer: str = "adam"
    epochs: int = 3
    batch_size: int = 8
    train_samples: int = 64
    valid_samples: int = 32
    depth: int = 2
    hidden: int = 16
    spread: float = 1.5
    init_scale: float = 1.0
    freeze_body: bool = False
    random_train_labels: bool = False
    weight_decay: float = 0.0
    save_interval: int = 1
    # Save each gradient's mean absolute value only (CollectionParameters reductions: abs_mean).
    gradient_abs_mean_only: bool = False


def record_training(out_dir: Path, scenario: Scenario) -> Path:
    """Train per ``scenario`` with an smdebug hook writing to ``out_dir``; returns ``out_dir``."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    features, classes = 8, 3
    x_train, y_train = blobs(scenario.train_samples, classes, features, scenario.spread, 1)
    x_valid, y_valid = blobs(scenario.valid_samples, classes, features, scenario.spread, 2)
    if scenario.random_train_labels:
        y_train = torch.randint(
            0, classes, y_train.shape, generator=torch.Generator().manual_seed(3)
        )
    model = mlp(features, scenario.hidden, scenario.depth, classes)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(scenario.init_scale)
    trainable = model.parameters()
    if scenario.freeze_body:
        for parameter in model[:-1].parameters():
            parameter.requires_grad_(False)
        trainable = model[-1].parameters()
    optimizer_class = torch.optim.Adam if scenario.optimizer == "adam" else torch.optim.SGD
    optimizer = optimizer_class(trainable, lr=scenario.lr, weight_decay=scenario.weight_decay)

    hook = smd.Hook(
        out_dir=str(out_dir),
        save_config=SaveConfig(save_interval=scenario.save_interval),
        include_collections=COLLECTIONS,
    )
    hook.get_collection("relu_input").include(".*relu_input")
    if scenario.gradient_abs_mean_only:
        hook.get_collection("gradients").reduction_config = ReductionConfig(abs_reductions=["mean"])
    hook.register_module(model)
    loss_function = nn.CrossEntropyLoss()
    hook.register_loss(loss_function)
    for _ in range(scenario.epochs):
        hook.set_mode(smd.modes.TRAIN)
        model.train()
        for start in range(0, len(x_train), scenario.batch_size):
            batch = slice(start, start + scenario.batch_size)
            optimizer.zero_grad()
            loss = loss_function(model(x_train[batch]), y_train[batch])
            loss.backward()
            optimizer.step()
        hook.set_mode(smd.modes.EVAL)
        model.eval()
        with torch.no_grad():
            for start in range(0, len(x_valid), scenario.batch_size):
                batch = slice(start, start + scenario.batch_size)
                loss_function(model(x_valid[batch]), y_valid[batch])
    hook.close()  # writes training_job_end.ts, the end-of-job marker the rules wait for
    return out_dir
