"""Through a running scheduler (LocalExecutor, the `make up` stack: scheduler, triggerer,
dag-processor, api-server and the local runtime, on free ports): while the pipeline's SageMaker
jobs run, their tasks are deferred and no task instance is `running` (no worker slot is held);
the training task's log, read through the API as the UI reads it, shows the job's own log lines
while it runs; and marking the deferred training task failed through the API stops its job (the
trigger's on_kill, before the run's clean-up task would).
"""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

import boto3
import pytest
from runtime_access import CLIENT_CONFIG, REGION, free_port

from devtools.stack import Stack

RUN_TIMEOUT_S = 900
# Airflow's components start in 20-40 s on an idle machine; a shared two-core one takes minutes.
AIRFLOW_START_S = 600
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(RUN_TIMEOUT_S + AIRFLOW_START_S + 300)]
DAG_ID = "dog_breed_classifier"
JOB_TASKS = ("candidate.train.tune_hyperparameters", "candidate.train.train_best_model")
TRAINING_TASK = "candidate.train.train_best_model"
# One candidate (map index 0), one trial, then the final training: eight epochs give time to read
# its log and mark it failed.
CONF = {
    "max_tuning_jobs": 1,
    "max_parallel_jobs": 1,
    "poll_interval_seconds": 1,
    "overrides": {"hyperparameters": {"epochs": 8}, "tuning": {"categorical": {
        "batch-size": [8]}}, "candidates": [{"name": "simplecnn", "hyperparameters": {}}]},
}  # fmt: skip
# The final training job's name (naming.RunNames.training_job); trials are named after the tuning
# job.
TRAINING_MARKER = "-train-"


class Api:
    """Airflow's REST API with a bearer token of the simple auth manager's admin."""

    def __init__(self, stack: Stack):
        self.base = stack.airflow_url
        body = json.dumps({"username": "admin", "password": stack.admin_password()}).encode()
        token = self._call("POST", "/auth/token", body, {})["access_token"]
        self.headers = {"Authorization": f"Bearer {token}"}

    def _call(self, method: str, path: str, body: bytes | None, headers: dict):
        request = urllib.request.Request(
            self.base + path, data=body, method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json",
                     **headers},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read() or b"{}")

    def get(self, path: str):
        return self._call("GET", path, None, self.headers)

    def send(self, method: str, path: str, payload: dict):
        return self._call(method, path, json.dumps(payload).encode(), self.headers)


@dataclass
class Samples:
    """What was seen while a job task was deferred: (running task ids, SageMaker jobs running)."""

    seen: list[tuple[list[str], list[str]]] = field(default_factory=list)

    def with_jobs_running(self) -> list[tuple[list[str], list[str]]]:
        return [sample for sample in self.seen if sample[1]]


class PatientStack(Stack):
    """`make up`'s stack, waiting longer for Airflow to come up."""

    def airflow(self):
        return dataclasses.replace(super().airflow(), start_timeout=AIRFLOW_START_S)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("deferred_stack")
    stack = PatientStack(
        runtime_port=free_port(), airflow_port=free_port(), airflow_home=home / "airflow",
        runtime_data_dir=home / "runtime", run_dir=home / "run",
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE", "False")
        patch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
        try:
            stack.up()
            yield stack
        finally:
            stack.down()
            for log in sorted(stack.run_dir.glob("*.log")):
                print(f"---- {log.name} (tail) ----\n{log.read_text()[-3000:]}")


def wait_for_dag(api: Api) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            api.get(f"/api/v2/dags/{DAG_ID}")
            return
        except urllib.error.HTTPError:
            time.sleep(3)
    pytest.fail(f"{DAG_ID} was never parsed")


def jobs_in_progress(sagemaker) -> list[str]:
    training = sagemaker.list_training_jobs(StatusEquals="InProgress")["TrainingJobSummaries"]
    tuning = sagemaker.list_hyper_parameter_tuning_jobs(StatusEquals="InProgress")[
        "HyperParameterTuningJobSummaries"
    ]
    return [job["TrainingJobName"] for job in training] + [
        job["HyperParameterTuningJobName"] for job in tuning
    ]


def test_deferred_job_tasks_hold_no_worker_and_marking_training_failed_stops_its_job(stack):
    api = Api(stack)
    key_pair = stack.key_pair()
    sagemaker = boto3.client(
        "sagemaker", endpoint_url=stack.runtime_url, region_name=REGION, config=CLIENT_CONFIG,
        aws_access_key_id=key_pair.access_key_id, aws_secret_access_key=key_pair.secret_access_key,
    )  # fmt: skip
    wait_for_dag(api)
    api.send("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    run_id = api.send("POST", f"/api/v2/dags/{DAG_ID}/dagRuns",
                      {"logical_date": None, "conf": CONF})["dag_run_id"]  # fmt: skip
    tis = f"/api/v2/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances"
    samples, training_job, log_text = Samples(), None, ""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        states = {ti["task_id"]: ti for ti in api.get(f"{tis}?limit=100")["task_instances"]}
        deferred = [task for task in JOB_TASKS if states.get(task, {}).get("state") == "deferred"]
        if deferred:
            running = api.get("/api/v2/dags/~/dagRuns/~/taskInstances?state=running")
            samples.seen.append(
                ([ti["task_id"] for ti in running["task_instances"]], jobs_in_progress(sagemaker))
            )
        train = states.get(TRAINING_TASK, {})
        if train.get("state") == "deferred":
            training_job = next(
                (name for name in jobs_in_progress(sagemaker) if TRAINING_MARKER in name), None
            )
            log = api.get(
                f"{tis}/{TRAINING_TASK}/logs/{train['try_number']}?full_content=true&map_index=0"
            )
            log_text = json.dumps(log)
            if training_job and f"[{training_job}]" in log_text and "epoch" in log_text:
                break
        if states.get(TRAINING_TASK, {}).get("state") in ("success", "failed"):
            pytest.fail(
                f"training ended before it was seen deferred and logging: {log_text[-2000:]}"
            )
        time.sleep(2)
    else:
        pytest.fail(f"the training task was never seen deferred with its job's log: {samples}")

    with_jobs = samples.with_jobs_running()
    print(
        f"samples while a job task was deferred and a SageMaker job ran: {len(with_jobs)}; "
        f"running task instances in them: {[len(running) for running, _ in with_jobs]}"
    )
    assert len(with_jobs) >= 3, samples
    assert all(not running for running, _ in with_jobs), with_jobs

    api.send("PATCH", f"{tis}/{TRAINING_TASK}/0", {"new_state": "failed"})
    stopping_deadline = time.monotonic() + 90
    while time.monotonic() < stopping_deadline:
        status = sagemaker.describe_training_job(TrainingJobName=training_job)["TrainingJobStatus"]
        if status in ("Stopping", "Stopped"):
            break
        time.sleep(1)
    assert status in ("Stopping", "Stopped"), f"{training_job} is still {status}"
    # The kill reached the trigger: its on_kill asked SageMaker to stop the job. The run's
    # clean-up (which stops what still runs) may get there first on a loaded machine; then
    # on_kill's stop finds the job already stopping, and says so.
    cleanup = wait_for_task(api, tis, "clean_up.clean_up_failed_run")
    assert cleanup["state"] == "success", cleanup
    stopped_by_cleanup = api.get(f"{tis}/clean_up.clean_up_failed_run/xcomEntries/return_value")[
        "value"
    ]
    asked = f"Asked SageMaker to stop training job {training_job}"
    refused = f"training job {training_job} was not stopped"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        log_text = json.dumps(
            api.get(
                f"{tis}/{TRAINING_TASK}/logs/{train['try_number']}?full_content=true&map_index=0"
            )
        )
        if asked in log_text or (refused in log_text and training_job in str(stopped_by_cleanup)):
            break
        time.sleep(2)
    else:
        pytest.fail(f"the trigger's on_kill never asked to stop {training_job}: {log_text[-3000:]}")


def wait_for_task(api: Api, tis: str, task_id: str) -> dict:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ti = api.get(f"{tis}/{task_id}")
        if ti["state"] in ("success", "failed", "upstream_failed", "skipped"):
            return ti
        time.sleep(3)
    pytest.fail(f"{task_id} did not finish")
