"""The model directory SageMaker tars into ``model.tar.gz``: self-contained and self-describing.

Layout::

    model.pt               {"format": 1, "state_dict", "class_names", "backbone",
                            "image_size", "mean", "std"}   (torch.save; loads weights_only)
    code/inference.py      the handler module (SAGEMAKER_PROGRAM)
    code/classifier/       this package, which the handlers import

so an endpoint or transform job needs the archive and a PyTorch image, nothing else: no
class count or backbone to pass again, no preprocessing to re-implement.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from classifier.images import IMAGENET_MEAN, IMAGENET_STD
from classifier.models import build_model

MODEL_FILE = "model.pt"
FORMAT_VERSION = 1
# The source dir that holds train.py, inference.py and this package (/opt/ml/code in a job).
CODE_ROOT = Path(__file__).resolve().parent.parent
HANDLER_MODULE = "inference.py"


@dataclass
class Classifier:
    """A loaded model and what it needs to read pictures: the return value of ``model_fn``."""

    network: nn.Module
    class_names: list[str]
    backbone: str
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    device: torch.device


def save_model(
    model_dir: Path, network: nn.Module, *, backbone: str, class_names: list[str], image_size: int
) -> Path:
    """Write ``model.pt`` and the serving code into ``model_dir``; returns ``model.pt``'s path."""
    model_dir.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu() for name, tensor in network.state_dict().items()}
    target = model_dir / MODEL_FILE
    torch.save(
        {
            "format": FORMAT_VERSION,
            "state_dict": state,
            "class_names": list(class_names),
            "backbone": backbone,
            "image_size": image_size,
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
        },
        target,
    )
    _copy_serving_code(model_dir / "code")
    return target


def _copy_serving_code(code_dir: Path) -> None:
    code_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(CODE_ROOT / HANDLER_MODULE, code_dir / HANDLER_MODULE)
    package = Path(__file__).resolve().parent
    shutil.copytree(
        package,
        code_dir / package.name,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )


def load_model(model_dir: str | Path, device: torch.device | None = None) -> Classifier:
    """Rebuild the network from ``model.pt`` in eval mode on ``device`` (GPU when present)."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {MODEL_FILE} in the model directory {model_dir}")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path} has format {saved.get('format')}, expected {FORMAT_VERSION}")
    network = build_model(saved["backbone"], len(saved["class_names"]))
    network.load_state_dict(saved["state_dict"])
    return Classifier(
        network=network.to(device).eval(),
        class_names=list(saved["class_names"]),
        backbone=saved["backbone"],
        image_size=int(saved["image_size"]),
        mean=tuple(saved["mean"]),
        std=tuple(saved["std"]),
        device=device,
    )
