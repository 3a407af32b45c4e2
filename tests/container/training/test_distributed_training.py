"""Two hosts, one process each, data parallel over Gloo on loopback, as the runtime runs it."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
import torch
from sagemaker_job import METRICS_LINE, JobTree, start_training

pytestmark = pytest.mark.e2e  # starts real processes

HOSTS = ("algo-1", "algo-2")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_hosts_train_one_model_and_only_the_master_reports_and_saves(
    tmp_path: Path, dataset: Path
) -> None:
    hyperparameters = {
        "backbone": "simplecnn", "epochs": "2", "batch-size": "8", "image-size": "32",
        "freeze": "full",
    }  # fmt: skip
    channels = {name: dataset / name for name in ("train", "valid", "test")}
    rendezvous = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    trees = [
        JobTree(tmp_path / host, channels, hyperparameters, HOSTS, host).write() for host in HOSTS
    ]

    processes = [start_training(tree, extra_env=rendezvous) for tree in trees]
    outputs = [process.communicate(timeout=240) for process in processes]

    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    master_out, worker_out = outputs[0][0], outputs[1][0]
    assert [m.group(1) for m in re.finditer(METRICS_LINE, master_out)] == ["1", "2"]
    assert "#metrics" not in worker_out  # one metric stream, or Hyperband would see two
    assert (trees[0].model_dir / "model.pt").is_file()
    assert not (trees[1].model_dir / "model.pt").exists()
    saved = torch.load(trees[0].model_dir / "model.pt", weights_only=True)
    assert not any(name.startswith("module.") for name in saved["state_dict"])
