"""Fixtures for the training tests: a tiny generated dataset and the code dir on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from demo.dataset import make_dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sagemaker_job import CODE_DIR

if str(CODE_DIR) not in sys.path:
    sys.path.insert(0, str(CODE_DIR))  # as /opt/ml/code is in a container


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes, 12/6/6 pictures per class in train/valid/test, 40 px JPEGs and PNGs."""
    root = tmp_path_factory.mktemp("dataset")
    return make_dataset(
        root, num_classes=3, images_per_class={"train": 12, "valid": 6, "test": 6}, image_size=40
    )
