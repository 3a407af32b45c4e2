"""Evaluate one SageMaker Debugger built-in rule: the rule job's entry point.

SageMaker runs one processing job per rule; so does this script: one rule per run.

Usage (local runtime, which starts it when a training job has Debug/ProfilerRuleConfigurations)::

    python evaluate_rules.py --rule Overfit --rule-parameters '{"patience": "2"}' \\
        --debug-output JOB/debug-output --profiler-output JOB/profiler-output \\
        --output-dir JOB/rule-output/Overfit --training-job-name JOB

``--rule-parameters`` is the DebugRuleConfiguration's RuleParameters map (JSON object of strings;
``rule_to_invoke`` inside it is accepted and may replace ``--rule``). The script prints progress,
writes ``<output-dir>/result.json`` and ends with one machine-readable line::

    #rule-result {"rule": ..., "status": "NoIssuesFound"|"IssuesFound"|"Error", "details": ...,
                  "step": ..., "status_details": ...}

``status_details`` is DescribeTrainingJob's StatusDetails text (for IssuesFound:
``RuleEvaluationConditionMet: Evaluation of the rule <Name> at step <N> resulted in the
condition being met\\n<what was found>``). Exit status: 0 when the rule was evaluated (NoIssuesFound
or IssuesFound: read the last line or result.json), 1 when the evaluation failed (Error).
ProfilerReport also writes ``<output-dir>/profiler-output/profiler-report.html`` and
``<output-dir>/profiler-output/profiler-reports/<SubRule>.json``.

While the training job runs, tensor rules wait for new steps and profiler rules for new
samples; they finish once ``<debug-output>/training_job_end.ts`` (written by the smdebug hook)
or ``<profiler-output>/system/training_job_end.ts`` exists. ``--training-complete`` writes those
markers when missing, for outputs copied after the job ended (as on AWS, below).

On AWS, without SageMaker Debugger, run it as a processing job in a PyTorch training image
(they ship smdebug) after the training job ends. Defaults of the path arguments are the
processing paths below. CreateProcessingJob request::

    {
      "ProcessingJobName": "<job[:26]>-<RuleConfigurationName[:26]>-<8 hex>",
      "RoleArn": "<execution role>",
      "AppSpecification": {
        "ImageUri": "<pytorch training image, e.g. image_uris.retrieve('pytorch', ...)>",
        "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/evaluate_rules.py"],
        "ContainerArguments": ["--rule", "<rule_to_invoke>",
                               "--rule-parameters", "<RuleParameters as JSON>",
                               "--training-job-name", "<job>", "--training-complete"]
      },
      "ProcessingInputs": [
        {"InputName": "code", "S3Input": {
            "S3Uri": "s3://.../sagemaker_code/ (this folder, unpacked)",
            "LocalPath": "/opt/ml/processing/input/code",
            "S3DataType": "S3Prefix", "S3InputMode": "File"}},
        {"InputName": "debug-output", "S3Input": {
            "S3Uri": "<the training job's CheckpointConfig S3Uri>/debug-output",
            "LocalPath": "/opt/ml/processing/input/debug-output",
            "S3DataType": "S3Prefix", "S3InputMode": "File"}}
      ],
      "ProcessingOutputConfig": {"Outputs": [
        {"OutputName": "rule-output", "S3Output": {
            "S3Uri": "<S3OutputPath>/<job>/rule-output/<RuleConfigurationName>",
            "LocalPath": "/opt/ml/processing/output/rule",
            "S3UploadMode": "EndOfJob"}}]},
      "ProcessingResources": {"ClusterConfig": {
        "InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30}},
      "StoppingCondition": {"MaxRuntimeInSeconds": 3600}
    }

The processing job then Completes for both NoIssuesFound and IssuesFound; the outcome is in
``<S3OutputPath>/<job>/rule-output/<RuleConfigurationName>/result.json``. Without Debugger the
tensors are those ``classifier/debugger.py`` writes under the checkpoint dir; profiler rules need
a ``profiler-output`` input of system metrics, which only a job with a ProfilerConfig gets, so
the pipeline runs tensor rules only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rules.outcome import ERROR
from rules.runner import evaluate
from rules.system_metrics import END_OF_JOB_MARKER

PROCESSING_INPUT = Path("/opt/ml/processing/input")
RESULT_LINE_PREFIX = "#rule-result "


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rule", help="rule to invoke (default: rule_to_invoke in parameters)")
    parser.add_argument(
        "--rule-parameters", default="{}", type=json.loads, help="RuleParameters as JSON"
    )
    parser.add_argument("--debug-output", type=Path, default=PROCESSING_INPUT / "debug-output")
    parser.add_argument(
        "--profiler-output", type=Path, default=PROCESSING_INPUT / "profiler-output"
    )
    parser.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/output/rule"))
    parser.add_argument("--training-job-name", default="")
    parser.add_argument(
        "--training-complete",
        action="store_true",
        help="the outputs are final: write the end-of-job markers if they are missing",
    )
    parser.add_argument("--poll-seconds", type=float, default=2.0)
    return parser.parse_args(argv)


def mark_training_complete(debug_output: Path, profiler_output: Path) -> None:
    for directory in (debug_output, profiler_output / "system"):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / END_OF_JOB_MARKER).touch(exist_ok=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parameters = {str(k): str(v) for k, v in args.rule_parameters.items()}
    rule = args.rule or parameters.get("rule_to_invoke", "")
    if args.training_complete:
        mark_training_complete(args.debug_output, args.profiler_output)
    outcome = evaluate(
        rule,
        parameters,
        args.debug_output,
        args.profiler_output,
        args.output_dir,
        job_name=args.training_job_name,
        poll_seconds=args.poll_seconds,
    )
    print(f"Rule {outcome.rule}: {outcome.status}. {outcome.details}", flush=True)
    print(RESULT_LINE_PREFIX + json.dumps(outcome.to_json()), flush=True)
    return 1 if outcome.status == ERROR else 0


if __name__ == "__main__":
    sys.exit(main())
