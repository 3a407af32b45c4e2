"""Resumable training state in SageMaker's checkpoint directory.

With a CheckpointConfig, SageMaker syncs ``/opt/ml/checkpoints`` (``LocalPath``) to S3 while
the job runs and restores it when a managed-spot job restarts. The master saves the state
after every epoch; a job that finds a checkpoint resumes after the epoch it records instead of
starting over. The file is written under a temporary name and renamed, so an interruption
never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_FILE = "checkpoint.pt"


def save_checkpoint(directory: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) atomically; returns the file."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / CHECKPOINT_FILE
    partial = target.with_suffix(".partial")
    torch.save(state, partial)
    os.replace(partial, target)
    return target


def load_checkpoint(directory: Path | None) -> dict[str, Any] | None:
    """The last saved state, or None when there is no checkpoint directory or file."""
    if directory is None or not (directory / CHECKPOINT_FILE).is_file():
        return None
    return torch.load(directory / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
