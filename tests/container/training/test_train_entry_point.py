"""train.py run as the SageMaker training toolkit runs it: arguments, environment, outputs."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from sagemaker_job import METRICS_LINE, JobTree, run_training

# The tiny configuration every run here uses, as the SDK sends it (JSON-encoded strings).
FAST = {
    "backbone": '"simplecnn"',
    "batch-size": "16",
    "image-size": "32",
    "lr": "0.003",
    "freeze": '"full"',
}


def split_channels(dataset: Path) -> dict[str, Path]:
    return {"train": dataset / "train", "valid": dataset / "valid", "test": dataset / "test"}


def test_cli_run_prints_one_metrics_line_per_epoch_and_saves_a_self_contained_model(
    tmp_path: Path, dataset: Path
) -> None:
    tree = JobTree(tmp_path, split_channels(dataset), {**FAST, "epochs": "2"}).write()

    result = run_training(tree)

    assert result.returncode == 0, result.stderr
    epochs = [m.groups() for m in re.finditer(METRICS_LINE, result.stdout)]
    assert [int(groups[0]) for groups in epochs] == [1, 2]
    assert re.search(r"#metrics test_loss=\d+\.\d{4} test_acc=\d\.\d{4}", result.stdout)
    saved = torch.load(tree.model_dir / "model.pt", weights_only=True)
    assert saved["class_names"] == sorted(p.name for p in (dataset / "train").iterdir())
    assert (saved["backbone"], saved["image_size"]) == ("simplecnn", 32)
    assert (tree.model_dir / "code" / "inference.py").is_file()
    assert (tree.model_dir / "code" / "classifier" / "serving.py").is_file()
    assert not (tree.output_dir / "failure").exists()


def test_hyperparameters_and_channels_come_from_sm_variables_when_there_are_no_arguments(
    tmp_path: Path, dataset: Path
) -> None:
    tree = JobTree(tmp_path, split_channels(dataset), {**FAST, "epochs": "1"}).write()

    result = run_training(tree, with_arguments=False)

    assert result.returncode == 0, result.stderr
    assert "backbone='simplecnn'" in result.stdout
    assert len(re.findall(METRICS_LINE, result.stdout)) == 1


def test_a_bare_opt_ml_tree_is_enough(tmp_path: Path, dataset: Path) -> None:
    """No SM_* variables: hyperparameters.json, resourceconfig.json and input/data/<channel>."""
    tree = JobTree(tmp_path, {"training": dataset}, {**FAST, "epochs": "1"}).write()

    result = run_training(tree, with_arguments=False, with_sm_variables=False)

    assert result.returncode == 0, result.stderr
    assert "pictures: train=36, valid=18, test=18" in result.stdout
    assert (tree.model_dir / "model.pt").is_file()


def test_a_channel_without_class_folders_fails_with_the_reason_in_the_failure_file(
    tmp_path: Path, dataset: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    channels = {"train": empty, "valid": dataset / "valid"}
    tree = JobTree(tmp_path / "job", channels, {**FAST, "epochs": "1"}).write()

    result = run_training(tree)

    assert result.returncode == 1
    reason = f"channel 'train' has no class folders: {tree.channel_dir('train')}"
    assert reason in tree.failure()
    assert reason in result.stderr


def test_an_unreadable_picture_is_named_in_the_failure(tmp_path: Path, dataset: Path) -> None:
    broken = tmp_path / "broken"
    (broken / "001.Only_class").mkdir(parents=True)
    (broken / "001.Only_class" / "truncated.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    channels = {"train": broken, "valid": broken}
    tree = JobTree(tmp_path / "job", channels, {**FAST, "epochs": "1"}).write()

    result = run_training(tree)

    assert result.returncode == 1
    assert "cannot read picture" in tree.failure()
    assert "truncated.jpg" in tree.failure()


def test_a_bad_hyperparameter_fails_naming_it(tmp_path: Path, dataset: Path) -> None:
    hyperparameters = {**FAST, "epochs": "1", "optimizer": '"rmsprop"'}
    tree = JobTree(tmp_path, split_channels(dataset), hyperparameters).write()

    result = run_training(tree)

    assert result.returncode == 1
    assert "optimizer must be one of ('adam', 'adamw', 'sgd'), got rmsprop" in tree.failure()


def test_a_job_with_checkpoints_resumes_after_the_last_saved_epoch(
    tmp_path: Path, dataset: Path
) -> None:
    checkpoints = tmp_path / "checkpoints"
    first = JobTree(tmp_path / "first", split_channels(dataset), {**FAST, "epochs": "1"}).write()
    first.add_config("checkpointconfig.json", {"LocalPath": str(checkpoints)})
    assert run_training(first).returncode == 0
    assert (checkpoints / "checkpoint.pt").is_file()

    # The restarted job (a spot interruption, or more epochs) finds the synced checkpoint.
    second = JobTree(tmp_path / "second", split_channels(dataset), {**FAST, "epochs": "2"}).write()
    second.add_config("checkpointconfig.json", {"LocalPath": str(checkpoints)})
    result = run_training(second)

    assert result.returncode == 0, result.stderr
    assert f"resuming after epoch 1 from {checkpoints}" in result.stdout
    assert [m.group(1) for m in re.finditer(METRICS_LINE, result.stdout)] == ["2"]
