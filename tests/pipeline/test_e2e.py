"""The whole DAG against the local SageMaker runtime, through `airflow dags test`.

Two runs on two logical dates over one unchanged dataset (a backfill of two dates, driven by
`airflow dags test` since `airflow backfill create` needs a running scheduler): the first trains
two candidate architectures (simplecnn and resnet18), compares them, deploys both behind one
multi-model endpoint and announces its new snapshot; the second reuses that snapshot without
uploading or announcing it, warm-starts its tuning from the first's of the same architecture,
evaluates its rules as processing jobs (rules.engine: processing), forces a rule to fire so that
its one trainable candidate is blocked (the other cannot start training), fails at the
comparison with both reasons and cleans up; its clean-up task, run again, stops a job that a
killed try left running. A task of the first run is then run again, as a cleared task would be.

The approval step, on three paths: the first run's Overtraining is made to fire (an `approve`
rule) and a person approves each candidate through Airflow's Core API; a third date's run is
rejected; a fourth date's run gets no answer and its configured default (Approve) applies after
a three-second timeout, while its second candidate fails and is left out without stopping the
run; that run deletes its endpoint at the end (delete_endpoint: true). demo/approvals.py runs
beside every run to apply such timeouts, as the scheduler would.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import botocore.session
import pytest
import runtime_access
from sagemaker_lifecycle.naming import retry_name

# A full run takes 6-8 minutes on two quiet cores and twice that under load: the module's runs are
# bounded by conftest's DAG_RUN_TIMEOUT_S, not by pytest's default 600 s per test.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

FIRST_DATE, SECOND_DATE = "2026-11-01T00:00:00+00:00", "2026-11-08T00:00:00+00:00"
THIRD_DATE, FOURTH_DATE = "2026-11-15T00:00:00+00:00", "2026-11-22T00:00:00+00:00"
ANSWER_APPROVAL = Path(__file__).with_name("answer_approval.py")
# Overtraining (policy approve) fires at once: no saved step improves the loss by 1000.
OVERTRAINING_FIRES = {
    "collection_overrides": {"save_interval": "2"},
    "debugger": {"Overtraining": {"delta": "1000", "patience_train": "1"}},
}
# The first candidate's tasks after its approval, and the run's after the comparison.
DEPLOYMENT_TASKS = (
    "candidate.evaluate.plan_evaluation[0]",
    "candidate.evaluate.create_model[0]",
    "candidate.evaluate.batch_transform[0]",
    "candidate.evaluate.evaluate[0]",
    "candidate.evaluate.plan_explanations[0]",
    "candidate.evaluate.explain_predictions[0]",
    "compare.compare_candidates",
    "deploy.plan_deployment",
    "deploy.create_model",
    "deploy.deploy_endpoint",
)
# The first run's two architectures (the second from scratch: nothing can be downloaded here).
TWO_ARCHITECTURES = [
    {"name": "simplecnn", "hyperparameters": {}},
    {"name": "resnet18", "hyperparameters": {"backbone": "resnet18", "pretrained-weights": "none"}},
]
# A candidate whose training cannot start (train.py refuses the backbone): left out of the run.
CANNOT_TRAIN = {"name": "broken", "hyperparameters": {"backbone": "no-such-backbone"}}
RUN_STAMP = re.compile(r"Rule outcomes of dogbreed-train-(\d{6}-[0-9a-f]{8})-\d:")
RUN_ID = re.compile(r"run_id=(\S+?),")
# include/pipeline.yaml's seven rules: rule -> (kind, policy).
RULES = {
    "VanishingGradient": ("debugger", "block"), "Overfit": ("debugger", "approve"),
    "Overtraining": ("debugger", "approve"), "PoorWeightInitialization": ("debugger", "block"),
    "LossNotDecreasing": ("debugger", "approve"), "LowGPUUtilization": ("profiler", "warn"),
    "ProfilerReport": ("profiler", "warn"),
}  # fmt: skip
TRAINING_HOSTS = 2
BLOCKED_RUN_STARTED: list[datetime] = []  # when the second date's run began (set once)


def run_id_of(output: str) -> str:
    return RUN_ID.findall(output)[-1]


@pytest.fixture(scope="module")
def e2e_dataset(tmp_path_factory):
    from demo.dataset import make_dataset

    root = tmp_path_factory.mktemp("e2e") / "dataset"
    return make_dataset(root, num_classes=2, image_size=32,
                        images_per_class={"train": 12, "valid": 4, "test": 4})  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def approval_timeouts(airflow):
    """demo/approvals.py beside the module's `dags test` runs (see the module doc)."""
    process = subprocess.Popen([sys.executable, "-m", "demo.approvals"], env=airflow.env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    yield
    process.terminate()
    process.wait(timeout=30)


# Endpoint updates (the challenger joining, the promotion, the rollback) without baking periods.
NO_BAKING = {"update": {"wait_seconds": 0}}


def approval_conf(e2e_conf, dataset, timeout_seconds: int, default: str) -> dict:
    return e2e_conf(dataset, deployment=NO_BAKING, rules={
        **OVERTRAINING_FIRES, "approval": {"timeout_seconds": timeout_seconds, "default": default},
    })  # fmt: skip


def dags_test_answered(airflow, conf: dict, logical_date: str, answer: str, requests: int = 1):
    """`dags test` while answer_approval.py answers `requests` approval requests with `answer`."""
    env = {**airflow.env, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"}
    with subprocess.Popen([sys.executable, str(ANSWER_APPROVAL), "dog_breed_classifier", answer,
                           str(requests)], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as person:  # fmt: skip
        result = airflow.dags_test(conf, logical_date)
        said = person.communicate(timeout=60)[0]
    assert person.returncode == 0 and said.count(f"answered {answer}") == requests, said[-3000:]
    return result, run_id_of(result.stdout + result.stderr)


@pytest.fixture(scope="module")
def first_run(airflow, e2e_dataset, e2e_conf):
    conf = approval_conf(e2e_conf, e2e_dataset, timeout_seconds=600, default="Reject")
    # The final training trains data-parallel on two hosts (instances.training_count).
    conf["overrides"]["instances"] = {"training_count": TRAINING_HOSTS}
    conf["overrides"]["candidates"] = TWO_ARCHITECTURES
    conf["max_tuning_jobs"] = 1  # per candidate: the run costs what one candidate's two did
    return dags_test_answered(airflow, conf, FIRST_DATE, "Approve", requests=2)


@pytest.fixture(scope="module")
def rejected_run(airflow, e2e_dataset, e2e_conf, blocked_run):
    conf = approval_conf(e2e_conf, e2e_dataset, timeout_seconds=600, default="Approve")
    conf["max_tuning_jobs"] = 1
    return dags_test_answered(airflow, conf, THIRD_DATE, "Reject")


@pytest.fixture(scope="module")
def unanswered_run(airflow, e2e_dataset, e2e_conf, rejected_run):
    conf = approval_conf(e2e_conf, e2e_dataset, timeout_seconds=3, default="Approve")
    conf["max_tuning_jobs"] = 1
    conf["delete_endpoint"] = True  # the module's last run tears its deployment down
    conf["overrides"]["candidates"] = [*conf["overrides"]["candidates"], CANNOT_TRAIN]
    result = airflow.dags_test(conf, FOURTH_DATE)
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
    conf["overrides"]["candidates"] = [*conf["overrides"]["candidates"], CANNOT_TRAIN]
    BLOCKED_RUN_STARTED.append(datetime.now(UTC))
    result = airflow.dags_test(conf, SECOND_DATE)
    return result, run_id_of(result.stdout + result.stderr)


def rule_rows(output: str) -> dict[str, tuple[str, str, str]]:
    """rule -> (kind, status, policy), read from the gate's table of rule outcomes."""
    rows = re.findall(r"\b(\w+)\s+(debugger|profiler)\s+(\w+)\s+(?:\d+\s+)?(block|approve|warn)\b",
                      output)  # fmt: skip
    return {rule: (kind, status, policy) for rule, kind, status, policy in rows}


def recounted_accuracy(runtime_url: str, transform_job: str) -> float:
    """Top-1 accuracy of a batch transform: each `<image>.out` against its class folder."""
    s3 = client("s3", runtime_url)
    output = sagemaker(runtime_url).describe_transform_job(TransformJobName=transform_job)
    bucket, _, prefix = output["TransformOutput"]["S3OutputPath"][len("s3://") :].partition("/")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
    outs = [item["Key"] for item in listed if item["Key"].endswith(".out")]
    correct = 0
    for key in outs:
        predictions = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        correct += predictions["predictions"][0]["label"] == Path(key).parent.name
    assert len(outs) == 8, outs
    return correct / len(outs)


def client(service, runtime_url):
    return runtime_access.client(runtime_url, service)


def sagemaker(runtime_url):
    return client("sagemaker", runtime_url)


def run_stamp_of(output: str) -> str:
    """The run's stamp (<yymmdd>-<8 hex>), from its first candidate's gate."""
    return RUN_STAMP.search(output).group(1)


def test_full_run_tunes_trains_gates_deploys_and_evaluates(airflow, first_run, local_runtime):
    result, run_id = first_run
    output = result.stdout + result.stderr
    states = airflow.task_states(run_id)
    assert states.pop("clean_up.clean_up_failed_run") == "skipped", output[-5000:]
    # The project's first model: there is no champion to score.
    champion_tasks = (
        "promote.plan_champion_scoring",
        "promote.score_champion",
        "promote.evaluate_champion",
    )
    assert {states.pop(task) for task in champion_tasks} == {"skipped"}, output[-5000:]
    assert set(states.values()) == {"success"}, (states, output[-5000:])
    # Each candidate ran every task of its own, in its own map index.
    assert {task for task in states if task.endswith("[1]")} == {
        task.replace("[0]", "[1]") for task in states if task.endswith("[0]")
    }
    assert "Best training job dogbreed-tune-" in output
    rows = rule_rows(output)
    assert {rule: (kind, policy) for rule, (kind, _, policy) in rows.items()} == RULES, rows
    assert rows["VanishingGradient"][1] == "NoIssuesFound"
    assert rows["Overtraining"][1] == "IssuesFound"
    assert rows["LowGPUUtilization"][1] == "NoIssuesFound"  # no GPU here: nothing to flag
    assert {status for _, status, _ in rows.values()} <= {"NoIssuesFound", "IssuesFound"}, rows
    approved = re.findall(r"Gate outcome: Approve by Anonymous, deploying\. .*Overtraining found "
                          r"issues: RuleEvaluationConditionMet", output)  # fmt: skip
    assert len(approved) == 2, output[-5000:]  # one request per candidate
    # The gate's own outcome names every rule that found issues, whatever its policy, and no other.
    asked = re.search(r"Gate outcome: deployment waits for a person's approval\. (.*)", output)
    for rule, (_, status, _) in rows.items():
        assert (f"{rule} found issues" in asked.group(1)) == (status == "IssuesFound"), rule
    assert re.search(r"ProfilerReport\s+profiler\s+\w+", output)
    assert re.search(r"Profiler report: s3://\S+/rule-output/ProfilerReport\S*/profiler-output/"
                     r"profiler-report\.html", output)  # fmt: skip
    stamp = run_stamp_of(output)
    accuracies = {}
    for index, architecture in enumerate(("simplecnn", "resnet18")):
        # The accuracy the run printed is the share of validation images whose most probable
        # class is their folder's, counted here from the candidate's batch transform's files.
        accuracy = recounted_accuracy(local_runtime, f"dogbreed-transform-{stamp}-{index}")
        accuracies[architecture] = accuracy
        assert re.search(rf"Evaluation: images: 8, accuracy: {accuracy:.4f}, top_2_accuracy: ",
                         output), (accuracy, output[-5000:])  # fmt: skip
        assert_explained(local_runtime, f"evaluation/dogbreed-transform-{stamp}-{index}/",
                         architecture)  # fmt: skip
    winner = assert_compared(output, local_runtime, stamp, accuracies)
    assert_registered_and_promoted_first(output, local_runtime, winner, accuracies[winner])
    assert_the_first_model_was_tried_on_its_trial_endpoint_and_serves_once_approved(
        result, local_runtime, stamp
    )


def assert_explained(runtime_url: str, report_folder: str, backbone: str) -> None:
    """The candidate's explanation job wrote its report into the folder its evaluation report
    links to, over its own model."""
    s3 = client("s3", runtime_url)
    bucket = "dog-breed-classifier"
    evaluation_page = s3.get_object(Bucket=bucket, Key=f"{report_folder}report.html")["Body"].read()
    assert b"href='explanations/report.html'" in evaluation_page
    summary = json.loads(
        s3.get_object(Bucket=bucket, Key=f"{report_folder}explanations/summary.json")["Body"].read()
    )
    assert summary["deletion"]["images"] == 8 and summary["backbone"] == backbone


def assert_compared(output: str, runtime_url: str, stamp: str, accuracies: dict) -> str:
    """The comparison ranks both candidates by accuracy (registry.metric) with the accuracies
    recounted from their transforms, is written beside their reports, and names the winner;
    returns the winner. The candidates' own models are gone: they served the transforms only."""
    s3 = client("s3", runtime_url)
    key = f"evaluation/dogbreed-transform-{stamp}/comparison.json"
    compared = json.loads(s3.get_object(Bucket="dog-breed-classifier", Key=key)["Body"].read())
    rows = {row["name"]: row for row in compared["candidates"]}
    assert {name: row["accuracy"] for name, row in rows.items()} == pytest.approx(accuracies)
    best = max(accuracies.values())
    expected = next(name for name in ("simplecnn", "resnet18") if accuracies[name] == best)
    assert compared["winner"] == expected and compared["dropped"] == {}
    assert all(row["model_bytes"] > 0 and row["seconds_per_image"] > 0 for row in rows.values())
    per_class = compared["per_class_f1"]
    assert len(per_class) == 2 and all(set(f1) == set(accuracies) for f1 in per_class.values())
    assert f"Comparison: s3://dog-breed-classifier/{key.replace('.json', '.html')}" in output
    models = [m["ModelName"] for m in sagemaker(runtime_url).list_models()["Models"]]
    assert not [name for name in models if name.startswith(f"dogbreed-model-{stamp}-")], models
    return expected


def assert_registered_and_promoted_first(
    output: str, runtime_url: str, winner: str, accuracy: float
) -> None:
    """The first run's winning candidate is version 1 of the group, with its provenance and
    score, and becomes the champion (the project's first model)."""
    decided = re.search(r"Promotion decision for (\S+): approve, first model of the project",
                        output)  # fmt: skip
    assert decided, output[-5000:]
    version = sagemaker(runtime_url).describe_model_package(ModelPackageName=decided.group(1))
    assert version["ModelPackageGroupName"] == "dogbreed-models"
    assert version["ModelApprovalStatus"] == "Approved"
    assert version["ApprovalDescription"].startswith("first model of the project")
    metadata = version["CustomerMetadataProperties"]
    snapshot = metadata["snapshot_id"]
    index = ("simplecnn", "resnet18").index(winner)
    assert metadata["training_job"].startswith("dogbreed-train-")
    assert metadata["training_job"].endswith(f"-{index}")
    assert metadata["tuning_job"].startswith("dogbreed-tune-")
    assert metadata["rule:Overtraining"] == "IssuesFound"
    assert float(metadata[f"score:{snapshot}:accuracy"]) == pytest.approx(accuracy, abs=1e-6)
    served = [key for key, value in metadata.items()
              if key.startswith("served:") and value == "dogbreed-endpoint"]  # fmt: skip
    assert len(served) == 1, metadata  # the endpoint users call, never the trial endpoint
    assert not [value for value in metadata.values() if "-trial-" in value], metadata
    report = version["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    bucket, _, key = report.removeprefix("s3://").partition("/")
    assert client("s3", runtime_url).head_object(Bucket=bucket, Key=key)["ContentLength"] > 0


def logged_in_order(result, texts: tuple[str, ...]) -> bool:
    """Whether one of the run's output streams holds every one of `texts`, in that order."""
    for stream in (result.stdout, result.stderr):
        found = [stream.find(text) for text in texts]
        if -1 not in found and found == sorted(found):
            return True
    return False


def assert_the_first_model_was_tried_on_its_trial_endpoint_and_serves_once_approved(
    result, runtime_url: str, stamp: str
) -> None:
    """The project's first model was tried alone on the run's trial endpoint (the smoke test
    named its variant and each candidate's TargetModel); the endpoint users call was created only
    after the promotion decision (and after the batch transforms that evaluated the candidates),
    from the run's one-variant config, a multi-model one (deployment.mode's default) that answers
    each architecture by its TargetModel and refuses a request naming none; the trial endpoint,
    the challenger config and any champion-scoring model are gone."""
    output = result.stdout + result.stderr
    trial = f"dogbreed-endpoint-trial-{stamp}"
    steps = (f"Creating endpoint {trial} with config dogbreed-epc-{stamp}-challenger",
             f"Endpoint {trial} (simplecnn, TargetModel simplecnn.tar.gz) on ",  # the smoke test's
             f"Endpoint {trial} (resnet18, TargetModel resnet18.tar.gz) on ",
             "Promotion decision for ",
             f"Creating endpoint dogbreed-endpoint with config dogbreed-epc-{stamp}")  # fmt: skip
    assert logged_in_order(result, steps), output[-5000:]
    assert output.count("Creating endpoint dogbreed-endpoint ") == 1
    assert "Updating endpoint dogbreed-endpoint" not in output  # no weights moved, no update
    assert re.search(rf"Endpoint after the decision: \S+ is Approved: the challenger takes the "
                     rf"traffic \(dogbreed-endpoint created now\); its trial endpoint {trial} is "
                     r"deleted", output), output[-5000:]  # fmt: skip
    assert re.search(rf"Challenger deployment retired: deleted \['trial endpoint {trial}', "
                     rf"'endpoint config dogbreed-epc-{stamp}-challenger'\]", output)  # fmt: skip
    api = sagemaker(runtime_url)
    endpoint = api.describe_endpoint(EndpointName="dogbreed-endpoint")
    assert endpoint["EndpointConfigName"] == f"dogbreed-epc-{stamp}"
    assert [v["VariantName"] for v in endpoint["ProductionVariants"]] == ["AllTraffic"]
    for index in (0, 1):
        transform = api.describe_transform_job(
            TransformJobName=f"dogbreed-transform-{stamp}-{index}"
        )
        assert endpoint["CreationTime"] > transform["TransformEndTime"]  # SageMaker's own clock
    config = api.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    assert [v["ModelName"] for v in config["ProductionVariants"]] == [f"dogbreed-model-{stamp}"]
    assert project_endpoints(runtime_url) == ["dogbreed-endpoint"]
    with pytest.raises(api.exceptions.ClientError, match="Could not find endpoint"):
        api.describe_endpoint(EndpointName=trial)
    configs = [c["EndpointConfigName"] for c in api.list_endpoint_configs()["EndpointConfigs"]]
    assert not [name for name in configs if name.endswith("-challenger")], configs
    assert not [m for m in api.list_models()["Models"] if m["ModelName"].endswith("-champion")]
    model = api.describe_model(ModelName=f"dogbreed-model-{stamp}")["PrimaryContainer"]
    assert model["Mode"] == "MultiModel"
    assert model["ModelDataUrl"] == f"s3://dog-breed-classifier/models/{stamp}/"
    runtime = client("sagemaker-runtime", runtime_url)
    for target in ("simplecnn.tar.gz", "resnet18.tar.gz"):
        answer = runtime.invoke_endpoint(EndpointName="dogbreed-endpoint", TargetModel=target,
                                         ContentType="application/x-image",
                                         Body=a_staged_image(runtime_url))  # fmt: skip
        assert answer["InvokedProductionVariant"] == "AllTraffic"
        assert b'"predictions"' in answer["Body"].read()
    with pytest.raises(runtime.exceptions.ClientError, match="missing a target model header"):
        runtime.invoke_endpoint(EndpointName="dogbreed-endpoint", Body=a_staged_image(runtime_url),
                                ContentType="application/x-image")  # fmt: skip
    with pytest.raises(runtime.exceptions.ClientError, match="Challenger"):
        runtime.invoke_endpoint(EndpointName="dogbreed-endpoint", TargetVariant="Challenger",
                                TargetModel="simplecnn.tar.gz", ContentType="application/x-image",
                                Body=b"x")  # fmt: skip


def a_staged_image(runtime_url: str) -> bytes:
    """One image of the staged dataset snapshot."""
    s3 = client("s3", runtime_url)
    listed = s3.list_objects_v2(Bucket="dog-breed-classifier", Prefix="datasets/")["Contents"]
    key = next(item["Key"] for item in listed if item["Key"].endswith(".jpg"))
    return s3.get_object(Bucket="dog-breed-classifier", Key=key)["Body"].read()


def assert_nothing_of_the_run_bills(runtime_url: str, stamp: str) -> None:
    """After the run: no job of it still runs, and no endpoint is left but the one users call
    (the first run's), none of this run's own (its trial endpoint would be one)."""
    api = sagemaker(runtime_url)
    running = {
        "tuning": api.list_hyper_parameter_tuning_jobs(
            NameContains=stamp, StatusEquals="InProgress")["HyperParameterTuningJobSummaries"],
        "training": api.list_training_jobs(
            NameContains=stamp, StatusEquals="InProgress")["TrainingJobSummaries"],
        "processing": api.list_processing_jobs(
            NameContains=stamp, StatusEquals="InProgress")["ProcessingJobSummaries"],
        "transform": api.list_transform_jobs(
            NameContains=stamp, StatusEquals="InProgress")["TransformJobSummaries"],
    }  # fmt: skip
    assert not any(running.values()), running
    assert project_endpoints(runtime_url) == ["dogbreed-endpoint"]


def project_endpoints(runtime_url: str) -> list[str]:
    """The project's endpoints on the runtime (other test modules may share it)."""
    endpoints = sagemaker(runtime_url).list_endpoints(NameContains="dogbreed-")["Endpoints"]
    return sorted(e["EndpointName"] for e in endpoints)


def test_the_first_run_trains_on_two_hosts_and_its_rules_read_the_masters_tensors(
    first_run, local_runtime
):
    result, _ = first_run
    output = result.stdout + result.stderr
    name = re.search(r"Training job (\S+) completed; final metrics", output).group(1)
    job = sagemaker(local_runtime).describe_training_job(TrainingJobName=name)
    assert job["ResourceConfig"]["InstanceCount"] == TRAINING_HOSTS
    streams = client("logs", local_runtime).describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/"
    )["logStreams"]
    hosts = sorted(stream["logStreamName"].split("/")[1].rsplit("-", 1)[0] for stream in streams)
    assert hosts == ["algo-1", "algo-2"]
    # Both hosts' lines reach the task log (the trigger follows every stream of the job).
    assert f"[{name}]" in output
    statuses = {rule["RuleConfigurationName"]: rule["RuleEvaluationStatus"]
                for rule in job["DebugRuleEvaluationStatuses"]}  # fmt: skip
    assert statuses and not {"Error", "InProgress"} & set(statuses.values()), statuses
    # Only the master (rank 0) writes Debugger tensors: every event file is one worker's.
    output_uri = job["DebugHookConfig"]["S3OutputPath"].rstrip("/") + f"/{name}/debug-output/"
    bucket, _, prefix = output_uri.removeprefix("s3://").partition("/")
    pages = (
        client("s3", local_runtime)
        .get_paginator("list_objects_v2")
        .paginate(Bucket=bucket, Prefix=prefix)
    )
    events = [item["Key"] for page in pages for item in page.get("Contents", [])
              if item["Key"].endswith(".tfevents")]  # fmt: skip
    workers = {key.rsplit("_", 1)[-1] for key in events}
    assert events and len(workers) == 1, workers


def test_first_run_leaves_an_in_service_endpoint(first_run, local_runtime):
    endpoint = sagemaker(local_runtime).describe_endpoint(EndpointName="dogbreed-endpoint")
    assert endpoint["EndpointStatus"] == "InService"


def test_a_blocking_rule_stops_the_run_before_deployment(airflow, blocked_run, local_runtime):
    result, run_id = blocked_run
    output = result.stdout + result.stderr
    states = airflow.task_states(run_id)
    assert states["candidate.train.train_best_model[0]"] == "success"
    assert states["candidate.gate.gate_on_rules[0]"] == "failed", (states, output[-5000:])
    # The second candidate could not train: its tuning job failed, and nothing of it followed.
    assert states["candidate.train.tune_hyperparameters[1]"] == "failed", states
    assert states["compare.compare_candidates"] == "failed", states
    assert all(
        states[task] != "success"
        for task in (
            "candidate.evaluate.create_model[0]",
            "candidate.evaluate.batch_transform[0]",
            "candidate.evaluate.evaluate[0]",
            "deploy.create_model",
            "deploy.deploy_endpoint",
        )
    )
    assert re.search(r"VanishingGradient\s+debugger\s+IssuesFound\s+\d+\s+block", output)
    assert "Gate outcome: deployment blocked. VanishingGradient found issues: " in output
    # Without Debugger no system metrics exist: the profiler rules are reported, not evaluated.
    assert re.search(r"ProfilerReport\s+profiler\s+Error\s+warn\s+not evaluable with "
                     r"rules.engine processing", output)  # fmt: skip
    assert "Profiler report: none written" in output
    assert states["candidate.gate.start_rule_jobs[0]"] == "success"
    assert "Deployment blocked by the rules of" in output
    # The comparison names why each candidate is left out.
    assert re.search(r"no candidate reached the comparison: simplecnn: blocked by the rules: "
                     r"VanishingGradient .*; broken: candidate\.train\.tune_hyperparameters "
                     r"failed", output), output[-5000:]  # fmt: skip
    stamp = run_stamp_of(output)
    models = [model["ModelName"] for model in sagemaker(local_runtime).list_models()["Models"]]
    assert not [name for name in models if name.startswith(f"dogbreed-model-{stamp}")], models
    assert states["clean_up.clean_up_failed_run"] == "success"
    assert f"Clean-up of failed run {stamp}: stopped no job; deleted nothing" in output
    assert_nothing_of_the_run_bills(local_runtime, stamp)


def test_the_clean_up_of_a_failed_run_stops_its_job_still_running(
    airflow, blocked_run, local_runtime
):
    """A killed try of a task leaves its job running (a SageMaker job outlives its task): the
    failed run's clean-up task, run again as a cleared task is, stops it. The job here is the
    run's own training job again under its retry name, made to run long."""
    result, run_id = blocked_run
    output = result.stdout + result.stderr
    trained = re.search(r"Training job (\S+) completed; final metrics", output).group(1)
    client = sagemaker(local_runtime)
    described = client.describe_training_job(TrainingJobName=trained)
    create = botocore.session.get_session().get_service_model("sagemaker")
    members = create.operation_model("CreateTrainingJob").input_shape.members
    request = {key: value for key, value in described.items() if key in members}
    left_running = retry_name(trained, 2)
    request["TrainingJobName"] = left_running
    request["HyperParameters"] = {**request["HyperParameters"], "epochs": "100000"}
    client.create_training_job(**request)
    cleaned = airflow.run(
        "tasks", "test", "dog_breed_classifier", "clean_up.clean_up_failed_run", run_id
    )
    cleaned_output = cleaned.stdout + cleaned.stderr
    assert cleaned.returncode == 0, cleaned_output[-5000:]
    stamp = run_stamp_of(output)
    assert f"Clean-up of failed run {stamp}: stopped ['{left_running}']" in cleaned_output, (
        cleaned_output[-5000:]
    )
    status = client.describe_training_job(TrainingJobName=left_running)["TrainingJobStatus"]
    assert status in ("Stopping", "Stopped"), status


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
    trained = "candidate.train.train_best_model[0]"
    assert [airflow.task_states(run_id)[trained] for run_id in run_ids] == [
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
    # The first candidate's (simplecnn, as the first run's first); the second's trained nothing.
    tuning_job = re.search(r"Creating hyperparameter tuning job (\S+-0)\b", output).group(1)
    assert warm.group(1).endswith("-0"), warm.group(1)
    described = sagemaker(local_runtime).describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning_job
    )
    assert described["WarmStartConfig"]["ParentHyperParameterTuningJobs"] == [
        {"HyperParameterTuningJobName": warm.group(1)}
    ]


def test_a_rerun_training_task_adopts_its_completed_job(airflow, first_run, local_runtime):
    _, run_id = first_run
    task = "candidate.train.train_best_model"
    result = airflow.run("tasks", "test", "dog_breed_classifier", task, run_id, "--map-index", "0")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    # The task state store names the job its earlier try followed; else start_job adopts by name.
    adopted = re.search(r"(?:Adopting|Following) training job (\S+), (?:already|recorded by an "
                        r"earlier try \()Completed", output)  # fmt: skip
    assert adopted, output[-5000:]
    jobs = sagemaker(local_runtime).list_training_jobs(NameContains=adopted.group(1))
    assert [job["TrainingJobName"] for job in jobs["TrainingJobSummaries"]] == [adopted.group(1)]


def test_a_rejected_approval_skips_deployment_and_nothing_after_the_gate_runs(
    airflow, rejected_run, local_runtime
):
    result, run_id = rejected_run
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    states = airflow.task_states(run_id)
    # A rejected candidate's approval skips itself and, by trigger rule, what follows it.
    assert (states["candidate.gate.gate_on_rules[0]"],
            states["candidate.gate.approve_deployment[0]"]) == ("success", "skipped")  # fmt: skip
    assert {states[task] for task in DEPLOYMENT_TASKS} == {"skipped"}, states
    assert states["clean_up.clean_up_failed_run"] == "skipped"
    assert re.search(r"Gate outcome: Reject by Anonymous, deployment skipped\. .*Overtraining "
                     r"found issues: ", output), output[-5000:]  # fmt: skip
    stamp = run_stamp_of(output)
    assert "no candidate to deploy: simplecnn: rejected at the approval" in output, output[-5000:]
    client = sagemaker(local_runtime)
    assert not [m for m in client.list_models()["Models"] if stamp in m["ModelName"]]
    assert not [c for c in client.list_endpoint_configs()["EndpointConfigs"]
                if stamp in c["EndpointConfigName"]]  # fmt: skip
    assert not [t for t in client.list_transform_jobs()["TransformJobSummaries"]
                if stamp in t["TransformJobName"]]  # fmt: skip
    assert_nothing_of_the_run_bills(local_runtime, stamp)


def test_an_unanswered_approval_takes_its_default_after_the_timeout(
    airflow, unanswered_run, local_runtime
):
    result, run_id = unanswered_run
    output = result.stdout + result.stderr
    states = airflow.task_states(run_id)
    assert states["candidate.gate.approve_deployment[0]"] == "success", (states, output[-5000:])
    assert {states[task] for task in DEPLOYMENT_TASKS} == {"success"}, states
    # Its second candidate failed to train: left out, named, and the run went on without it.
    assert states["candidate.train.tune_hyperparameters[1]"] == "failed", states
    assert states["clean_up.clean_up_failed_run"] == "skipped", states
    assert "dropped broken: candidate.train.tune_hyperparameters failed" in output, output[-5000:]
    assert re.search(r"Gate outcome: no answer within 3 s, so the default Approve applied on "
                     r"the person's behalf \(rules\.approval\.default\), deploying\. "
                     r".*Overtraining found issues: ", output), output[-5000:]  # fmt: skip
    # delete_endpoint: true: the run deleted its endpoint and the endpoint's config.
    assert states["clean_up.clean_up_endpoint"] == "success", states
    stamp = run_stamp_of(output)
    client = sagemaker(local_runtime)
    with pytest.raises(client.exceptions.ClientError, match="Could not find endpoint"):
        client.describe_endpoint(EndpointName="dogbreed-endpoint")
    assert not [c for c in client.list_endpoint_configs()["EndpointConfigs"]
                if stamp in c["EndpointConfigName"]]  # fmt: skip
    # A later run over the same snapshot is compared with the champion scored there already.
    decided = re.search(r"Promotion decision for (\S+): (approve|reject), accuracy \S+ against "
                        r"the champion's \S+ on [0-9a-f]{16}", output)  # fmt: skip
    assert decided and states["promote.plan_champion_scoring"] == "skipped", output[-5000:]
    version = client.describe_model_package(ModelPackageName=decided.group(1))
    expected = {"approve": "Approved", "reject": "PendingManualApproval"}[decided.group(2)]
    assert version["ModelApprovalStatus"] == expected


@pytest.fixture(scope="module")
def rollback_run(airflow, unanswered_run):
    """dog_breed_rollback to version 1 (the first run's, Approved) once later runs deployed."""
    conf = {"model_package_version": 1,
            "overrides": {"deployment": NO_BAKING, "polling": {"interval_seconds": 1}}}  # fmt: skip
    result = airflow.run("dags", "test", "dog_breed_rollback", "-c", json.dumps(conf))
    return result, run_id_of(result.stdout + result.stderr)


def test_the_rollback_dag_serves_the_earlier_approved_version_again(
    airflow, rollback_run, local_runtime
):
    result, _ = rollback_run
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    api = sagemaker(local_runtime)
    [first] = api.list_model_packages(
        ModelPackageGroupName="dogbreed-models", SortBy="CreationTime", SortOrder="Ascending"
    )["ModelPackageSummaryList"][:1]
    assert re.search(rf"Rolling dogbreed-endpoint back to {re.escape(first['ModelPackageArn'])}",
                     output), output[-5000:]  # fmt: skip
    endpoint = api.describe_endpoint(EndpointName="dogbreed-endpoint")
    assert endpoint["EndpointStatus"] == "InService"
    [variant] = api.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])[
        "ProductionVariants"
    ]
    # deployment.mode multi_model: the version's archive alone under the rollback's prefix, its
    # candidate's TargetModel answering as it did when the version served first.
    metadata = api.describe_model_package(ModelPackageName=first["ModelPackageArn"])[
        "CustomerMetadataProperties"
    ]
    version = api.describe_model_package(ModelPackageName=first["ModelPackageArn"])
    container = api.describe_model(ModelName=variant["ModelName"])["PrimaryContainer"]
    assert container["Mode"] == "MultiModel" and container["ModelDataUrl"].endswith("-rollback/")
    bucket, _, prefix = container["ModelDataUrl"].removeprefix("s3://").partition("/")
    staged = client("s3", local_runtime).list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
    assert [item["Key"].removeprefix(prefix) for item in staged] == [
        f"{metadata['Candidate']}.tar.gz"
    ]
    archive = version["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    assert (
        staged[0]["Size"]
        == client("s3", local_runtime).head_object(
            Bucket=bucket, Key=archive.removeprefix(f"s3://{bucket}/")
        )["ContentLength"]
    )
    answer = client("sagemaker-runtime", local_runtime).invoke_endpoint(
        EndpointName="dogbreed-endpoint",
        TargetModel=f"{metadata['Candidate']}.tar.gz",
        ContentType="application/x-image",
        Body=a_staged_image(local_runtime),
    )
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    assert b"predictions" in answer["Body"].read()
    # The registry's history: served once after the first run, and again after the rollback.
    served = sorted(key for key, value in metadata.items()
                    if key.startswith("served:") and value == "dogbreed-endpoint")  # fmt: skip
    assert len(served) == 2, metadata
    api.delete_endpoint(EndpointName="dogbreed-endpoint")
