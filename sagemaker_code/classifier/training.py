"""The epoch loop: train steps, evaluation, the ``#metrics`` lines and the best weights.

The metrics line is a contract with the tuner and the DAG (MetricDefinitions regexes such as
``valid_acc=([0-9.]+)``); ``EpochResult.metrics_line`` is its only writer::

    #metrics epoch=1 train_loss=1.2345 train_acc=0.5000 valid_loss=1.1000 valid_acc=0.6250
    epoch_time=3.21 images_per_sec=45.6

(one line, shown on two here).
``epoch_time`` is the epoch's wall time (training and validation, seconds) and
``images_per_sec`` the training pictures of all workers per second of training.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from classifier.data import BatchLoader, augment
from classifier.debugger import DebuggerHook
from classifier.distributed import Cluster, sum_over_workers
from classifier.images import normalize


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    train_loss: float
    train_acc: float
    valid_loss: float
    valid_acc: float
    epoch_time: float
    images_per_sec: float

    def metrics_line(self) -> str:
        return (
            f"#metrics epoch={self.epoch} train_loss={self.train_loss:.4f} "
            f"train_acc={self.train_acc:.4f} valid_loss={self.valid_loss:.4f} "
            f"valid_acc={self.valid_acc:.4f} epoch_time={self.epoch_time:.2f} "
            f"images_per_sec={self.images_per_sec:.1f}"
        )


def make_optimizer(
    name: str, parameters: list[nn.Parameter], lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """``adam``, ``adamw`` or ``sgd`` (Nesterov momentum 0.9) over ``parameters``.

    Frozen parameters may be included: optimizers skip parameters without a gradient.
    """
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(
        parameters, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay
    )


def grad_scaler(device_type: str, enabled: bool):
    """The loss scaler of float16 training, on the torch of either supported image.

    ``torch.amp.GradScaler`` exists from torch 2.3; the default image (torch 2.0.1) has only
    ``torch.cuda.amp.GradScaler``, which newer torch deprecates.
    """
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler(device_type, enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)


class Trainer:
    """Runs training and evaluation passes of one network on one worker.

    On a GPU it uses mixed precision (bfloat16, or float16 with loss scaling on GPUs without
    bfloat16) and channels-last memory; on a CPU plain float32.
    """

    def __init__(
        self,
        network: nn.Module,
        criterion: nn.Module,
        optimizer: torch.optim.Optimizer,
        hook: DebuggerHook,
        cluster: Cluster,
        seed: int = 0,
    ) -> None:
        self.network = network
        self.criterion = criterion
        self.optimizer = optimizer
        self.hook = hook
        self.cluster = cluster
        device = cluster.device
        self.on_gpu = device.type == "cuda"
        # float16 only on GPUs without bfloat16; on a CPU autocast is off (and takes only bfloat16).
        loss_scaling = self.on_gpu and not torch.cuda.is_bf16_supported()
        self.autocast_dtype = torch.float16 if loss_scaling else torch.bfloat16
        self.scaler = grad_scaler(device.type, enabled=loss_scaling)
        self.augmentation_rng = torch.Generator().manual_seed(seed * 1009 + cluster.rank)
        if self.on_gpu:
            self.network.to(memory_format=torch.channels_last)

    def _prepare(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        batch = normalize(images)
        if train:
            batch = augment(batch, self.augmentation_rng)
        if self.on_gpu:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    def _autocast(self) -> torch.autocast:
        return torch.autocast(
            self.cluster.device.type, dtype=self.autocast_dtype, enabled=self.on_gpu
        )

    def train_epoch(self, module: nn.Module, loader: BatchLoader) -> tuple[float, float, float]:
        """One pass over ``loader`` with ``module`` (the network, or its DDP wrapper).

        Returns (mean loss, accuracy, training pictures per second), over all workers.
        """
        self.hook.set_mode("train")
        module.train()
        totals = torch.zeros(3, device=self.cluster.device)  # loss sum, correct, count
        started = time.perf_counter()
        for images, labels in loader:
            batch = self._prepare(images, train=True)
            with self._autocast():
                logits = module(batch)
                loss = self.criterion(logits, labels)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            totals += _batch_totals(logits, labels, loss)
        totals = sum_over_workers(totals, self.cluster)
        seconds = time.perf_counter() - started
        loss_sum, correct, count = totals.tolist()
        return loss_sum / count, correct / count, count / seconds

    def evaluate(self, loader: BatchLoader, mode: str = "eval") -> tuple[float, float]:
        """(mean loss, accuracy) of the network over ``loader``, summed over all workers.

        ``mode`` is the Debugger mode the losses are recorded under: ``eval`` for
        validation, ``predict`` for the final test pass.
        """
        self.hook.set_mode(mode)
        self.network.eval()
        totals = torch.zeros(3, device=self.cluster.device)
        with torch.no_grad():
            for images, labels in loader:
                with self._autocast():
                    logits = self.network(self._prepare(images, train=False))
                    loss = self.criterion(logits, labels)
                totals += _batch_totals(logits, labels, loss)
        loss_sum, correct, count = sum_over_workers(totals, self.cluster).tolist()
        return loss_sum / count, correct / count


def _batch_totals(logits: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
    """(loss sum, correct, count) of a batch, kept on the device: no sync per step."""
    count = labels.new_tensor(labels.numel(), dtype=torch.float32)
    correct = (logits.argmax(dim=1) == labels).sum().float()
    return torch.stack([loss.detach().float() * count, correct, count])


class BestWeights:
    """The network weights of the epoch with the best validation accuracy (then loss)."""

    def __init__(self) -> None:
        self.score: tuple[float, float] | None = None
        self.epoch = 0
        self.state: dict[str, torch.Tensor] | None = None

    def offer(self, network: nn.Module, result: EpochResult) -> None:
        score = (result.valid_acc, -result.valid_loss)
        if self.score is None or score > self.score:
            self.score, self.epoch = score, result.epoch
            # A copy: on a CPU, .cpu() would alias the tensors the optimizer keeps updating.
            self.state = {
                k: v.detach().to("cpu", copy=True) for k, v in network.state_dict().items()
            }

    def as_dict(self) -> dict:
        return {"score": self.score, "epoch": self.epoch, "state": self.state}

    @classmethod
    def from_dict(cls, saved: dict) -> BestWeights:
        best = cls()
        best.score = tuple(saved["score"]) if saved["score"] is not None else None
        best.epoch, best.state = saved["epoch"], saved["state"]
        return best
