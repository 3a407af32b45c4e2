"""How close the training pipeline runs to the bare network, and what the picture cache saves.

Measures, on the same batches, backbone, device and threads:

1. bare: forward + loss + backward + optimizer step on one ready float batch, in a loop;
2. pipeline: ``Trainer.train_epoch`` over a ``BatchLoader`` on the uint8 cache, i.e. gather,
   normalisation, augmentation, the step and the metric bookkeeping train.py runs;
3. input only: a batch from the cache (gather + normalise + augment) against decoding the
   same pictures from their files, which a loader without the cache does every epoch.

Prints the best img/s of each and the median of the per-round ratios pipeline / bare
(target >= 0.9) and writes the numbers as JSON to
``benchmarks/results/training.json``. Run with the container environment, from the repo root::

    .venvs/container/bin/python benchmarks/bench_training.py [--backbone resnet18] [--size 128]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT / "sagemaker_code"), str(REPO_ROOT)]

from classifier.data import BatchLoader, ImageSet, augment, list_classes, load_split  # noqa: E402
from classifier.debugger import DebuggerHook  # noqa: E402
from classifier.distributed import Cluster  # noqa: E402
from classifier.images import load_image, normalize  # noqa: E402
from classifier.models import build_model  # noqa: E402
from classifier.training import Trainer, make_optimizer  # noqa: E402

from demo.dataset import make_dataset  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results" / "training.json"


class Timing(NamedTuple):
    wall: float
    cpu: float


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--size", type=int, default=128, help="picture side in pixels")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=12, help="timed steps per measurement")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare/pipeline rounds")
    return parser.parse_args()


def timed(run: Callable[[], object]) -> Timing:
    """Wall and CPU seconds of ``run()``: on a shared machine the CPU time of this process is
    the steadier measure of work done, the wall time what a job would see here and now."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


def bare_steps(
    network: nn.Module, optimizer: torch.optim.Optimizer, batch: torch.Tensor, labels, steps: int
) -> Timing:
    criterion = nn.CrossEntropyLoss()
    network.train()

    def step() -> None:
        loss = criterion(network(batch), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up: allocator and kernels
    return timed(lambda: [step() for _ in range(steps)])


def pipeline_epoch(trainer: Trainer, image_set: ImageSet, batch_size: int) -> Timing:
    loader = BatchLoader(image_set, batch_size, shuffle=True, device=trainer.cluster.device)
    return timed(lambda: trainer.train_epoch(trainer.network, loader))


def input_images_per_second(image_set: ImageSet, files: list[Path], size: int, batch: int) -> dict:
    """Per-epoch input cost: the cache path against decoding every file again."""
    generator = torch.Generator().manual_seed(0)
    batches = torch.randperm(len(image_set)).split(batch)
    cached = timed(lambda: [augment(normalize(image_set.images[i]), generator) for i in batches])
    decoded = timed(lambda: [load_image(path, size) for path in files])
    return {
        "cached_gather_augment_cpu": len(image_set) / cached.cpu,
        "decode_from_files_cpu": len(files) / decoded.cpu,
    }


def summarise(
    rounds: list[tuple[Timing, Timing]], bare_pictures: int, pipeline_pictures: int
) -> dict:
    """Best img/s of each side and the median per-round ratio pipeline / bare, by clock."""
    summary = {}
    for clock in ("wall", "cpu"):
        bare = [bare_pictures / getattr(b, clock) for b, _ in rounds]
        pipeline = [pipeline_pictures / getattr(p, clock) for _, p in rounds]
        ratios = sorted(p / b for b, p in zip(bare, pipeline, strict=True))
        summary[clock] = {
            "bare_img_per_s": round(max(bare), 2),
            "pipeline_img_per_s": round(max(pipeline), 2),
            "pipeline_over_bare_median": round(ratios[len(ratios) // 2], 3),
            "pipeline_over_bare_rounds": [round(r, 3) for r in ratios],
        }
    return summary


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cpu = Cluster(rank=0, world_size=1, device=torch.device("cpu"))
    count = args.batch_size * args.steps  # pictures per measurement, on both sides

    with tempfile.TemporaryDirectory() as tmp:
        per_class = -(-count // args.classes)
        root = make_dataset(Path(tmp), args.classes, {"train": per_class, "valid": 1, "test": 1},
                            image_size=int(args.size * 1.5))  # fmt: skip
        classes = list_classes(root / "train", "train")
        started = time.perf_counter()
        image_set = load_split(root / "train", "train", classes, args.size, args.threads)
        cache_seconds = time.perf_counter() - started
        files = sorted((root / "train").glob("*/*"))
        inputs = input_images_per_second(image_set, files, args.size, args.batch_size)

    network = build_model(args.backbone, len(classes))
    optimizer = make_optimizer("adam", list(network.parameters()), 1e-3, 0.0)
    batch = normalize(image_set.images[: args.batch_size])
    labels = image_set.labels[: args.batch_size]
    trainer = Trainer(network, nn.CrossEntropyLoss(), optimizer, DebuggerHook(None), cpu)
    # Alternate the two so a load change on a shared machine hits both; compare round by round.
    rounds = [
        (
            bare_steps(network, optimizer, batch, labels, args.steps),
            pipeline_epoch(trainer, image_set, args.batch_size),
        )
        for _ in range(args.rounds)
    ]

    report = {
        "backbone": args.backbone, "size": args.size, "batch_size": args.batch_size,
        "threads": args.threads, "pictures": len(image_set),
        **summarise(rounds, count, len(image_set)),
        "cache_build_s": round(cache_seconds, 2),
        "input_img_per_s": {k: round(v, 1) for k, v in inputs.items()},
    }  # fmt: skip
    print(json.dumps(report, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    cpu, wall = report["cpu"], report["wall"]
    print(
        f"training pipeline / bare step: {cpu['pipeline_over_bare_median']} by CPU time, "
        f"{wall['pipeline_over_bare_median']} by wall time (target >= 0.9)"
    )


if __name__ == "__main__":
    main()
