"""Data-parallel training over SageMaker's hosts with torch.distributed.

One process per host: rank = position of ``current_host`` in the sorted ``hosts``. The
rendezvous is ``MASTER_ADDR:MASTER_PORT`` when set (the local runtime sets them to
127.0.0.1 and a free port), else the first host's name and port 29500, as SageMaker's
PyTorch images do. Backend: NCCL on GPUs, Gloo on CPUs. A single host needs none of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from classifier.environment import TrainingEnvironment

DEFAULT_MASTER_PORT = "29500"
RENDEZVOUS_TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class Cluster:
    """This process's place among the training workers."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_master(self) -> bool:
        """The worker that prints metrics and writes the model, checkpoints and tensors."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def join_cluster(env: TrainingEnvironment) -> Cluster:
    """Pick the device and, on several hosts, join the process group."""
    device = torch.device("cuda" if env.num_gpus > 0 and torch.cuda.is_available() else "cpu")
    if not env.is_distributed:
        return Cluster(rank=0, world_size=1, device=device)
    rank = env.hosts.index(env.current_host)
    os.environ.setdefault("MASTER_ADDR", env.hosts[0])
    os.environ.setdefault("MASTER_PORT", DEFAULT_MASTER_PORT)
    if os.environ["MASTER_ADDR"] in ("127.0.0.1", "localhost"):
        # All workers on one machine: keep Gloo on loopback whatever the hostname resolves to.
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group(
        backend="nccl" if device.type == "cuda" else "gloo",
        init_method="env://",
        rank=rank,
        world_size=len(env.hosts),
        timeout=RENDEZVOUS_TIMEOUT,
    )
    return Cluster(rank=rank, world_size=len(env.hosts), device=device)


def wrap_for_training(model: nn.Module, cluster: Cluster) -> nn.Module:
    """The module to train: ``model`` itself, or a DDP wrapper averaging its gradients.

    Wrap again whenever the set of trainable parameters changes: DDP fixes it at wrapping.
    """
    if not cluster.is_distributed:
        return model
    device_ids = [cluster.device.index or 0] if cluster.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def sum_over_workers(values: torch.Tensor, cluster: Cluster) -> torch.Tensor:
    """Element-wise sum of ``values`` over all workers (``values`` itself on one worker)."""
    if cluster.is_distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def leave_cluster(cluster: Cluster) -> None:
    """Leave together: every worker's collectives are done before any process group goes.

    Without the barrier, torch 2.0's Gloo group could be destroyed while a worker thread was
    still releasing a finished collective's tensors, and the two deadlocked over the GIL.
    """
    if cluster.is_distributed:
        dist.barrier()
        dist.destroy_process_group()
