"""The whole DAG against the local SageMaker runtime, through `airflow dags test`.

Two runs on two logical dates over one unchanged dataset (a backfill of two dates, driven by
`airflow dags test` since `airflow backfill create` needs a running scheduler): the first deploys
and evaluates and announces its new snapshot; the second reuses that snapshot without uploading
or announcing it, warm-starts its tuning from the first, evaluates its rules as processing jobs
(rules.engine: processing), forces a rule to fire, stops before deployment and cleans up. A task
of the first run is then run again, as a cleared task would be.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime

import pytest
import runtime_access

pytestmark = pytest.mark.e2e

FIRST_DATE, SECOND_DATE = "2026-11-01T00:00:00+00:00", "2026-11-08T00:00:00+00:00"
RUN_ID = re.compile(r"run_id=(\S+?),")
BLOCKED_RUN_STARTED: list[datetime] = []  # when the second date's run began (set once)


def run_id_of(output: str) -> str:
    return RUN_ID.findall(output)[-1]


@pytest.fixture(scope="module")
def e2e_dataset(tmp_path_factory):
    from demo.dataset import make_dataset

    root = tmp_path_factory.mktemp("e2e") / "dataset"
    return make_dataset(root, num_classes=2, image_size=32,
                        images_per_class={"train": 12, "valid": 4, "test": 4})  # fmt: skip


@pytest.fixture(scope="module")
def first_run(airflow, e2e_dataset, e2e_conf):
    result = airflow.dags_test(e2e_conf(e2e_dataset), FIRST_DATE)
    return result, run_id_of(result.stdout + result.stderr)


@pytest.fixture(scope="module")
def blocked_run(airflow, e2e_dataset, e2e_conf, first_run):
    # A mean absolute gradient below 1000 always counts as vanishing: the rule must fire.
    conf = e2e_conf(e2e_dataset, rules={
        "collection_overrides": {"save_interval": "2"},
        "debugger": {"VanishingGradient": {"threshold": "1000"}},
    })  # fmt: skip
    conf["max_tuning_jobs"] = 1
    # Processing jobs evaluate this run's rules (accounts without Debugger); the gate must block
    # on their outcome exactly as on Debugger's.
    conf["rules_engine"] = "processing"
    BLOCKED_RUN_STARTED.append(datetime.now(UTC))
    result = airflow.dags_test(conf, SECOND_DATE)
    return result, run_id_of(result.stdout + result.stderr)


def client(service, runtime_url):
    return runtime_access.client(runtime_url, service)


def sagemaker(runtime_url):
    return client("sagemaker", runtime_url)


def test_full_run_tunes_trains_gates_deploys_and_evaluates(airflow, first_run):
    result, run_id = first_run
    output = result.stdout + result.stderr
    states = airflow.task_states(run_id)
    assert states.pop("clean_up_failed_run") == "skipped", output[-5000:]
    assert set(states.values()) == {"success"}, (states, output[-5000:])
    assert "Best training job dogbreed-tune-" in output
    assert re.search(r"VanishingGradient\s+debugger\s+NoIssuesFound\s+yes", output)
    assert re.search(r"ProfilerReport\s+profiler\s+\w+", output)
    assert re.search(r"Profiler report: s3://\S+/rule-output/ProfilerReport\S*/profiler-output/"
                     r"profiler-report\.html", output)  # fmt: skip
    assert '{"predictions": [{"label": "00' in output
    assert re.search(r"Evaluation: images: 8, accuracy: [0-9.]+, top_2_accuracy: 1.0000", output)
    assert re.search(r"\(HTML: s3://dog-breed-classifier/evaluation/\S+/report\.html\)", output)


def test_first_run_leaves_an_in_service_endpoint(first_run, local_runtime):
    endpoint = sagemaker(local_runtime).describe_endpoint(EndpointName="dogbreed-endpoint")
    assert endpoint["EndpointStatus"] == "InService"


def test_a_blocking_rule_stops_the_run_before_deployment(airflow, blocked_run, local_runtime):
    result, run_id = blocked_run
    output = result.stdout + result.stderr
    states = airflow.task_states(run_id)
    assert states["train_best_model"] == "success"
    assert states["gate_on_rules"] == "failed", (states, output[-5000:])
    assert all(states[task] != "success" for task in ("create_model", "deploy_endpoint",
                                                       "batch_transform", "evaluate"))  # fmt: skip
    assert re.search(r"VanishingGradient\s+debugger\s+IssuesFound\s+\d+\s+yes", output)
    assert re.search(r"Profiler report: s3://\S+/rule-output/ProfilerReport/profiler-output/"
                     r"profiler-report\.html", output)  # fmt: skip
    assert states["start_rule_jobs"] == "success"
    assert "Deployment blocked by the rules of" in output
    stamp = re.search(r"Rule outcomes of dogbreed-train-(\S+):", output).group(1)
    models = sagemaker(local_runtime).list_models()["Models"]
    assert f"dogbreed-model-{stamp}" not in [model["ModelName"] for model in models]
    assert states["clean_up_failed_run"] == "success"
    assert f"Clean-up of failed run {stamp}: stopped no job; deleted nothing" in output


def test_second_date_reuses_the_unchanged_snapshot_and_announces_no_asset_event(
    airflow, first_run, blocked_run
):
    first, second = (run[0].stdout + run[0].stderr for run in (first_run, blocked_run))
    snapshot = re.search(r"Dataset snapshot (\w+) \(uploaded\)", first).group(1)
    assert f"Dataset snapshot {snapshot} (unchanged, reused)" in second
    assert f"Asset event: new snapshot {snapshot}" in first
    assert "Asset event" not in second
    with sqlite3.connect(airflow.home / "airflow.db") as db:
        events = db.execute(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri = ?",
            ("s3://dog-breed-classifier/datasets",),
        ).fetchall()
    assert [json.loads(extra)["snapshot_id"] for (extra,) in events] == [snapshot]


def test_a_backfill_of_two_dates_trains_once_per_date_without_uploading_again(
    airflow, first_run, blocked_run, local_runtime
):
    listed = airflow.run("dags", "list-runs", "dog_breed_classifier", "-o", "json")
    # Log lines may precede the JSON document on stdout.
    document = next(line for line in listed.stdout.splitlines() if line.startswith("["))
    runs = {run["run_id"]: run for run in json.loads(document)}
    run_ids = [first_run[1], blocked_run[1]]
    assert [runs[run_id]["logical_date"][:10] for run_id in run_ids] == ["2026-11-01", "2026-11-08"]
    assert [airflow.task_states(run_id)["train_best_model"] for run_id in run_ids] == [
        "success",
        "success",
    ]
    first_output = first_run[0].stdout + first_run[0].stderr
    snapshot = re.search(r"Dataset snapshot (\w+) \(uploaded\)", first_output).group(1)
    pages = (
        client("s3", local_runtime)
        .get_paginator("list_objects_v2")
        .paginate(Bucket="dog-breed-classifier", Prefix=f"datasets/{snapshot}/")
    )
    written = [item["LastModified"] for page in pages for item in page["Contents"]]
    assert len(written) == 1 + 2 * (12 + 4 + 4)  # manifest + every image of two classes
    assert max(written) < BLOCKED_RUN_STARTED[0]


def test_second_date_warm_starts_from_the_first_dates_tuning_job(blocked_run, local_runtime):
    output = blocked_run[0].stdout + blocked_run[0].stderr
    warm = re.search(r"Warm start \(IdenticalDataAndAlgorithm\) from tuning job (\S+)", output)
    assert warm, output[-5000:]
    tuning_job = re.search(r"Creating hyperparameter tuning job (\S+)", output).group(1)
    described = sagemaker(local_runtime).describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning_job
    )
    assert described["WarmStartConfig"]["ParentHyperParameterTuningJobs"] == [
        {"HyperParameterTuningJobName": warm.group(1)}
    ]


def test_a_rerun_training_task_adopts_its_completed_job(airflow, first_run, local_runtime):
    _, run_id = first_run
    result = airflow.run("tasks", "test", "dog_breed_classifier", "train_best_model", run_id)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    adopted = re.search(r"Adopting training job (\S+), already Completed", output)
    assert adopted, output[-5000:]
    jobs = sagemaker(local_runtime).list_training_jobs(NameContains=adopted.group(1))
    assert [job["TrainingJobName"] for job in jobs["TrainingJobSummaries"]] == [adopted.group(1)]
