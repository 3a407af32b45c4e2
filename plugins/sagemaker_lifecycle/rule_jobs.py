"""Rules as processing jobs (rules.engine: processing), for accounts without SageMaker Debugger.

After training, one processing job per debugger rule runs `sagemaker_code/evaluate_rules.py`
(request shape documented in that file's docstring) over the tensors the training job's hook saved
under its checkpoint dir (the job's CheckpointConfig, which a retried `-a<N>` attempt shares with
the first). Each job Completes for both
NoIssuesFound and IssuesFound and writes its finding to `<rule output>/result.json`;
`outcome_from_processing_job` turns that into the same RuleOutcome SageMaker Debugger would report,
so the gate decides the same way for both engines.

Profiler rules are not evaluable under this engine: they read the system metrics that SageMaker's
host agent writes only for a job with a ProfilerConfig, a Debugger feature. They get no job, and
`profiler_rule_outcome` reports each as an Error saying so, which their `warn` policy lists
without blocking deployment.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from sagemaker_lifecycle.gate import PROFILER, RuleOutcome
from sagemaker_lifecycle.naming import check_name
from sagemaker_lifecycle.request_builders import (
    HOOK_CHECKPOINT_SUBFOLDER,
    PROCESSING_CODE_DIR,
    RULE_ENTRY_POINT,
    processing_input,
    training_output_path,
)

DEBUG_OUTPUT_DIR = "/opt/ml/processing/input/debug-output"
PROFILER_OUTPUT_DIR = "/opt/ml/processing/input/profiler-output"
RULE_OUTPUT_DIR = "/opt/ml/processing/output/rule"
RESULT_FILE = "result.json"
RULE_JOB_MAX_RUNTIME_SECONDS = 3600
# ProcessingJobStatus -> RuleEvaluationStatus while no result can exist yet, or never will.
STATUS_BY_JOB_STATUS = {"InProgress": "InProgress", "Stopping": "Stopping", "Stopped": "Stopped"}
PROFILER_RULE_NOT_EVALUABLE = (
    "not evaluable with rules.engine processing: profiler rules read the system metrics that "
    "SageMaker records only for a training job with a ProfilerConfig (SageMaker Debugger)"
)


def rule_job_prefix(training_job: str) -> str:
    """What the names of `training_job`'s rule jobs (and its `-a<N>` retries') start with."""
    return f"{training_job[:26].rstrip('-')}-"


def rule_job_name(training_job: str, rule: str) -> str:
    """`<job[:26]>-<rule[:26]>-<8 hex>`, the form SageMaker gives Debugger's rule jobs."""
    digest = hashlib.blake2b(f"{training_job}/{rule}".encode(), digest_size=4).hexdigest()
    return check_name(f"{rule_job_prefix(training_job)}{rule[:26]}-{digest}")


def rule_processing_request(
    settings: Mapping,
    dataset: Mapping,
    training_job: str,
    checkpoint_uri: str,
    rule: str,
    parameters: Mapping,
) -> dict[str, Any]:
    """The CreateProcessingJob request evaluating `rule` over the tensors `training_job` saved
    under its CheckpointConfig's `checkpoint_uri`."""
    job_output = f"{training_output_path(settings)}/{training_job}"
    tensors_uri = f"{checkpoint_uri.rstrip('/')}/{HOOK_CHECKPOINT_SUBFOLDER}"
    # The paths equal evaluate_rules.py's defaults; they are passed anyway because a runtime that
    # relocates /opt/ml (the local one) can rewrite arguments but not a script's defaults.
    arguments = {
        "--rule": rule,
        "--rule-parameters": json.dumps({k: str(v) for k, v in parameters.items()}),
        "--training-job-name": training_job,
        "--debug-output": DEBUG_OUTPUT_DIR,
        "--profiler-output": PROFILER_OUTPUT_DIR,
        "--output-dir": RULE_OUTPUT_DIR,
    }
    return {
        "ProcessingJobName": rule_job_name(training_job, rule),
        "RoleArn": settings["aws"]["role_arn"],
        "AppSpecification": {
            "ImageUri": settings["images"]["training"],
            "ContainerEntrypoint": ["python3", f"{PROCESSING_CODE_DIR}/{RULE_ENTRY_POINT}"],
            "ContainerArguments": [
                *(x for pair in arguments.items() for x in pair),
                "--training-complete",
            ],
        },
        "ProcessingInputs": [
            processing_input("code", dataset["code_uri"], PROCESSING_CODE_DIR),
            processing_input("debug-output", tensors_uri, DEBUG_OUTPUT_DIR),
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "rule-output",
                    "S3Output": {
                        "S3Uri": f"{job_output}/rule-output/{rule}",
                        "LocalPath": RULE_OUTPUT_DIR,
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": settings["instances"]["rules"],
                "VolumeSizeInGB": settings["instances"]["volume_size_gb"],
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": RULE_JOB_MAX_RUNTIME_SECONDS},
        "Environment": {"RULE_NAME": rule},
    }


def rule_processing_requests(
    settings: Mapping, dataset: Mapping, training: Mapping
) -> list[dict[str, Any]]:
    """One CreateProcessingJob request per configured debugger rule (see the module doc);
    `training` is the training task's XCom (TrainingJobName, CheckpointS3Uri)."""
    return [
        rule_processing_request(
            settings,
            dataset,
            training["TrainingJobName"],
            training["CheckpointS3Uri"],
            rule,
            parameters,
        )
        for rule, parameters in settings["rules"]["debugger"].items()
    ]


def profiler_rule_outcome(rule: str, policy: str) -> RuleOutcome:
    """The outcome of a profiler rule under this engine, where no job can evaluate it."""
    return RuleOutcome(rule, "Error", PROFILER_RULE_NOT_EVALUABLE, policy, PROFILER)


def result_uri(description: Mapping) -> str:
    """Where a rule job's result.json is (its rule-output's S3 URI)."""
    output = description["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    return f"{output.rstrip('/')}/{RESULT_FILE}"


def outcome_from_processing_job(
    rule: str, description: Mapping, policy: str, result: Mapping | None, kind: str
) -> RuleOutcome:
    """The rule outcome one rule job stands for (`kind`: debugger or profiler).

    `result` is the job's parsed result.json (read once the job Completed; None before). A Failed
    job, or a Completed one without a result, is a rule Error.
    """
    status = description["ProcessingJobStatus"]
    if status in STATUS_BY_JOB_STATUS:
        return RuleOutcome(rule, STATUS_BY_JOB_STATUS[status], "", policy, kind)
    if status == "Completed" and result is not None:
        details = result.get("status_details") or result.get("details", "")
        return RuleOutcome(rule, result["status"], details, policy, kind)
    reason = description.get("FailureReason") or f"no {RESULT_FILE} in the rule output"
    return RuleOutcome(rule, "Error", reason, policy, kind)
