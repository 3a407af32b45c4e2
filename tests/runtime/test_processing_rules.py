"""rules.engine ``processing``: Debugger rules run as processing jobs in the local runtime, with
the CreateProcessingJob request the pipeline builds (``plugins/sagemaker_lifecycle/rule_jobs.py``),
over the tensors a real training job without any Debugger member saved under its checkpoint dir
and the runtime synced through its CheckpointConfig."""

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
from sagemaker_lifecycle.request_builders import HOOK_CHECKPOINT_SUBFOLDER, training_checkpoint_uri
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


# The tiny model's hook writes where train.py's does without Debugger (classifier/debugger.py):
# <checkpoint dir>/debug-output, the checkpoint dir read from checkpointconfig.json.
CHECKPOINTED_HOOK = f"""
import json, os, pathlib
config = pathlib.Path(os.environ["SM_INPUT_CONFIG_DIR"], "checkpointconfig.json")
tensors = pathlib.Path(json.loads(config.read_text())["LocalPath"], "{HOOK_CHECKPOINT_SUBFOLDER}")
hook = smd.Hook(
    out_dir=str(tensors), include_collections=["losses", "gradients"],
    save_config=smd.SaveConfig(save_interval=1),
)
"""
CHECKPOINTED_SCRIPT = TINY_INIT_SCRIPT.replace(
    "hook = smd.Hook.create_from_json_file()\n", CHECKPOINTED_HOOK
)


def train_without_debugger(runtime, name: str) -> None:
    """A finished training job, without any Debugger member, whose tensors are in S3 where the
    pipeline's processing engine leaves them (``request_builders.training_checkpoint_uri``)."""
    s3, sagemaker = runtime.client("s3"), runtime.client("sagemaker")
    upload_script(s3, BUCKET, name, CHECKPOINTED_SCRIPT)
    request = training_request(name, BUCKET, CHECKPOINTED_SCRIPT)
    request["HyperParameters"]["hold"] = "0"
    request["Environment"] = {"OMP_NUM_THREADS": "1"}
    request["CheckpointConfig"] = {"S3Uri": training_checkpoint_uri(SETTINGS, name)}
    sagemaker.create_training_job(**request)
    described = wait_for_status(sagemaker, name, timeout=120)
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    assert "DebugRuleEvaluationStatuses" not in described


def read_result(s3, description: dict) -> dict:
    bucket, key = result_uri(description).removeprefix("s3://").split("/", 1)
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_rule_jobs_built_by_the_pipeline_evaluate_a_real_training_output(runtime, sagemaker, s3):
    training_job = "proc-rules-trained"
    train_without_debugger(runtime, training_job)
    dataset = {"code_uri": upload_code(s3, BUCKET, "code")[1]}
    rules = {"VanishingGradient": {}}
    requests = {
        rule: rule_processing_request(
            SETTINGS,
            dataset,
            training_job,
            training_checkpoint_uri(SETTINGS, training_job),
            rule,
            parameters,
        )
        for rule, parameters in rules.items()
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
            rule, description, "block", results[rule], kind="debugger"
        )
        assert outcome.status == results[rule]["status"]
        messages = processing_log_messages(runtime.client("logs"), request["ProcessingJobName"])[1]
        assert any(message.startswith("#rule-result ") for message in messages)

    vanishing = results["VanishingGradient"]
    assert vanishing["status"] == "IssuesFound"
    assert vanishing["status_details"].startswith(
        "RuleEvaluationConditionMet: Evaluation of the rule VanishingGradient at step "
    )
