"""The smdebug hook: what the Debugger rules will read from a training job's tensors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
from classifier.debugger import HOOK_CONFIG_VARIABLE, DebuggerHook
from classifier.errors import TrainingError
from classifier.models import build_model, inert_parameters, load_backbone_weights, set_trainable
from sagemaker_job import FAST_HYPERPARAMETERS, FinishedJob, JobTree, hook_config, run_training
from smdebug import modes
from smdebug.trials import create_trial

LOSS = "CrossEntropyLoss_output_0"


@pytest.mark.e2e  # runs train.py as a process
def test_simplecnn_saves_train_and_eval_losses_relu_inputs_and_gradients(
    finished_job: FinishedJob,
) -> None:
    trial = create_trial(str(finished_job.tensors))

    # 36 training pictures in batches of 16: 3 steps per epoch; 18 validation pictures: 2.
    assert trial.tensor(LOSS).steps(mode=modes.TRAIN) == list(range(6))
    assert trial.tensor(LOSS).steps(mode=modes.EVAL) == list(range(4))
    assert trial.tensor(LOSS).steps(mode=modes.PREDICT) == [0, 1]  # the test split
    relu_inputs = trial.tensor_names(regex=".*relu_input")
    assert relu_inputs == [f"features.{i}.relu_input_0" for i in range(3)]
    assert trial.tensor_names(collection="gradients")
    assert (finished_job.tensors / "training_job_end.ts").exists()


@pytest.mark.e2e  # runs train.py as a process
@pytest.mark.parametrize(
    ("backbone", "name"),
    [("resnet18", "layer1.0.relu_input_0"), ("mobilenet_v2", "features.1.conv.0.2.relu_input_0")],
)
def test_a_torchvision_backbone_from_the_pretrained_channel_records_true_relu_inputs(
    tmp_path: Path, dataset: Path, backbone: str, name: str
) -> None:
    """torchvision's ReLUs (mobilenet_v2's ReLU6s) are in-place: the hook must see their
    inputs, not their outputs; mobilenet_v2's are found under the ``relu_input`` regex too."""
    weights = tmp_path / "pretrained" / f"{backbone}.pth"
    weights.parent.mkdir()
    torch.save(getattr(torchvision.models, backbone)(weights=None).state_dict(), weights)
    channels = {
        "train": dataset / "train", "valid": dataset / "valid", "pretrained": weights.parent,
    }  # fmt: skip
    hyperparameters = {
        "backbone": backbone, "epochs": "1", "batch-size": "18", "image-size": "32",
        "freeze": "full",
    }  # fmt: skip

    tensors = tmp_path / "tensors"
    tree = JobTree(tmp_path / "job", channels, hyperparameters).write()
    tree.add_config("debughookconfig.json", hook_config(tensors))
    result = run_training(tree)

    assert result.returncode == 0, result.stderr
    trial = create_trial(str(tensors))

    first_step = trial.tensor(name).steps()[0]
    assert trial.tensor(name).value(first_step).min() < 0  # an input; a ReLU output is >= 0
    assert trial.tensor_names(regex=".*relu_input")  # every block's ReLU is there
    assert trial.tensor(LOSS).steps(mode=modes.EVAL) == [0]
    gradients = trial.tensor_names(collection="gradients")
    trained = [n for n, p in build_model(backbone, 3).named_parameters() if p.requires_grad]
    assert len(gradients) == len(trained)  # the backbone's too, but never an inert one
    assert not [
        g for g in gradients if g.endswith(tuple(inert_parameters(build_model(backbone, 3))))
    ]


@pytest.mark.e2e  # runs train.py as a process
def test_without_debugger_the_hook_builds_from_the_environment_into_the_checkpoint_dir(
    tmp_path: Path, dataset: Path
) -> None:
    """rules.engine processing: no debughookconfig.json, the collections in the Environment."""
    channels = {name: dataset / name for name in ("train", "valid")}
    tree = JobTree(tmp_path / "job", channels, {**FAST_HYPERPARAMETERS, "epochs": "1"}).write()
    checkpoints = tmp_path / "checkpoints"
    tree.add_config("checkpointconfig.json", {"LocalPath": str(checkpoints)})
    collections = {"CollectionConfigurations": hook_config(tmp_path)["CollectionConfigurations"]}
    result = run_training(tree, extra_env={HOOK_CONFIG_VARIABLE: json.dumps(collections)})

    assert result.returncode == 0, result.stderr
    assert not (tree.config_dir / "debughookconfig.json").exists()
    tensors = checkpoints / "debug-output"
    trial = create_trial(str(tensors))
    assert trial.tensor(LOSS).steps(mode=modes.TRAIN) == [0, 1, 2]
    assert trial.tensor(LOSS).steps(mode=modes.EVAL) == [0, 1]
    assert trial.tensor_names(regex=".*relu_input")
    assert trial.tensor_names(collection="gradients")
    assert (tensors / "training_job_end.ts").exists()
    assert (checkpoints / "checkpoint.pt").is_file()  # the checkpoint beside, not over, them


def test_a_hook_config_without_a_checkpoint_dir_is_refused(tmp_path: Path) -> None:
    environ = {HOOK_CONFIG_VARIABLE: json.dumps({"CollectionConfigurations": []})}
    with pytest.raises(TrainingError, match="no CheckpointConfig"):
        DebuggerHook.from_job(tmp_path, checkpoint_dir=None, environ=environ)


def test_without_a_config_file_or_variable_the_hook_is_disabled(tmp_path: Path) -> None:
    hook = DebuggerHook.from_job(tmp_path, checkpoint_dir=tmp_path, environ={})
    assert not hook.enabled


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    weights = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), weights)

    with pytest.raises(TrainingError, match="does not fit the ResNet backbone"):
        load_backbone_weights(build_model("resnet18", num_classes=3), weights)


def test_mobilenet_v2_takes_torchvisions_weights_and_trains_its_own_head(tmp_path: Path) -> None:
    weights = tmp_path / "mobilenet_v2.pth"
    stand_in = torchvision.models.mobilenet_v2(weights=None).state_dict()
    torch.save(stand_in, weights)
    network = build_model("mobilenet_v2", num_classes=3)

    load_backbone_weights(network, weights)
    set_trainable(network, "head")

    loaded = network.state_dict()
    assert torch.equal(loaded["features.18.0.weight"], stand_in["features.18.0.weight"])
    assert loaded["classifier.1.weight"].shape == (3, 1280)  # sized to the dataset
    trained = [name for name, p in network.named_parameters() if p.requires_grad]
    assert trained == ["classifier.1.weight", "classifier.1.bias"]


def test_mobilenet_v2s_bottleneck_biases_cannot_change_the_loss_and_are_never_trained() -> None:
    """What VanishingGradient read as vanishing gradients on every mobilenet_v2 trained in full
    is exact: in float64 those biases' gradients are zero to rounding, the others' are not."""
    torch.manual_seed(0)
    network = build_model("mobilenet_v2", num_classes=4).double().train()
    inert = inert_parameters(network)
    assert len(inert) == 17  # one per inverted residual block
    assert inert_parameters(build_model("resnet18", 4)) == set()
    assert inert_parameters(build_model("simplecnn", 4)) == set()
    for parameter in network.parameters():
        parameter.requires_grad_(True)  # to see the gradients they would get
    images = torch.randn(6, 3, 64, 64, dtype=torch.float64)
    torch.nn.functional.cross_entropy(network(images), torch.arange(6) % 4).backward()

    largest = {name: p.grad.abs().max().item() for name, p in network.named_parameters()}
    assert max(largest[name] for name in inert) < 1e-12
    others = sorted(value for name, value in largest.items() if name not in inert)
    assert others[len(others) // 2] > 1e-6
    set_trainable(network, "full")
    trained = {name for name, p in network.named_parameters() if p.requires_grad}
    assert trained == set(largest) - inert


def test_resnet_weights_do_not_fit_mobilenet_v2(tmp_path: Path) -> None:
    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)

    with pytest.raises(TrainingError, match="does not fit the MobileNetV2 backbone"):
        load_backbone_weights(build_model("mobilenet_v2", num_classes=3), weights)
