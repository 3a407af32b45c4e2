"""A backfill the way a user runs one: `airflow backfill create` through a running scheduler.

The stack of `make up` (the local runtime and `airflow standalone`: scheduler, LocalExecutor,
dag-processor, api-server, triggerer) on free ports. Two earlier runs published snapshot A (as of
Nov 1) and, after the dataset changed, snapshot B (as of Nov 5); only their staging ran. A backfill
over the Mondays Nov 2, 9 and 16 must train Nov 2 on A and Nov 9 and 16 on B, upload no snapshot,
and give every run its own job names.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import time

import boto3
import pytest
from stack_access import log_tail, running_stack

from demo.dataset import make_dataset
from devtools.stack import VENV_BIN, Stack

# Stack start-up, two staging runs and three DAG runs: longer than the suite's 600 s per test.
# A hang guard, not a speed check: at load 9-11 (a fresh-clone `.ci/run` beside a rule-corpus
# recording) the module reached 1800 s with the third run deploying.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3000)]

DAG_ID = "dog_breed_classifier"
PUBLISHED = {"A": "2026-11-01T12:00:00+00:00", "B": "2026-11-05T12:00:00+00:00"}
BACKFILL_DATES = ["2026-11-02", "2026-11-09", "2026-11-16"]
# Every other task is marked success. `dags test` fullmatches the pattern against each task id: the
# old `^(?!...)` matched only an empty prefix, so both staging runs ran the whole pipeline.
ONLY_STAGING = r"(?!(resolve_settings|stage\.stage_dataset)$).*"
RUNS_TIMEOUT_S = 2400


def airflow(env: dict, *args: str, timeout: float = 600) -> str:
    result = subprocess.run([str(VENV_BIN / "airflow"), *args], env=env, capture_output=True,
                            text=True, timeout=timeout, check=False)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"airflow {' '.join(args)}:\n{output[-5000:]}"
    return output


def fast_conf(dataset) -> dict:
    """The smallest budget that still runs every step: one candidate, one trial of a tiny CNN."""
    return {
        "dataset_source": str(dataset), "max_tuning_jobs": 1, "max_parallel_jobs": 1,
        "poll_interval_seconds": 1,
        "overrides": {
            "hyperparameters": {"backbone": "simplecnn", "epochs": 2, "image-size": 32,
                                "freeze": "full"},
            "candidates": [{"name": "simplecnn", "hyperparameters": {}}],
            "tuning": {"categorical": {"batch-size": [8]}},
            "rules": {"collection_overrides": {"save_interval": "2"}},
        },
    }  # fmt: skip


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(tmp_path_factory.mktemp("backfill_stack")) as stack:
        yield stack


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """A, and B: A with one image of each split replaced."""
    root = tmp_path_factory.mktemp("backfill_data")
    a = make_dataset(root / "A", num_classes=2, image_size=32,
                     images_per_class={"train": 12, "valid": 4, "test": 4})  # fmt: skip
    b = shutil.copytree(a, root / "B")
    for split in ("train", "valid", "test"):
        first, second = sorted((b / split / "001.Affenpinscher").iterdir())[:2]
        first.write_bytes(second.read_bytes())
    return {"A": a, "B": b}


@pytest.fixture(scope="module")
def published(stack, datasets, tmp_path_factory):
    """Runs of Nov 1 and Nov 5 (in an Airflow home of their own) that staged A, then B."""
    env = {**stack.airflow_environment(), "AIRFLOW_HOME": str(tmp_path_factory.mktemp("pub"))}
    env.pop("AIRFLOW__CORE__EXECUTION_API_SERVER_URL")  # dags test runs its tasks in-process
    airflow(env, "db", "migrate")
    for name, date in PUBLISHED.items():
        conf = json.dumps(fast_conf(datasets[name]))
        output = airflow(env, "dags", "test", DAG_ID, date, "-c", conf,
                         "--mark-success-pattern", ONLY_STAGING)  # fmt: skip
        assert "(uploaded)" in output, output[-5000:]


def snapshot_objects(s3) -> dict[str, str]:
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket="dog-breed-classifier", Prefix="datasets/"
    )
    return {item["Key"]: str(item["LastModified"]) for page in pages
            for item in page.get("Contents", [])}  # fmt: skip


def stack_db(stack: Stack, query: str, *args):
    with sqlite3.connect(stack.airflow_home / "airflow.db") as db:
        return db.execute(query, args).fetchall()


def xcom(stack: Stack, task_id: str) -> dict[str, dict]:
    """The return values of `task_id` in the backfill's runs, by logical date (YYYY-MM-DD)."""
    rows = stack_db(
        stack,
        "SELECT dr.logical_date, x.value FROM xcom x JOIN dag_run dr ON dr.id = x.dag_run_id "
        "WHERE x.task_id = ? AND x.key = 'return_value' AND dr.run_type = 'backfill'",
        task_id,
    )
    values = {}
    for date, value in rows:
        decoded = json.loads(value)
        values[str(date)[:10]] = json.loads(decoded) if isinstance(decoded, str) else decoded
    return values


def wait_for_backfill(stack: Stack) -> dict[str, str]:
    deadline = time.monotonic() + RUNS_TIMEOUT_S
    while time.monotonic() < deadline:
        rows = stack_db(stack, "SELECT logical_date, state FROM dag_run "
                               "WHERE dag_id = ? AND run_type = 'backfill'", DAG_ID)  # fmt: skip
        states = {str(date)[:10]: state for date, state in rows}
        if len(states) == len(BACKFILL_DATES) and set(states.values()) <= {"success", "failed"}:
            return states
        time.sleep(10)
    pytest.fail(f"the backfill did not finish within {RUNS_TIMEOUT_S} s: {states}")


def failed_tasks(stack: Stack) -> str:
    """The backfill's failed tasks with the tails of their logs, for a failure message."""
    rows = stack_db(
        stack,
        "SELECT ti.run_id, ti.task_id, ti.try_number FROM task_instance ti JOIN dag_run dr "
        "ON dr.run_id = ti.run_id AND dr.dag_id = ti.dag_id WHERE dr.run_type = 'backfill' "
        "AND ti.state = 'failed'",
    )
    logs = stack.airflow_home / "logs" / f"dag_id={DAG_ID}"
    return "\n".join(
        f"---- {run_id} {task_id} (try {try_number}) ----\n"
        + log_tail(logs / f"run_id={run_id}" / f"task_id={task_id}" / f"attempt={try_number}.log")
        for run_id, task_id, try_number in rows
    )


def stack_s3(stack: Stack):
    """An S3 client of the stack's runtime, signed with the keys `make up` prints."""
    key_pair = stack.key_pair()
    return boto3.client("s3", endpoint_url=stack.runtime_url, region_name="us-east-1",
                        aws_access_key_id=key_pair.access_key_id,
                        aws_secret_access_key=key_pair.secret_access_key)  # fmt: skip


@pytest.fixture(scope="module")
def backfill(stack, datasets, published):
    env = stack.airflow_environment()
    s3 = stack_s3(stack)
    before = snapshot_objects(s3)
    airflow(env, "dags", "reserialize")
    airflow(env, "dags", "unpause", DAG_ID)
    airflow(env, "backfill", "create", "--dag-id", DAG_ID, "--from-date", BACKFILL_DATES[0],
            "--to-date", BACKFILL_DATES[-1], "--max-active-runs", "1",
            "--dag-run-conf", json.dumps(fast_conf(datasets["A"])))  # fmt: skip
    states = wait_for_backfill(stack)
    return {"states": states, "before": before, "after": snapshot_objects(s3)}


def test_each_backfill_date_trains_on_the_snapshot_of_its_date(stack, backfill):
    if backfill["states"] != dict.fromkeys(BACKFILL_DATES, "success"):
        pytest.fail(f"{backfill['states']}\n{failed_tasks(stack)}")
    staged = xcom(stack, "stage.stage_dataset")
    by_date = {date: staged[date]["snapshot_id"] for date in BACKFILL_DATES}
    a, b = by_date["2026-11-02"], by_date["2026-11-09"]
    assert a != b and by_date["2026-11-16"] == b
    for date in BACKFILL_DATES:
        assert staged[date]["snapshot_choice"].startswith(
            f"backfill: {by_date[date]} is the newest"
        )
    assert f"(published as of {PUBLISHED['A']}" in staged["2026-11-02"]["snapshot_choice"]
    assert f"(published as of {PUBLISHED['B']}" in staged["2026-11-16"]["snapshot_choice"]


def test_the_backfill_uploads_no_snapshot(backfill):
    before, after = backfill["before"], backfill["after"]
    snapshots = {key.split("/")[1] for key in before if key.endswith("/manifest.json")}
    assert len(snapshots) == 2
    assert after == before  # no object under datasets/ written again, none added


def test_every_backfill_run_has_its_own_job_names(stack, backfill):
    training = xcom(stack, "candidate.train.train_best_model")
    names = [training[date]["TrainingJobName"] for date in BACKFILL_DATES]
    assert len(set(names)) == 3, names
    assert [name.split("-")[2] for name in names] == ["261102", "261109", "261116"]
