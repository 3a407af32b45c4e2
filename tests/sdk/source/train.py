"""A notebook user's tiny PyTorch script: trains a linear classifier on the ``train`` channel's
CSV (with the Debugger hook when the job configures one), prints metrics, and serves predictions.

Training runs as ``python train.py --epochs N --lr X`` (script mode); serving imports this module
for ``model_fn``/``predict_fn`` (the inference toolkit's handler chain).
"""

import argparse
import os
from pathlib import Path

import torch
from torch import nn


def load_csv(folder: str) -> tuple[torch.Tensor, torch.Tensor]:
    rows = [
        [float(value) for value in line.split(",")]
        for path in sorted(Path(folder).glob("*.csv"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    table = torch.tensor(rows)
    return table[:, 1:], table[:, 0].long()


def train(epochs: int, lr: float) -> None:
    import smdebug.pytorch as smd

    torch.manual_seed(0)
    features, labels = load_csv(os.environ["SM_CHANNEL_TRAIN"])
    model = nn.Linear(features.shape[1], 2)
    loss_function = nn.CrossEntropyLoss()
    try:
        hook = smd.Hook.create_from_json_file()
    except FileNotFoundError:  # the job has no DebugHookConfig: train without Debugger
        hook = None
    if hook is not None:
        hook.register_module(model)
        hook.register_loss(loss_function)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for epoch in range(epochs):
        if hook is not None:
            hook.set_mode(smd.modes.TRAIN)
        for start in range(0, len(labels), 8):
            optimizer.zero_grad()
            loss = loss_function(model(features[start : start + 8]), labels[start : start + 8])
            loss.backward()
            optimizer.step()
        if hook is not None:
            hook.set_mode(smd.modes.EVAL)
        with torch.no_grad():
            valid_loss = loss_function(model(features), labels).item()
        print(f"epoch={epoch + 1} train_loss={loss.item():.4f} valid_loss={valid_loss:.4f}")
    torch.save(model.state_dict(), Path(os.environ["SM_MODEL_DIR"]) / "model.pt")


def model_fn(model_dir: str) -> nn.Module:
    state = torch.load(Path(model_dir) / "model.pt")
    model = nn.Linear(state["weight"].shape[1], 2)
    model.load_state_dict(state)
    return model.eval()


def predict_fn(data, model: nn.Module) -> list[int]:
    with torch.no_grad():
        return model(torch.tensor(data, dtype=torch.float32)).argmax(dim=1).tolist()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.1)
    arguments, _ = parser.parse_known_args()
    train(arguments.epochs, arguments.lr)
