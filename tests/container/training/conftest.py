"""Fixtures for the training tests: a tiny generated dataset and the code dir on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sagemaker_job import (  # beside this file
    CODE_DIR,
    FAST_HYPERPARAMETERS,
    FinishedJob,
    JobTree,
    hook_config,
    make_small_dataset,
    run_training,
)

if str(CODE_DIR) not in sys.path:
    sys.path.insert(0, str(CODE_DIR))  # as /opt/ml/code is in a container


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_small_dataset(tmp_path_factory.mktemp("dataset"))


@pytest.fixture(scope="session")
def finished_job(tmp_path_factory: pytest.TempPathFactory, dataset: Path) -> FinishedJob:
    """One 2-epoch simplecnn job run with arguments, a Debugger hook and checkpoints.

    Several tests read its outputs (stdout, model dir, tensors, checkpoint), so the suite
    pays for one training process instead of one per aspect.
    """
    base = tmp_path_factory.mktemp("finished-job")
    channels = {name: dataset / name for name in ("train", "valid", "test")}
    tree = JobTree(base / "opt", channels, {**FAST_HYPERPARAMETERS, "epochs": "2"}).write()
    tree.add_config("debughookconfig.json", hook_config(base / "tensors"))
    tree.add_config("checkpointconfig.json", {"LocalPath": str(base / "checkpoints")})
    result = run_training(tree)
    assert result.returncode == 0, result.stderr
    return FinishedJob(tree, result, base / "tensors", base / "checkpoints")
