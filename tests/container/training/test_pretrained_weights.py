"""Where a resnet's starting weights come from when no `pretrained` channel is given."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from classifier.models import build_model, load_imagenet_weights
from sagemaker_job import JobTree, run_training


def test_imagenet_weights_come_from_torch_hubs_cache(tmp_path: Path, monkeypatch) -> None:
    """The download path of torchvision, served from its cache (nothing is downloaded here)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    imagenet = torchvision.models.get_model_weights("resnet18").DEFAULT
    cached = tmp_path / "torch" / "hub" / "checkpoints" / Path(imagenet.url).name
    cached.parent.mkdir(parents=True)
    stand_in = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(stand_in, cached)

    network = build_model("resnet18", num_classes=3)
    load_imagenet_weights(network, "resnet18")

    loaded = network.state_dict()
    assert torch.equal(loaded["layer1.0.conv1.weight"], stand_in["layer1.0.conv1.weight"])
    assert loaded["fc.weight"].shape == (3, 512)  # the head stays sized to the dataset


@pytest.mark.e2e  # runs train.py as a process
def test_a_job_that_cannot_download_them_fails_saying_what_to_do(
    tmp_path: Path, dataset: Path
) -> None:
    channels = {"train": dataset / "train", "valid": dataset / "valid"}
    hyperparameters = {"backbone": "resnet18", "epochs": "1", "image-size": "32"}
    tree = JobTree(tmp_path / "job", channels, hyperparameters).write()
    # An unusable proxy makes the download fail here and on machines with internet alike.
    offline = {"TORCH_HOME": str(tmp_path / "empty"), "HTTPS_PROXY": "http://127.0.0.1:9",
               "https_proxy": "http://127.0.0.1:9"}  # fmt: skip

    result = run_training(tree, extra_env=offline)

    assert result.returncode == 1
    assert "could not get the ImageNet weights of resnet18" in tree.failure()
    assert "'pretrained' channel" in tree.failure()


@pytest.mark.e2e  # runs train.py as a process
@pytest.mark.parametrize("backbone", ["resnet18", "simplecnn"])
def test_none_and_simplecnn_start_from_scratch_without_downloading(
    tmp_path: Path, dataset: Path, backbone: str
) -> None:
    channels = {"train": dataset / "train", "valid": dataset / "valid"}
    hyperparameters = {"backbone": backbone, "epochs": "1", "image-size": "32",
                       "freeze": "full", "pretrained-weights": "none"}  # fmt: skip
    if backbone == "simplecnn":
        hyperparameters.pop("pretrained-weights")  # simplecnn has no ImageNet weights at all
    tree = JobTree(tmp_path / "job", channels, hyperparameters).write()

    result = run_training(tree, extra_env={"HTTPS_PROXY": "http://127.0.0.1:9"})

    assert result.returncode == 0, result.stderr
    assert "#metrics epoch=1" in result.stdout
