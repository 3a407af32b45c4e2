"""Fixtures for the explanation tests: a model trained for seconds on the demo's generated data."""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import pytest

# The training tests' job runner: explanations are tested on what a real training run produced.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from sagemaker_job import CODE_DIR, JobTree, run_training  # beside training/

from demo.dataset import make_dataset  # the repository root is importable now

if str(CODE_DIR) not in sys.path:
    sys.path.insert(0, str(CODE_DIR))  # as /opt/ml/processing/input/code is in the job

# The local profile's model (include/local.yaml): simplecnn on 64 px pictures, 4 classes.
DEMO_HYPERPARAMETERS = {
    "backbone": "simplecnn", "epochs": "4", "batch-size": "8", "image-size": "64",
    "freeze": "full", "lr": "0.003",
}  # fmt: skip


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo dataset's layout and drawings, 4 classes of 24/8 train/valid pictures."""
    return make_dataset(
        tmp_path_factory.mktemp("dataset"), images_per_class={"train": 24, "valid": 8, "test": 1}
    )


@pytest.fixture(scope="session")
def model_archive(tmp_path_factory: pytest.TempPathFactory, dataset: Path) -> Path:
    """A folder holding the model.tar.gz of a demo-sized training job, as the explanation
    job's `model` input receives it."""
    job = tmp_path_factory.mktemp("training-job")
    channels = {"train": dataset / "train", "valid": dataset / "valid"}
    tree = JobTree(job / "opt", channels, DEMO_HYPERPARAMETERS).write()
    result = run_training(tree)
    assert result.returncode == 0, result.stderr
    folder = job / "model-input"
    folder.mkdir()
    with tarfile.open(folder / "model.tar.gz", "w:gz") as tar:
        tar.add(tree.model_dir, arcname=".")
    return folder
