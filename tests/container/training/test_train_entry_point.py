"""train.py run as the SageMaker training toolkit runs it: arguments, environment, outputs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from classifier.data import load_split
from classifier.errors import TrainingError, report_training_failure
from classifier.hyperparameters import parse_hyperparameters
from sagemaker_job import (
    FAST_HYPERPARAMETERS,
    METRICS_LINE,
    FinishedJob,
    JobTree,
    run_training,
)


@pytest.mark.e2e  # runs train.py as a process
def test_cli_run_prints_one_metrics_line_per_epoch_and_saves_a_self_contained_model(
    finished_job: FinishedJob, dataset: Path
) -> None:
    stdout, model_dir = finished_job.result.stdout, finished_job.tree.model_dir

    epochs = [m.group(1) for m in re.finditer(METRICS_LINE, stdout)]
    assert epochs == ["1", "2"]
    assert re.search(r"#metrics test_loss=\d+\.\d{4} test_acc=\d\.\d{4}", stdout)
    saved = torch.load(model_dir / "model.pt", weights_only=True)
    assert saved["class_names"] == sorted(p.name for p in (dataset / "train").iterdir())
    assert (saved["backbone"], saved["image_size"]) == ("simplecnn", 32)
    assert (model_dir / "code" / "inference.py").is_file()
    assert (model_dir / "code" / "classifier" / "serving.py").is_file()
    assert not (finished_job.tree.output_dir / "failure").exists()


@pytest.mark.e2e  # runs train.py as a process
def test_a_restarted_job_resumes_after_the_last_checkpointed_epoch(
    finished_job: FinishedJob, tmp_path: Path, dataset: Path
) -> None:
    """A spot restart (or a longer rerun) finds the checkpoint SageMaker synced back."""
    channels = {"train": dataset / "train", "valid": dataset / "valid"}
    tree = JobTree(tmp_path, channels, {**FAST_HYPERPARAMETERS, "epochs": "3"}).write()
    tree.add_config("checkpointconfig.json", {"LocalPath": str(finished_job.checkpoints)})

    result = run_training(tree)

    assert result.returncode == 0, result.stderr
    assert f"resuming after epoch 2 from {finished_job.checkpoints}" in result.stdout
    assert [m.group(1) for m in re.finditer(METRICS_LINE, result.stdout)] == ["3"]


@pytest.mark.e2e  # runs train.py as a process
def test_hyperparameters_and_channels_come_from_sm_variables_when_there_are_no_arguments(
    tmp_path: Path, dataset: Path
) -> None:
    channels = {"train": dataset / "train", "valid": dataset / "valid"}
    tree = JobTree(tmp_path, channels, {**FAST_HYPERPARAMETERS, "epochs": "1"}).write()

    result = run_training(tree, with_arguments=False)

    assert result.returncode == 0, result.stderr
    assert "backbone='simplecnn'" in result.stdout
    assert len(re.findall(METRICS_LINE, result.stdout)) == 1


@pytest.mark.e2e  # runs train.py as a process
def test_a_bare_opt_ml_tree_is_enough(tmp_path: Path, dataset: Path) -> None:
    """No SM_* variables: hyperparameters.json, resourceconfig.json and input/data/<channel>."""
    tree = JobTree(tmp_path, {"training": dataset}, {**FAST_HYPERPARAMETERS, "epochs": "1"})

    result = run_training(tree.write(), with_arguments=False, with_sm_variables=False)

    assert result.returncode == 0, result.stderr
    assert "pictures: train=36, valid=18, test=18" in result.stdout
    assert (tree.model_dir / "model.pt").is_file()


@pytest.mark.e2e  # runs train.py as a process
def test_a_channel_without_class_folders_fails_with_the_reason_in_the_failure_file(
    tmp_path: Path, dataset: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    channels = {"train": empty, "valid": dataset / "valid"}
    tree = JobTree(tmp_path / "job", channels, {**FAST_HYPERPARAMETERS, "epochs": "1"}).write()

    result = run_training(tree)

    assert result.returncode == 1
    reason = f"channel 'train' has no class folders: {tree.channel_dir('train')}"
    assert reason in tree.failure()
    assert reason in result.stderr


def test_an_unreadable_picture_is_named_in_the_training_error(tmp_path: Path) -> None:
    (tmp_path / "001.Only_class").mkdir()
    (tmp_path / "001.Only_class" / "truncated.jpg").write_bytes(b"\xff\xd8 not a jpeg")

    with pytest.raises(TrainingError, match=r"cannot read picture .*truncated\.jpg"):
        load_split(tmp_path, "train", ["001.Only_class"], image_size=32, workers=1)


def test_a_failure_is_written_for_sagemaker_and_the_process_exits_1(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited, report_training_failure(tmp_path):
        parse_hyperparameters(["--optimizer", '"rmsprop"'], {})

    assert exited.value.code == 1
    failure = (tmp_path / "failure").read_text()
    assert failure.startswith("TrainingError: bad hyperparameters: optimizer must be one of")


def test_an_unexpected_error_is_reported_with_its_traceback(tmp_path: Path) -> None:
    with pytest.raises(SystemExit), report_training_failure(tmp_path):
        {}["missing"]

    failure = (tmp_path / "failure").read_text()
    assert failure.startswith("KeyError: 'missing'\nTraceback")
    assert len(failure) <= 1024
