"""`make demo`: the whole pipeline, locally, on a generated dataset, and a summary of what happened.

1. generate a small dataset in `.demo/dataset` (once),
2. start `make up`'s stack (the local SageMaker runtime and Airflow's scheduler, triggerer,
   dag-processor and api-server), or use the one `make up` started,
3. trigger the `dog_breed_classifier` DAG through Airflow's REST API with the local profile
   (`include/local.yaml`: two small architectures, two trials each, one-second polling) and
   follow its tasks. The
   run is a real one: the scheduler runs its tasks, the triggerer its deferred waits, so every
   task log lands where the UI reads it, each trigger row ends with its task, and an approval
   nobody answers gets the local profile's default (Approve, on the person's behalf) after its
   short timeout, as under `make up`,
4. say first, one line per candidate, what its gate decided when it blocked, asked or was
   answered,
5. ask the runtime, as any AWS client would, what the run produced, and print it: each
   candidate's best hyperparameters, rule outcomes, evaluation numbers and explanation report
   (with its deletion-test figure), the candidates' comparison, one prediction per architecture
   from the endpoint (its TargetModel on a multi-model endpoint), and where the artifacts are.

What the demo started it stops at the end (the DAG is paused again, so a later `make up` starts
no scheduled run); `make up` serves the run's logs and pages afterwards. The components' logs
are in `.run/`.
"""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import boto3
import requests

from devtools.stack import DEMO_DIR, LOCAL_REGION, Stack, start_together

DAG_ID = "dog_breed_classifier"
# The gate's and the approval's one-line outcome (sagemaker_lifecycle.gate.OUTCOME_PREFIX).
GATE_OUTCOME = re.compile(r"(Gate outcome: .*)")
OUTCOME_TASKS = ("candidate.gate.gate_on_rules", "candidate.gate.approve_deployment")
MAPPED = re.compile(r"(.+)\[(\d+)\]$")
FINISHED_RUN = ("success", "failed")
FINISHED_TASKS = ("success", "failed", "skipped", "upstream_failed", "removed")
POLL_SECONDS = 2.0
RUN_TIMEOUT_S = 1800
DAG_PARSE_TIMEOUT_S = 300


class AirflowApi:
    """Airflow's REST API as the admin of the stack (a token from the simple auth manager)."""

    def __init__(self, stack: Stack):
        self.base = f"{stack.airflow_url}/api/v2"
        admin = {"username": "admin", "password": stack.admin_password()}
        answer = requests.post(f"{stack.airflow_url}/auth/token", json=admin, timeout=60)
        answer.raise_for_status()
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, f"{self.base}{path}", timeout=120, **kwargs)

    def wait_for_dag(self) -> None:
        deadline = time.monotonic() + DAG_PARSE_TIMEOUT_S
        while not self.call("GET", f"/dags/{DAG_ID}").ok:
            if time.monotonic() > deadline:
                errors = self.call("GET", "/importErrors").text
                raise SystemExit(f"{DAG_ID} not parsed in {DAG_PARSE_TIMEOUT_S} s: {errors}")
            time.sleep(POLL_SECONDS)

    def set_paused(self, paused: bool) -> None:
        self.call("PATCH", f"/dags/{DAG_ID}", json={"is_paused": paused}).raise_for_status()

    def trigger(self) -> str:
        # No conf: the run takes the local profile's defaults, as a run triggered in the UI.
        answer = self.call("POST", f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None})
        answer.raise_for_status()
        return answer.json()["dag_run_id"]

    def run_path(self, run_id: str) -> str:
        return f"/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}"

    def task_states(self, run_id: str) -> dict[str, str | None]:
        """Task id -> state; a candidate's task as `<task id>[<map index>]`."""
        answer = self.call("GET", f"{self.run_path(run_id)}/taskInstances", params={"limit": 100})
        return {ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else ""):
                ti["state"] for ti in answer.json()["task_instances"]}  # fmt: skip

    def run_state(self, run_id: str) -> str:
        return self.call("GET", self.run_path(run_id)).json()["state"]

    def log_text(self, run_id: str, task_id: str, map_index: int = -1) -> str:
        """The task's log of its first try, as the UI shows it."""
        answer = self.call("GET", f"{self.run_path(run_id)}/taskInstances/{task_id}/logs/1",
                           params={"map_index": map_index},
                           headers={"Accept": "application/json"})  # fmt: skip
        if not answer.ok:
            return ""
        content = answer.json().get("content", [])
        return "\n".join(str(line.get("event", line)) if isinstance(line, dict) else str(line)
                         for line in content)  # fmt: skip


@dataclass(frozen=True)
class DemoRun:
    run_id: str
    succeeded: bool
    # Per candidate (map index) that got that far: its gate's last outcome line.
    gate_outcomes: dict[int, str]


def run_dag(api: AirflowApi) -> DemoRun:
    """Trigger a run as `make demo` does (unpaused for it, paused again after it) and print each
    task as it ends; returns once the run has finished. The browser tests' demo run too."""
    api.wait_for_dag()
    api.set_paused(False)
    try:
        run_id = api.trigger()
        print(f"running {DAG_ID} (run {run_id}) ...")
        started, reported = time.monotonic(), set()
        while (state := api.run_state(run_id)) not in FINISHED_RUN:
            if time.monotonic() - started > RUN_TIMEOUT_S:
                raise SystemExit(f"run {run_id} still {state} after {RUN_TIMEOUT_S} s")
            states = api.task_states(run_id)
            for task_id, task_state in states.items():
                if task_state in FINISHED_TASKS and task_id not in reported:
                    reported.add(task_id)
                    elapsed = time.monotonic() - started
                    print(f"  [{elapsed:5.0f} s] {task_id:<40} {task_state}", flush=True)
            time.sleep(POLL_SECONDS)
    finally:
        api.set_paused(True)
    return DemoRun(run_id, state == "success", gate_outcomes(api, run_id, reported))


def gate_outcomes(api: AirflowApi, run_id: str, task_ids: set[str]) -> dict[int, str]:
    """Each candidate's last gate outcome line, from its gate's and its approval's logs."""
    matches = [m for m in map(MAPPED.match, task_ids) if m and m.group(1) in OUTCOME_TASKS]
    mapped = [(int(m.group(2)), OUTCOME_TASKS.index(m.group(1)), m.group(1)) for m in matches]
    outcomes = {}
    for index, _, task_id in sorted(mapped):  # the approval's outcome after its gate's
        for match in GATE_OUTCOME.finditer(api.log_text(run_id, task_id, index)):
            outcomes[index] = match.group(1).strip()
    return outcomes


def latest(items: list[dict], key: str = "CreationTime") -> dict:
    return max(items, key=lambda item: item[key])


def summarize(stack: Stack, dataset: Path) -> None:
    """What the run produced, read back through the AWS APIs of the local runtime."""
    key_pair = stack.key_pair()
    session = boto3.Session(aws_access_key_id=key_pair.access_key_id,
                            aws_secret_access_key=key_pair.secret_access_key,
                            region_name=LOCAL_REGION)  # fmt: skip
    sagemaker = session.client("sagemaker", endpoint_url=stack.runtime_url)
    s3 = session.client("s3", endpoint_url=stack.runtime_url)
    tunings = sagemaker.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"]
    if not tunings:
        return
    # The newest tuning job is one of the run's candidates': <project>-tune-<run stamp>-<index>.
    run_tuning = latest(tunings)["HyperParameterTuningJobName"].rsplit("-", 1)[0]
    names = sorted(t["HyperParameterTuningJobName"] for t in tunings)
    for tuning in (name for name in names if name.startswith(f"{run_tuning}-")):
        index = tuning.rsplit("-", 1)[1]
        print(f"\n== Candidate {index} ==")
        print_tuning(sagemaker, tuning)
        print_training(sagemaker, tuning.replace("-tune-", "-train-"))
        print_evaluation(s3, tuning.replace("-tune-", "-transform-"))
    print_comparison(s3, f"evaluation/{run_tuning.replace('-tune-', '-transform-')}/")
    print_predictions(session, stack, dataset)
    print_registry(sagemaker)


def print_tuning(sagemaker, name: str) -> None:
    tuning = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    best = tuning.get("BestTrainingJob")
    if not best:
        print(f"Tuning job {name}: {tuning['HyperParameterTuningJobStatus']}, no best trial")
        return
    objective = best["FinalHyperParameterTuningJobObjectiveMetric"]
    print(f"Tuning job {name}: best trial {best['TrainingJobName']}")
    print(f"  {objective['MetricName']} = {objective['Value']:.4f}")
    for key, value in sorted(best["TunedHyperParameters"].items()):
        print(f"  {key} = {value}")


def print_training(sagemaker, name: str) -> None:
    try:
        training = sagemaker.describe_training_job(TrainingJobName=name)
    except sagemaker.exceptions.ClientError:
        print(f"Training job {name}: never started")
        return
    backbone = training["HyperParameters"].get("backbone", "").strip('"')
    print(f"Training job {name} ({backbone}): {training['TrainingJobStatus']}")
    print(f"  model: {training.get('ModelArtifacts', {}).get('S3ModelArtifacts')}")
    print("  rules:")
    for status in [*training.get("DebugRuleEvaluationStatuses", []),
                   *training.get("ProfilerRuleEvaluationStatuses", [])]:  # fmt: skip
        details = status.get("StatusDetails", "").strip().splitlines()
        print(f"    {status['RuleConfigurationName']:<26} {status['RuleEvaluationStatus']:<14}"
              f" {details[0][:90] if details else ''}")  # fmt: skip


def print_comparison(s3, prefix: str) -> None:
    """The compare task's side-by-side table, as its log printed it."""
    from sagemaker_lifecycle.comparison import format_comparison  # on sys.path via the stack

    bucket = s3.list_buckets()["Buckets"][0]["Name"]
    try:
        compared = json.loads(
            s3.get_object(Bucket=bucket, Key=f"{prefix}comparison.json")["Body"].read()
        )
    except s3.exceptions.NoSuchKey:
        print("\nNo comparison: no candidate reached it (see compare.compare_candidates's log)")
        return
    print(f"\n== The candidates side by side (s3://{bucket}/{prefix}comparison.html) ==")
    print(format_comparison(compared))


def print_predictions(session: boto3.Session, stack: Stack, dataset: Path) -> None:
    """One prediction on a real validation image from the endpoint users call: per architecture
    (its TargetModel) on a multi-model endpoint, the one model's otherwise."""
    sagemaker = session.client("sagemaker", endpoint_url=stack.runtime_url)
    runtime = session.client("sagemaker-runtime", endpoint_url=stack.runtime_url)
    s3 = session.client("s3", endpoint_url=stack.runtime_url)
    endpoints = sagemaker.list_endpoints()["Endpoints"]
    if not endpoints:
        return
    endpoint = latest(endpoints)["EndpointName"]
    config = sagemaker.describe_endpoint_config(
        EndpointConfigName=sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    )
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    container = model["PrimaryContainer"]
    targets = [None]
    if container.get("Mode") == "MultiModel":
        bucket, _, prefix = container["ModelDataUrl"].removeprefix("s3://").partition("/")
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        targets = [item["Key"].removeprefix(prefix) for item in listed]
    image = min((dataset / "valid").rglob("*.jpg"))
    print(f"\nEndpoint {endpoint} on {image.relative_to(dataset)}:")
    for target in targets:
        answer = runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="image/jpeg", Accept="application/json",
            Body=image.read_bytes(), **({"TargetModel": target} if target else {}),
        )  # fmt: skip
        label = f"TargetModel {target}" if target else "its model"
        print(f"  {label}: {answer['Body'].read().decode()[:300]}")


def print_registry(sagemaker) -> None:
    """Every version of each model package group (the project's), oldest first, with its approval
    status and why (a second run shows its promotion decision against the first's model), and
    since when an endpoint served it (only Approved versions ever do)."""
    groups = sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]
    for group in groups:
        name = group["ModelPackageGroupName"]
        print(f"\nModel Registry: group {name}")
        pages = sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=name)
        for summary in (s for page in pages for s in page["ModelPackageSummaryList"]):
            version = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            metadata = version.get("CustomerMetadataProperties", {})
            status = version["ModelApprovalStatus"]
            print(
                f"  version {version['ModelPackageVersion']}: {status:<21} "
                f"{metadata.get('training_job', '')} on snapshot {metadata.get('snapshot_id')}"
            )
            if version.get("ApprovalDescription"):
                print(f"    {version['ApprovalDescription']}")
            for key, endpoint in sorted(metadata.items()):
                if key.startswith("served:"):
                    print(f"    served by {endpoint} since {key.removeprefix('served:')}")


def print_evaluation(s3, transform_name: str) -> None:
    """The evaluate task's report of a candidate's batch transform, read from S3."""
    bucket = s3.list_buckets()["Buckets"][0]["Name"]
    key = f"evaluation/{transform_name}/report.json"
    try:
        report = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        print(f"Evaluation of {transform_name}: none (the candidate stopped before it)")
        return
    top_k = next(name for name in report if re.fullmatch(r"top_\d+_accuracy", name))
    print(f"Evaluation of batch transform {transform_name} ({report['count']} images):")
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
        print(f"Explanations: none in s3://{bucket}/{prefix} (explanations.enabled, or the run "
              "stopped before them)")  # fmt: skip
        return
    deletion = summary["deletion"]
    ratio = f"{deletion['ratio']:.2f}" if deletion["ratio"] is not None else "undefined"
    print(f"Explanations ({summary['method']}, {summary['explained_images']} images): "
          f"s3://{bucket}/{prefix}report.html")  # fmt: skip
    print(f"  deletion test: masking the {deletion['fraction']:.0%} most salient pixels lowers the "
          f"predicted class's probability {ratio}x as much as masking random ones")  # fmt: skip


def main() -> int:
    DEMO_DIR.mkdir(exist_ok=True)
    stack = Stack()
    dataset = stack.write_local_settings()
    services = [stack.runtime(), stack.airflow()]
    started_here = [service for service in services if service.running_process() is None]
    started = time.monotonic()
    # As in the browser tests: the DAG's weekly schedule makes no run beside the demo's.
    environment = {**stack.airflow_environment(), "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}
    try:
        start_together([(service, environment) for service in services])
        print(f"stack up after {time.monotonic() - started:.0f} s")
        run = run_dag(AirflowApi(stack))
        for index, outcome in sorted(run.gate_outcomes.items()):
            print(f"\ncandidate {index}: {outcome}")
        summarize(stack, dataset)
    finally:
        for service in reversed(started_here):
            service.stop()
    print(f"\nArtifacts: S3 objects and job records in {stack.runtime_data_dir}")
    print(f"  `make up` serves them again at {stack.runtime_url}, and the run's task logs and its")
    print(f"  model-run page in the Airflow UI at {stack.airflow_url} (logs: {stack.run_dir})")
    print(f"Demo run {'succeeded' if run.succeeded else 'FAILED: see the task logs in the UI'} "
          f"in {time.monotonic() - started:.0f} s.")  # fmt: skip
    return 0 if run.succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
