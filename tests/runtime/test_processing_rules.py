"""rules.engine ``processing``: Debugger rules run as processing jobs in the local runtime, with
the CreateProcessingJob request the pipeline builds (``plugins/sagemaker_lifecycle/rule_jobs.py``),
over the tensors and system metrics a real training job saved."""

import json
import sys

import pytest
from processing_support import processing_log_messages, wait_for_processing
from runtime_support import (
    BUCKET,
    PYTORCH_IMAGE,
    REPO_ROOT,
    ROLE_ARN,
    training_request,
    upload_script,
    wait_for_status,
)
from test_rules_runtime import TINY_INIT_SCRIPT

# Airflow puts plugins/ on sys.path; the pipeline's package is imported the same way here.
if str(REPO_ROOT / "plugins") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "plugins"))
from sagemaker_lifecycle.rule_jobs import (
    outcome_from_processing_job,
    result_uri,
    rule_processing_request,
)
from sagemaker_lifecycle.staging import upload_code

pytestmark = pytest.mark.e2e

SETTINGS = {
    "aws": {"bucket": BUCKET, "role_arn": ROLE_ARN},
    "images": {"training": PYTORCH_IMAGE},
    "instances": {"rules": "ml.m5.xlarge", "volume_size_gb": 30},
}


def train_with_debugger(runtime, name: str) -> None:
    """A finished training job whose tensors and system metrics are in S3 where the pipeline's
    training jobs leave them (``s3://<bucket>/jobs/<job>/{debug,profiler}-output``)."""
    s3, sagemaker = runtime.client("s3"), runtime.client("sagemaker")
    upload_script(s3, BUCKET, name, TINY_INIT_SCRIPT)
    request = training_request(name, BUCKET, TINY_INIT_SCRIPT)
    request["HyperParameters"]["hold"] = "0"
    request["Environment"] = {"OMP_NUM_THREADS": "1"}
    request["DebugHookConfig"] = {
        "S3OutputPath": f"s3://{BUCKET}/jobs",
        "CollectionConfigurations": [
            {"CollectionName": "losses", "CollectionParameters": {"save_interval": "1"}},
            {"CollectionName": "gradients", "CollectionParameters": {"save_interval": "1"}},
        ],
    }
    request["ProfilerConfig"] = {
        "S3OutputPath": f"s3://{BUCKET}/jobs",
        "ProfilingIntervalInMilliseconds": 500,
    }
    sagemaker.create_training_job(**request)
    described = wait_for_status(sagemaker, name, timeout=120)
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")


def read_result(s3, description: dict) -> dict:
    bucket, key = result_uri(description).removeprefix("s3://").split("/", 1)
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_rule_jobs_built_by_the_pipeline_evaluate_a_real_training_output(runtime, sagemaker, s3):
    training_job = "proc-rules-trained"
    train_with_debugger(runtime, training_job)
    dataset = {"code_uri": upload_code(s3, BUCKET, "code")[1]}
    rules = {  # rule -> (kind, RuleParameters)
        "VanishingGradient": ("debugger", {}),
        "LowGPUUtilization": ("profiler", {"window": 5}),
    }
    requests = {
        rule: rule_processing_request(SETTINGS, dataset, training_job, rule, parameters)
        for rule, (_, parameters) in rules.items()
    }
    for request in requests.values():
        sagemaker.create_processing_job(**request)

    results = {}
    for rule, request in requests.items():
        description = wait_for_processing(sagemaker, request["ProcessingJobName"], timeout=120)
        assert description["ProcessingJobStatus"] == "Completed", description.get("FailureReason")
        # Where the pipeline's gate reads the finding (rule_jobs.result_uri).
        results[rule] = read_result(s3, description)
        # The gate decides on the same outcome as with SageMaker Debugger.
        outcome = outcome_from_processing_job(
            rule, description, True, results[rule], kind=rules[rule][0]
        )
        assert outcome.status == results[rule]["status"]
        messages = processing_log_messages(runtime.client("logs"), request["ProcessingJobName"])[1]
        assert any(message.startswith("#rule-result ") for message in messages)

    vanishing = results["VanishingGradient"]
    assert vanishing["status"] == "IssuesFound"
    assert vanishing["status_details"].startswith(
        "RuleEvaluationConditionMet: Evaluation of the rule VanishingGradient at step "
    )
    low_gpu = results["LowGPUUtilization"]
    assert low_gpu["status"] == "NoIssuesFound"
    assert "without a GPU" in low_gpu["details"]
