"""Fixtures for the inference tests: model directories as a training job leaves them."""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import pytest

# The training tests' job runner: inference is tested on what a real training run produced.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from sagemaker_job import CODE_DIR, JobTree, make_small_dataset, run_training  # beside training/

if str(CODE_DIR) not in sys.path:
    sys.path.insert(0, str(CODE_DIR))  # as <model dir>/code is for the serving toolkit

from classifier.artifact import save_model
from classifier.models import build_model

CLASS_NAMES = ["001.Affenpinscher", "002.Afghan_hound", "003.Airedale_terrier"]


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_small_dataset(tmp_path_factory.mktemp("dataset"))


@pytest.fixture(scope="session")
def untrained_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, randomly initialised simplecnn saved as training saves it (32 px, 3 classes)."""
    model_dir = tmp_path_factory.mktemp("untrained-model")
    save_model(
        model_dir,
        build_model("simplecnn", len(CLASS_NAMES)),
        backbone="simplecnn",
        class_names=CLASS_NAMES,
        image_size=32,
    )
    return model_dir


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory, dataset: Path) -> Path:
    """model.tar.gz of a 4-epoch simplecnn training job, extracted where an endpoint would."""
    job = tmp_path_factory.mktemp("training-job")
    hyperparameters = {
        "backbone": "simplecnn", "epochs": "4", "batch-size": "12", "image-size": "32",
        "freeze": "full", "lr": "0.003",
    }  # fmt: skip
    channels = {"train": dataset / "train", "valid": dataset / "valid"}
    tree = JobTree(job / "opt", channels, hyperparameters).write()
    result = run_training(tree)
    assert result.returncode == 0, result.stderr
    archive = job / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree.model_dir, arcname=".")
    model_dir = job / "endpoint" / "model"
    model_dir.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(model_dir, filter="data")
    return model_dir
