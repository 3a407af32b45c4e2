"""How fast the model-run pages answer with 20 runs of history (target: under 1 s each).

Builds a fresh Airflow metadata database (SQLite, `airflow db migrate`) in a temporary home and
records `--runs` runs of dog_breed_classifier in it as the pipeline's tasks would: a DagRun, the
task instances and their XComs (two candidates in the mapped group, 133 classes, 20 tuning
trials), and checks that the reader keeps the candidates apart. Then it times, side by side:

- the history page: the plugin's route through FastAPI (Airflow's own route code, the database
  read of every run and the rendering);
- the run page's rendering of the largest run (the 133 x 133 confusion matrix, 20 trials, the
  training curves), with what the page reads from AWS given (S3, SageMaker and CloudWatch round
  trips are not timed here: the local runtime answers each in milliseconds, AWS in tens).

    .venvs/airflow/bin/python benchmarks/bench_model_runs.py [--runs 20] [--repeat 20]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BUDGET_S = 1.0
CLASSES = [f"{n:03d}.Breed_{n}" for n in range(1, 134)]
RULES = ("VanishingGradient", "Overfit", "Overtraining", "PoorWeightInitialization",
         "LossNotDecreasing", "LowGPUUtilization", "ProfilerReport")  # fmt: skip


CANDIDATES = ("resnet50", "mobilenet_v2")


def recorded_xcoms(number: int) -> dict[tuple[str, str, int], object]:
    """The XComs of one run of two candidates (mobilenet_v2 wins), keyed (task id, key, map
    index) in the shapes the pipeline's tasks push."""
    from sagemaker_lifecycle.ui.records import CANDIDATE_SOURCES, SOURCES, UNMAPPED

    def evaluation(index: int) -> dict:
        prefix = f"s3://bucket/evaluation/t{number}-{index}"
        return {"candidate": CANDIDATES[index], "map_index": index,
                "accuracy": 0.6 + index / 10 + number / 100, "top_5_accuracy": 0.9,
                "macro_f1": 0.7, "count": 835, "report_uri": f"{prefix}/report.json",
                "html_report_uri": f"{prefix}/report.html"}  # fmt: skip

    compared = [{"name": CANDIDATES[i], "top_k_key": "top_5_accuracy", "model_bytes": 10**7,
                 "seconds_per_image": 0.01, "rank": 2 - i, **evaluation(i)}
                for i in (0, 1)]  # fmt: skip
    run = {
        "settings": {"aws": {"bucket": "bucket"}, "dataset": {"s3_prefix": "datasets"},
                     "candidates": [{"name": name, "hyperparameters": {}} for name in CANDIDATES]},
        "dataset": {"snapshot_id": f"{number:016x}", "classes": CLASSES,
                    "image_counts": {"train": 6680, "valid": 835, "test": 836}},
        "compared": {"winner": {"candidate": CANDIDATES[1], "map_index": 1},
                     "comparison": {"metric": "accuracy", "winner": CANDIDATES[1],
                                    "top_k_key": "top_5_accuracy", "candidates": compared,
                                    "dropped": {}},
                     "html_uri": f"s3://bucket/evaluation/compare-{number}/comparison.html"},
        "endpoint": {"EndpointName": "ep", "EndpointConfigName": f"cfg-{number}",
                     "PreviousEndpointConfigName": None},
    }  # fmt: skip
    candidate = {
        "tuning": {"TuningJobName": f"tune-{number}", "BestTrainingJobName": "t-3",
                   "ObjectiveMetric": {"MetricName": "valid_acc", "Value": 0.8},
                   "TunedHyperParameters": {"lr": "0.001"}},
        "training": {"TrainingJobName": f"train-{number}",
                     "FinalMetrics": {"valid_acc": 0.8, "valid_loss": 0.7}},
        "verdict": {"decision": "deploy", "reasons": [], "profiler_report": None,
                    "outcomes": [{"rule": rule, "status": "NoIssuesFound", "details": "",
                                  "policy": "warn", "kind": "debugger"} for rule in RULES]},
    }  # fmt: skip
    return {
        **{(*SOURCES[name], UNMAPPED): value for name, value in run.items()},
        **{(*CANDIDATE_SOURCES[name], index): value
           for index in (0, 1)
           for name, value in (*candidate.items(), ("evaluation", evaluation(index)))},
    }  # fmt: skip


def record_runs(runs: int) -> None:
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sagemaker_lifecycle.ui.records import DAG_ID
    from sqlalchemy import insert

    start = datetime(2026, 1, 5, tzinfo=UTC)
    with create_session() as session:
        session.execute(insert(DagBundleModel).values(name="dags-folder", active=True))
        session.execute(
            insert(DagModel).values(
                dag_id=DAG_ID,
                is_paused=True,
                bundle_name="dags-folder",
                max_active_tasks=16,
                max_active_runs=1,
                max_consecutive_failed_dag_runs=0,
                has_task_concurrency_limits=False,
            )
        )
        for number in range(runs):
            when = start + timedelta(weeks=number)
            run_id = f"scheduled__{when.isoformat()}"
            row = session.execute(insert(DagRun).values(
                dag_id=DAG_ID, run_id=run_id, logical_date=when, run_after=when, state="success",
                run_type="scheduled", clear_number=0, backfill_id=None,
            ).returning(DagRun.id)).scalar_one()  # fmt: skip
            for (task_id, key, map_index), value in recorded_xcoms(number).items():
                session.execute(insert(TaskInstance).values(
                    id=uuid.uuid4(), dag_id=DAG_ID, task_id=task_id, run_id=run_id,
                    map_index=map_index,
                    state="success", try_number=1, max_tries=1, pool="default_pool", pool_slots=1,
                    priority_weight=1, queue="default", span_status="not_started",
                ).prefix_with("OR IGNORE"))  # fmt: skip
                session.execute(insert(XComModel).values(
                    dag_run_id=row, task_id=task_id, map_index=map_index, key=key, dag_id=DAG_ID,
                    run_id=run_id, value=XComModel.serialize_value(value), timestamp=when,
                ))  # fmt: skip


def timed(call, repeat: int) -> list[float]:
    call()  # warm: imports and the first connection are not what a user waits for twice
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-model-runs-"))
    os.environ.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    sys.path[:0] = [str(REPO_ROOT / "plugins"), str(REPO_ROOT)]
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, stdout=subprocess.DEVNULL)
    record_runs(args.runs)

    from airflow.utils.session import create_session
    from fastapi.testclient import TestClient
    from sagemaker_lifecycle.ui import app as plugin
    from sagemaker_lifecycle.ui import pages, reader
    from sagemaker_lifecycle.ui.records import RunDetails, run_record

    with create_session() as session:
        (newest,) = reader.run_records(session, limit=1)
    # The reader keeps the mapped tasks' XComs and states apart per map index.
    assert [c.name for c in newest.candidates] == list(CANDIDATES), newest.candidates
    assert newest.shown.map_index == 1 and newest.shown.approval_state is None, newest.shown
    assert all(c.states.get("candidate.train.train_best_model") == "success"
               for c in newest.candidates), newest.candidates  # fmt: skip

    # Auth is Airflow's and not what is measured: the route runs as an admin would.
    plugin.app.dependency_overrides[plugin.can_read_runs.dependency] = lambda: None
    client = TestClient(plugin.app)
    answer = client.get("/")
    assert answer.status_code == 200 and answer.text.count("class='point'") == args.runs, answer
    history = timed(lambda: client.get("/"), args.repeat)

    record = run_record("r", "success", "x", recorded_xcoms(args.runs), {})
    assert "class='winner'" in pages.candidates_section(record, plugin.object_url)
    details = RunDetails(
        trials=[{"TrainingJobName": f"t-{n}", "TrainingJobStatus": "Completed",
                 "CreationTime": f"{n:03d}", "TunedHyperParameters": {"lr": "0.001"},
                 "FinalHyperParameterTuningJobObjectiveMetric": {"Value": n / 20}}
                for n in range(20)],
        curves={name: [(epoch, 1 / epoch) for epoch in range(1, 31)]
                for name in ("train_loss", "valid_loss", "train_acc", "valid_acc")},
        report={"classes": CLASSES, "confusion_matrix": [[1] * len(CLASSES)] * len(CLASSES),
                "per_class": {name: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 6}
                              for name in CLASSES}},
    )  # fmt: skip
    run_page = timed(lambda: pages.run_page(record, details, plugin.object_url, "/"), args.repeat)

    print(f"{'page':<40} {'median s':>9} {'max s':>8} {'budget s':>9} {'max/budget':>11}")
    for name, times in ((f"history ({args.runs} runs, route + DB)", history),
                        ("run page (133 classes, rendering)", run_page)):  # fmt: skip
        print(f"{name:<40} {statistics.median(times):9.4f} {max(times):8.4f} {BUDGET_S:9.1f} "
              f"{max(times) / BUDGET_S:11.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
