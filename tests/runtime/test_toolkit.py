"""Toolkit emulation: hyperparameters to argv and SM_* values (behaviour doc 5.2/5.3), and safe
archive handling."""

import io
import json
import os
import tarfile

import pytest

from local_sagemaker.executor import toolkit
from local_sagemaker.executor.archives import UnsafeArchiveError, pack_directory, safe_extract_tar
from local_sagemaker.executor.workspace import HostTree

WIRE_HYPERPARAMETERS = {
    "epochs": "3",
    "flag": "true",
    "layers": "[64, 32]",
    "learning-rate": "0.01",
    "nested": '{"a": 1, "b": "c"}',
    "optimizer": '"adam"',
    "plain": "hello world",
    "x": "1",
    "sagemaker_program": '"train.py"',
    "sagemaker_submit_directory": '"s3://bucket/code/sourcedir.tar.gz"',
    "sagemaker_mpi_enabled": "false",
    "_tuning_objective_metric": "valid_acc",
}


def test_command_line_matches_the_training_toolkit():
    decoded = toolkit.decode_hyperparameters(WIRE_HYPERPARAMETERS)
    args = toolkit.command_args(toolkit.user_hyperparameters(decoded))
    assert args == [
        "--epochs", "3", "--flag", "True", "--layers", "[64, 32]", "--learning-rate", "0.01",
        "--nested", "a=1,b=c", "--optimizer", "adam", "--plain", "hello world", "-x", "1",
    ]  # fmt: skip


def test_framework_parameters_keep_only_unreserved_sagemaker_keys():
    decoded = toolkit.decode_hyperparameters(WIRE_HYPERPARAMETERS)
    assert toolkit.framework_parameters(decoded) == {"sagemaker_mpi_enabled": False}


def test_environment_points_every_path_into_the_host_tree(tmp_path):
    job = {
        "TrainingJobName": "env-job",
        "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/env-job",
        "HyperParameters": WIRE_HYPERPARAMETERS,
        "AlgorithmSpecification": {"TrainingImage": "image", "TrainingInputMode": "File"},
        "InputDataConfig": [{"ChannelName": "valid"}, {"ChannelName": "train"}],
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 2},
        "Environment": {"MY_SETTING": "on"},
    }
    tree = HostTree("algo-2", tmp_path / "algo-2")
    env = toolkit.training_environment(
        job,
        tree,
        ["algo-1", "algo-2"],
        "us-east-1",
        29500,
        "/image/venv/bin/python",
        {"EXTRA": "1"},
    )
    assert env["SM_MODEL_DIR"] == str(tmp_path / "algo-2" / "model")
    assert env["SM_CHANNEL_TRAIN"] == str(tmp_path / "algo-2" / "input" / "data" / "train")
    assert env["SM_CHANNELS"] == '["train","valid"]'
    assert env["SM_HP_LAYERS"] == "[64,32]" and env["SM_HP_OPTIMIZER"] == "adam"
    assert env["SM_HP_FLAG"] == "true"
    assert "sagemaker_program" not in json.loads(env["SM_HPS"])
    assert env["SM_USER_ENTRY_POINT"] == "train.py" and env["SM_MODULE_NAME"] == "train"
    assert env["SM_HOSTS"] == '["algo-1","algo-2"]' and env["SM_CURRENT_HOST"] == "algo-2"
    assert env["SM_RESOURCE_CONFIG"].startswith('{"current_group_name":"homogeneousCluster"')
    assert env["MASTER_PORT"] == "29500" and env["MASTER_ADDR"] == "127.0.0.1"
    assert env["PYTHONPATH"] == str(tree.code_dir)
    assert env["MY_SETTING"] == "on" and env["EXTRA"] == "1"
    assert env["PATH"].split(os.pathsep)[0] == "/image/venv/bin"  # `python3` is the image's
    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["is_master"] is False
    assert training_env["channel_input_dirs"]["valid"].endswith("input/data/valid")
    assert training_env["hyperparameters"]["layers"] == [64, 32]


def test_failure_text_is_execute_user_script_error():
    text = toolkit.user_script_failure(2, ["Traceback", "ValueError: bad"], ["python", "train.py"])
    assert text == (
        'ExecuteUserScriptError:\nExitCode 2\nErrorMessage "Traceback\nValueError: bad"\n'
        'Command "python train.py"'
    )


def _archive_with(tmp_path, member: tarfile.TarInfo, data: bytes = b"x"):
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        member.size = len(data) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return path


def test_extraction_refuses_paths_out_of_the_folder(tmp_path):
    archive = _archive_with(tmp_path, tarfile.TarInfo("../escape.py"))
    with pytest.raises(UnsafeArchiveError, match="refusing unsafe member"):
        safe_extract_tar(archive, tmp_path / "code")
    assert not (tmp_path / "escape.py").exists()


def test_extraction_keeps_absolute_names_inside_the_folder(tmp_path):
    safe_extract_tar(_archive_with(tmp_path, tarfile.TarInfo("/tmp/escape.py")), tmp_path / "code")
    assert (tmp_path / "code" / "tmp" / "escape.py").exists()


def test_extraction_refuses_links_out_of_the_folder(tmp_path):
    link = tarfile.TarInfo("innocent")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    with pytest.raises(UnsafeArchiveError):
        safe_extract_tar(_archive_with(tmp_path, link), tmp_path / "code")


def test_pack_and_extract_round_trip(tmp_path):
    (tmp_path / "model" / "code").mkdir(parents=True)
    (tmp_path / "model" / "model.pt").write_bytes(b"weights")
    (tmp_path / "model" / "code" / "inference.py").write_text("x = 1\n")
    archive = pack_directory(tmp_path / "model", tmp_path / "model.tar.gz")
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["code", "code/inference.py", "model.pt"]
    safe_extract_tar(archive, tmp_path / "out")
    assert (tmp_path / "out" / "code" / "inference.py").read_text() == "x = 1\n"
