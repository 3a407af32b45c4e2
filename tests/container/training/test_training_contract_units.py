"""In-process checks of the contract pieces: environment, hyperparameters, data, metrics line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from classifier.data import BatchLoader, ImageSet, augment, locate_splits
from classifier.environment import TrainingEnvironment
from classifier.errors import TrainingError
from classifier.hyperparameters import parse_hyperparameters
from classifier.images import load_image
from classifier.training import EpochResult
from PIL import Image
from sagemaker_job import METRICS_LINE, JobTree


def test_environment_reads_sm_variables(tmp_path: Path, dataset: Path) -> None:
    tree = JobTree(tmp_path, {"train": dataset / "train"}, {"lr": "0.1", "opt": '"sgd"'})
    tree.hosts, tree.current_host = ("algo-1", "algo-2"), "algo-2"
    env = TrainingEnvironment.from_environ(tree.write().toolkit_environment())

    assert env.channels == {"train": tree.channel_dir("train")}
    assert (env.hosts, env.current_host) == (["algo-1", "algo-2"], "algo-2")
    assert env.is_distributed
    assert env.hyperparameters == {"lr": 0.1, "opt": "sgd"}
    assert (env.model_dir, env.num_gpus, env.checkpoint_dir) == (tree.model_dir, 0, None)


def test_environment_falls_back_to_the_opt_ml_files(tmp_path: Path, dataset: Path) -> None:
    hyperparameters = {"epochs": "2", "sagemaker_program": '"train.py"'}
    tree = JobTree(tmp_path, {"valid": dataset / "valid"}, hyperparameters).write()
    tree.add_config("checkpointconfig.json", {"LocalPath": "/tmp/ckpt"})

    env = TrainingEnvironment.from_environ({"SAGEMAKER_BASE_DIR": str(tmp_path)})

    assert env.channels == {"valid": tree.channel_dir("valid")}
    assert env.hyperparameters == {"epochs": 2}  # platform keys are not the script's
    assert (env.output_dir, env.checkpoint_dir) == (tree.output_dir, Path("/tmp/ckpt"))
    assert (env.hosts, env.current_host) == (["algo-1"], "algo-1")


def test_hyperparameters_accept_json_encoded_values_over_environment_values() -> None:
    argv = ["--backbone", '"resnet34"', "--lr", "0.05", "--unknown", "x"]
    hp = parse_hyperparameters(argv, {"epochs": 7, "backbone": "resnet50", "freeze": "staged"})

    assert (hp.backbone, hp.lr, hp.epochs, hp.freeze) == ("resnet34", 0.05, 7, "staged")
    assert (hp.batch_size, hp.optimizer, hp.num_workers) == (32, "adam", None)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lr", "fast"], "argument --lr: invalid float value: 'fast'"),
        (["--epochs", "0"], "epochs must be >= 1, got 0"),
        (["--backbone", "vgg"], "backbone must be one of"),
    ],
)
def test_bad_hyperparameters_raise_a_training_error(argv: list[str], message: str) -> None:
    with pytest.raises(TrainingError, match=re.escape(message)):
        parse_hyperparameters(argv, {})


def test_splits_come_from_split_channels_or_from_one_bundled_channel(dataset: Path) -> None:
    separate = {"train": dataset / "train", "validation": dataset / "valid"}
    assert locate_splits(separate) == {"train": dataset / "train", "valid": dataset / "valid"}
    bundled = {"train": dataset, "test": dataset / "test"}
    assert locate_splits(bundled) == {
        "train": dataset / "train", "valid": dataset / "valid", "test": dataset / "test",
    }  # fmt: skip
    with pytest.raises(TrainingError, match="no valid data: expected channels"):
        locate_splits({"train": dataset / "train"})


def test_distributed_batches_cover_every_picture_once_per_epoch_in_equal_shares() -> None:
    image_set = ImageSet(torch.zeros(10, 3, 4, 4, dtype=torch.uint8), torch.arange(10))
    cpu = torch.device("cpu")
    loaders = [
        BatchLoader(image_set, 2, shuffle=True, device=cpu, seed=3, rank=r, world_size=3)
        for r in range(3)
    ]
    shares = [torch.cat([labels for _, labels in loader]).tolist() for loader in loaders]

    assert [len(share) for share in shares] == [4, 4, 4]  # 10 padded to 12
    assert sorted({label for share in shares for label in share}) == list(range(10))
    assert all(len(loader) == 2 for loader in loaders)
    loaders[0].set_epoch(1)
    assert torch.cat([labels for _, labels in loaders[0]]).tolist() != shares[0]


def test_augmentation_keeps_shape_and_changes_pictures() -> None:
    batch = torch.rand(4, 3, 16, 16)
    augmented = augment(batch, torch.Generator().manual_seed(0))
    assert augmented.shape == batch.shape
    assert not torch.allclose(augmented, batch)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "L", "CMYK"])
def test_any_picture_mode_becomes_a_square_rgb_uint8_tensor(tmp_path: Path, mode: str) -> None:
    path = tmp_path / ("picture.png" if mode != "CMYK" else "picture.jpg")
    Image.new("RGB", (30, 20), (200, 30, 10)).convert(mode).save(path)

    tensor = load_image(path, 16)

    assert (tensor.shape, tensor.dtype) == ((3, 16, 16), torch.uint8)
    red, blue = tensor[0].float().mean(), tensor[2].float().mean()
    assert red == blue if mode == "L" else red > blue + 100  # gray stays gray, red stays red


def test_metrics_line_has_the_documented_format() -> None:
    line = EpochResult(3, 1.23456, 0.5, 1.1, 0.625, 3.214, 45.61).metrics_line()
    assert line == (
        "#metrics epoch=3 train_loss=1.2346 train_acc=0.5000 valid_loss=1.1000 "
        "valid_acc=0.6250 epoch_time=3.21 images_per_sec=45.6"
    )
    assert re.fullmatch(METRICS_LINE, line)
    assert re.search(r"valid_acc=([0-9.]+)", line).group(1) == "0.6250"
    assert json.dumps(line)  # one line, no control characters
