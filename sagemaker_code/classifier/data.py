"""The dataset: ``<split>/<NNN.Class_name>/*.jpg``, held in memory as uint8 tensors.

Where the splits come from (``locate_splits``):
- one channel per split: ``train``, ``valid`` (or ``validation``) and an optional ``test``;
- or one channel (``train`` or ``training``) whose folder holds ``train/``, ``valid/`` and
  ``test/``, as the Udacity archive unpacks.

Every picture is decoded and resized once (``load_split``, in threads: Pillow releases the
GIL) into one ``(N, 3, S, S)`` uint8 tensor. Batches are then slices of that tensor
(``BatchLoader``) and augmentation runs on whole float batches (``augment``) on the training
device, so the per-epoch input cost is a gather and one ``grid_sample`` instead of N JPEG
decodes: a DataLoader with worker processes would only add copies between processes here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from classifier.errors import TrainingError
from classifier.images import load_image

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
SPLIT_ALIASES = {
    "train": ("train", "training"),
    "valid": ("valid", "validation"),
    "test": ("test",),
}
REQUIRED_SPLITS = ("train", "valid")


def locate_splits(channels: Mapping[str, Path]) -> dict[str, Path]:
    """Split name (``train``, ``valid``, ``test``) -> folder of class folders.

    Raises ``TrainingError`` for a split channel without class folders, and naming the
    channels given when train or valid data is missing.
    """
    bundle = next((channels[n] for n in SPLIT_ALIASES["train"] if n in channels), None)
    if bundle is not None and not (bundle / "train").is_dir():
        bundle = None
    splits = {}
    for split, aliases in SPLIT_ALIASES.items():
        name = next((n for n in aliases if n in channels), None)
        if name is not None and channels[name] != bundle:
            list_classes(channels[name], name)  # fails early, naming the channel
            splits[split] = channels[name]
        elif bundle is not None:
            nested = next((bundle / n for n in aliases if (bundle / n).is_dir()), None)
            if nested is not None:
                splits[split] = nested
    missing = [split for split in REQUIRED_SPLITS if split not in splits]
    if missing:
        seen = {name: str(path) for name, path in channels.items()} or "none"
        raise TrainingError(
            f"no {' and no '.join(missing)} data: expected channels 'train' and 'valid' "
            "(or 'validation') holding class folders, or a 'train' channel holding train/ and "
            f"valid/ folders; channels given: {seen}"
        )
    return splits


def list_classes(split_dir: Path, split: str) -> list[str]:
    """Sorted class folder names of a split; ``TrainingError`` when there are none."""
    if not split_dir.is_dir():
        raise TrainingError(f"channel '{split}' is not a folder: {split_dir}")
    names = sorted(child.name for child in split_dir.iterdir() if child.is_dir())
    if not names:
        raise TrainingError(f"channel '{split}' has no class folders: {split_dir}")
    return names


@dataclass(frozen=True)
class ImageSet:
    """A split in memory: ``images`` (N, 3, S, S) uint8 and ``labels`` (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


def load_split(
    split_dir: Path, split: str, class_names: list[str], image_size: int, workers: int
) -> ImageSet:
    """Decode every picture of a split; labels index ``class_names`` (the training classes).

    Raises ``TrainingError`` for a class the training split lacks, an empty split, or a file
    that is not a readable picture (naming the file).
    """
    files, labels = list_files(split_dir, split, class_names)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        images = list(pool.map(lambda path: _load_checked(path, image_size), files))
    return ImageSet(torch.stack(images), torch.tensor(labels, dtype=torch.int64))


def list_files(split_dir: Path, split: str, class_names: list[str]) -> tuple[list, list]:
    """(picture paths, their label indices) of a split, in ``load_split``'s order."""
    index = {name: i for i, name in enumerate(class_names)}
    unknown = [name for name in list_classes(split_dir, split) if name not in index]
    if unknown:
        raise TrainingError(
            f"channel '{split}' has classes the training data lacks: {unknown} ({split_dir})"
        )
    files, labels = [], []
    for name in class_names:
        folder = split_dir / name
        if folder.is_dir():
            found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            files += found
            labels += [index[name]] * len(found)
    if not files:
        raise TrainingError(
            f"channel '{split}' has no pictures ({', '.join(sorted(IMAGE_SUFFIXES))}) "
            f"in its class folders: {split_dir}"
        )
    return files, labels


def _load_checked(path: Path, size: int) -> torch.Tensor:
    try:
        return load_image(path, size)
    except OSError as error:
        raise TrainingError(f"cannot read picture {path}: {error}") from error


@dataclass
class BatchLoader:
    """Batches of an ``ImageSet`` for one of ``world_size`` data-parallel workers.

    Training order (``shuffle=True``) is a permutation seeded by ``seed + epoch`` (call
    ``set_epoch``), identical on every worker; each worker takes every ``world_size``-th
    index, the permutation padded by wrapping so all workers run the same number of steps
    (as torch's DistributedSampler does). Evaluation order is the file order, unpadded.
    Yields ``(images uint8, labels)`` on ``device``.
    """

    image_set: ImageSet
    batch_size: int
    shuffle: bool
    device: torch.device
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> torch.Tensor:
        total = len(self.image_set)
        if not self.shuffle:
            return torch.arange(self.rank, total, self.world_size)
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(total, generator=generator)
        padded = math.ceil(total / self.world_size) * self.world_size
        order = torch.cat([order, order[: padded - total]])
        return order[self.rank :: self.world_size]

    def __len__(self) -> int:
        total = len(self.image_set)
        if self.shuffle:
            per_worker = math.ceil(total / self.world_size)
        else:
            per_worker = len(range(self.rank, total, self.world_size))
        return math.ceil(per_worker / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # Pinned host memory lets each batch's copy to the GPU overlap with compute.
        non_blocking = self.device.type == "cuda"
        for batch in self._indices().split(self.batch_size):
            images = self.image_set.images[batch]
            labels = self.image_set.labels[batch]
            if non_blocking:
                images, labels = images.pin_memory(), labels.pin_memory()
            yield (
                images.to(self.device, non_blocking=non_blocking),
                labels.to(self.device, non_blocking=non_blocking),
            )


def augment(batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop-and-rescale (70-100 % of the side), shift and horizontal flip, per picture.

    ``batch`` is a float ``(N, C, H, W)`` tensor; the result has the same shape and device.
    One affine grid for the whole batch keeps it a single vectorised operation.
    """
    n = batch.shape[0]
    rand = torch.rand(n, 4, generator=generator).to(batch.device)
    scale = 0.7 + 0.3 * rand[:, 0]
    flip = torch.where(rand[:, 1] < 0.5, -1.0, 1.0)
    # Shift the crop window anywhere inside the picture: at most (1 - scale) in grid units.
    shift_x = (1 - scale) * (2 * rand[:, 2] - 1)
    shift_y = (1 - scale) * (2 * rand[:, 3] - 1)
    theta = torch.zeros(n, 2, 3, device=batch.device)
    theta[:, 0, 0] = scale * flip
    theta[:, 0, 2] = shift_x
    theta[:, 1, 1] = scale
    theta[:, 1, 2] = shift_y
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    return F.grid_sample(
        batch, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
