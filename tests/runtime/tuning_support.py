"""Helpers for the tuning tests and benchmark: the known-objective trial script as a script-mode
source dir, CreateHyperParameterTuningJob requests for it, and a wait for a tuning job."""

from __future__ import annotations

import time
from pathlib import Path

from runtime_support import PYTORCH_IMAGE, ROLE_ARN, poll_until, sourcedir_archive

TRIAL_SCRIPT = Path(__file__).resolve().parent / "tuning_trial" / "train.py"
TUNING_TERMINAL_STATUSES = ("Completed", "Failed", "Stopped")
METRIC_DEFINITIONS = [
    {"Name": "valid_acc", "Regex": "valid_acc=([0-9.]+)"},
    {"Name": "valid_loss", "Regex": "valid_loss=([0-9.]+)"},
]
# The trial script's known optimum is lr=0.01, batch-size=32, optimizer adam.
PARAMETER_RANGES = {
    "ContinuousParameterRanges": [
        {"Name": "lr", "MinValue": "0.0001", "MaxValue": "0.5", "ScalingType": "Logarithmic"}
    ],
    "IntegerParameterRanges": [{"Name": "batch-size", "MinValue": "4", "MaxValue": "96"}],
    "CategoricalParameterRanges": [{"Name": "optimizer", "Values": ["adam", "sgd"]}],
}


def upload_trial_source(s3, bucket: str, key: str = "code/tuning-trial/sourcedir.tar.gz") -> str:
    """Upload the trial script as sourcedir.tar.gz; returns its S3 URI."""
    s3.put_object(
        Bucket=bucket, Key=key, Body=sourcedir_archive({"train.py": TRIAL_SCRIPT.read_text()})
    )
    return f"s3://{bucket}/{key}"


def tuning_request(
    name: str,
    bucket: str,
    source_uri: str,
    *,
    strategy: str = "Random",
    max_jobs: int = 6,
    max_parallel: int = 2,
    static: dict[str, str] | None = None,
    **config_changes,
) -> dict:
    """A CreateHyperParameterTuningJob request that tunes the trial script for valid_acc."""
    config = {
        "Strategy": strategy,
        "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "valid_acc"},
        "ResourceLimits": {
            "MaxNumberOfTrainingJobs": max_jobs,
            "MaxParallelTrainingJobs": max_parallel,
        },
        "ParameterRanges": PARAMETER_RANGES,
        "TrainingJobEarlyStoppingType": "Off",
        **config_changes,
    }
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": config,
        "TrainingJobDefinition": {
            "StaticHyperParameters": {
                "sagemaker_program": '"train.py"',
                "sagemaker_submit_directory": f'"{source_uri}"',
                "epochs": "3",
                "epoch-seconds": "0.1",
                **(static or {}),
            },
            "AlgorithmSpecification": {
                "TrainingImage": PYTORCH_IMAGE,
                "TrainingInputMode": "File",
                "MetricDefinitions": METRIC_DEFINITIONS,
            },
            "RoleArn": ROLE_ARN,
            "InputDataConfig": [
                {
                    "ChannelName": "train",
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": f"s3://{bucket}/data/train",
                        }
                    },
                }
            ],
            "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/tuning-output"},
            "ResourceConfig": {
                "InstanceType": "ml.m5.large",
                "InstanceCount": 1,
                "VolumeSizeInGB": 5,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 300},
        },
    }


def wait_for_tuning_job(
    sagemaker, name: str, statuses=TUNING_TERMINAL_STATUSES, timeout: float = 120
) -> dict:
    """Poll DescribeHyperParameterTuningJob until its status is one of ``statuses``."""
    return poll_until(
        f"tuning job {name}",
        lambda: sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
        "HyperParameterTuningJobStatus", statuses, timeout, interval=0.25,
    )  # fmt: skip


def wait_until(condition, what: str, timeout: float = 60) -> None:
    """Poll ``condition()`` until it is true; TimeoutError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout} s")
        time.sleep(0.1)


def all_trials(sagemaker, name: str, **list_arguments) -> list[dict]:
    """Every TrainingJobSummary of the tuning job, following NextToken."""
    summaries, token = [], None
    while True:
        page = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name,
            **list_arguments,
            **({"NextToken": token} if token else {}),
        )
        summaries += page["TrainingJobSummaries"]
        token = page.get("NextToken")
        if not token:
            return summaries
