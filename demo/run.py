"""`make demo`: the whole pipeline, locally, on a generated dataset, and a summary of what happened.

1. generate a small dataset in `.demo/dataset` (once),
2. start the local SageMaker runtime (or use the one `make up` started),
3. run the `dog_breed_classifier` DAG with `airflow dags test` and the local profile
   (`include/local.yaml`: a tiny CNN, four trials, one-second polling), with demo/approvals.py
   beside it so an approval nobody answers gets the local profile's default (Approve, on the
   person's behalf) after its short timeout,
4. say first, in one line, what the gate decided when it blocked, asked or was answered,
5. ask the runtime, as any AWS client would, what the run produced, and print it: the best
   hyperparameters, the rule outcomes, an endpoint prediction on a real validation image, the
   evaluation numbers, where the explanation report is (with its deletion-test figure), and
   where the artifacts are.

The full Airflow output goes to `.demo/dags-test.log`; the console shows each task as it ends.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import boto3

from devtools.stack import DEMO_DIR, LOCAL_REGION, REPO_ROOT, VENV_BIN, Stack

DAG_ID = "dog_breed_classifier"
LOG_PATH = DEMO_DIR / "dags-test.log"
APPROVALS_LOG_PATH = DEMO_DIR / "approvals.log"
# `airflow dags test` output: a task's state change, then the end of that task.
TASK_STATE = re.compile(r"Task instance state updated .* new_state=(\w+)")
TASK_END = re.compile(r"\[DAG TEST\] end task task_id=([\w.]+)")
# The gate's and the approval's one-line outcome (sagemaker_lifecycle.gate.OUTCOME_PREFIX).
GATE_OUTCOME = re.compile(r"(Gate outcome: .*?)(?: \[airflow\.task\.|$)")


def run_dag(stack: Stack) -> tuple[bool, str | None]:
    """`airflow dags test` with the output in LOG_PATH: whether the run succeeded, and the last
    outcome line of its gate (None when the gate never decided)."""
    env = stack.airflow_environment()
    subprocess.run([str(VENV_BIN / "airflow"), "db", "migrate"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip
    # No conf: the run takes the local profile's defaults, as a run triggered in `make up`'s UI.
    command = [str(VENV_BIN / "airflow"), "dags", "test", DAG_ID]
    print(f"running {DAG_ID} (full log: {LOG_PATH.relative_to(REPO_ROOT)}) ...")
    started, state, outcome = time.monotonic(), "?", None
    with (
        LOG_PATH.open("w") as log,
        APPROVALS_LOG_PATH.open("w") as approvals_log,
        subprocess.Popen(
            [sys.executable, "-m", "demo.approvals"],
            env=env,
            cwd=REPO_ROOT,
            stdout=approvals_log,
            stderr=subprocess.STDOUT,
        ) as approvals,
        subprocess.Popen(
            command,
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as process,
    ):
        for line in process.stdout:
            log.write(line)
            if match := GATE_OUTCOME.search(line):
                outcome = match.group(1).strip()
            if match := TASK_STATE.search(line):
                state = match.group(1)
            elif match := TASK_END.search(line):
                elapsed = time.monotonic() - started
                print(f"  [{elapsed:5.0f} s] {match.group(1):<28} {state}", flush=True)
        process.wait()
        approvals.terminate()
    return process.returncode == 0, outcome


def latest(items: list[dict], key: str = "CreationTime") -> dict:
    return max(items, key=lambda item: item[key])


def summarize(stack: Stack, dataset: Path) -> None:
    """What the run produced, read back through the AWS APIs of the local runtime."""
    key_pair = stack.key_pair()
    session = boto3.Session(aws_access_key_id=key_pair.access_key_id,
                            aws_secret_access_key=key_pair.secret_access_key,
                            region_name=LOCAL_REGION)  # fmt: skip
    sagemaker = session.client("sagemaker", endpoint_url=stack.runtime_url)
    runtime = session.client("sagemaker-runtime", endpoint_url=stack.runtime_url)

    tunings = sagemaker.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]
    tuning_name = latest(tunings)["HyperParameterTuningJobName"]
    tuning = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning_name)
    best = tuning["BestTrainingJob"]
    objective = best["FinalHyperParameterTuningJobObjectiveMetric"]
    print(f"\nTuning job {tuning_name}: best trial {best['TrainingJobName']}")
    print(f"  {objective['MetricName']} = {objective['Value']:.4f}")
    for name, value in sorted(best["TunedHyperParameters"].items()):
        print(f"  {name} = {value}")

    trainings = sagemaker.list_training_jobs(NameContains="-train-")["TrainingJobSummaries"]
    training = sagemaker.describe_training_job(TrainingJobName=latest(trainings)["TrainingJobName"])
    print(f"\nTraining job {training['TrainingJobName']}: {training['TrainingJobStatus']}")
    print(f"  model: {training['ModelArtifacts']['S3ModelArtifacts']}")
    print("  rules:")
    for status in [*training.get("DebugRuleEvaluationStatuses", []),
                   *training.get("ProfilerRuleEvaluationStatuses", [])]:  # fmt: skip
        details = status.get("StatusDetails", "").strip().splitlines()
        print(f"    {status['RuleConfigurationName']:<26} {status['RuleEvaluationStatus']:<14}"
              f" {details[0][:90] if details else ''}")  # fmt: skip

    endpoints = sagemaker.list_endpoints()["Endpoints"]
    if endpoints:
        endpoint = latest(endpoints)["EndpointName"]
        image = min((dataset / "valid").rglob("*.jpg"))
        answer = runtime.invoke_endpoint(
            EndpointName=endpoint,
            ContentType="image/jpeg",
            Accept="application/json",
            Body=image.read_bytes(),
        )
        print(f"\nEndpoint {endpoint} on {image.relative_to(dataset)}:")
        print(f"  {answer['Body'].read().decode()[:300]}")

    transforms = sagemaker.list_transform_jobs()["TransformJobSummaries"]
    if transforms:
        print_evaluation(session, stack, latest(transforms)["TransformJobName"])


def print_evaluation(session: boto3.Session, stack: Stack, transform_name: str) -> None:
    """The evaluate task's report of the batch transform, read from S3."""
    s3 = session.client("s3", endpoint_url=stack.runtime_url)
    bucket = s3.list_buckets()["Buckets"][0]["Name"]
    key = f"evaluation/{transform_name}/report.json"
    report = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    top_k = next(name for name in report if re.fullmatch(r"top_\d+_accuracy", name))
    print(f"\nEvaluation of batch transform {transform_name} ({report['count']} images):")
    print(f"  accuracy {report['accuracy']:.3f}  {top_k} {report[top_k]:.3f}"
          f"  macro F1 {report['macro_f1']:.3f}")  # fmt: skip
    print(f"  report: s3://{bucket}/evaluation/{transform_name}/report.md, confusion_matrix.png")
    print_explanations(s3, bucket, f"evaluation/{transform_name}/explanations/")


def print_explanations(s3, bucket: str, prefix: str) -> None:
    """Where the explanation job put its report, and its deletion-test figure."""
    try:
        summary = json.loads(
            s3.get_object(Bucket=bucket, Key=f"{prefix}summary.json")["Body"].read()
        )
    except s3.exceptions.NoSuchKey:
        print(f"\nExplanations: none in s3://{bucket}/{prefix} (explanations.enabled, or the run "
              "stopped before them)")  # fmt: skip
        return
    deletion = summary["deletion"]
    ratio = f"{deletion['ratio']:.2f}" if deletion["ratio"] is not None else "undefined"
    print(f"\nExplanations ({summary['method']}, {summary['explained_images']} images): "
          f"s3://{bucket}/{prefix}report.html")  # fmt: skip
    print(f"  deletion test: masking the {deletion['fraction']:.0%} most salient pixels lowers the "
          f"predicted class's probability {ratio}x as much as masking random ones")  # fmt: skip


def main() -> int:
    DEMO_DIR.mkdir(exist_ok=True)
    stack = Stack()
    dataset = stack.write_local_settings()
    runtime = stack.runtime()
    started_here = runtime.running_process() is None
    runtime.start(stack.airflow_environment())
    try:
        succeeded, outcome = run_dag(stack)
        if outcome:
            print(f"\n{outcome}")
        summarize(stack, dataset)
    finally:
        if started_here:
            runtime.stop()
    print(f"\nArtifacts: S3 objects and job records in {stack.runtime_data_dir}")
    print(f"  (`make up` serves them again at {stack.runtime_url}); Airflow log: {LOG_PATH}")
    print("Demo run " + ("succeeded." if succeeded else f"FAILED: see {LOG_PATH}"))
    return 0 if succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
