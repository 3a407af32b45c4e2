"""What a run's tuning and training jobs measured, for the charts of the model-run page and of
the evaluation report: the tuning job's trials (ListTrainingJobsForHyperParameterTuningJob) and
the training job's metrics per epoch (CloudWatch, where SageMaker publishes the metric lines the
training script prints). Read with boto3 clients the caller passes; every call here reads.

An AWS error does not fail the caller: it becomes one sentence in `JobMetrics.problems`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

# SageMaker publishes training metrics in this namespace (and logs in this log group).
TRAINING_NAMESPACE = "/aws/sagemaker/TrainingJobs"
CURVE_METRICS = ("train_loss", "valid_loss", "train_acc", "valid_acc")
AWS_ERRORS = (ClientError, BotoCoreError)


@dataclass
class TrialTable:
    """The tuning trials in creation order (rows: number, name, status, objective,
    hyperparameters), the best one among them, and the objective's metric name."""

    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    metric: str


@dataclass
class JobMetrics:
    trials: list[dict] = field(default_factory=list)  # TrainingJobSummaries of the tuning job
    # metric -> (epoch, value), one point per epoch
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # what could not be read, and why


def read_job_metrics(
    sagemaker, cloudwatch, tuning: Mapping | None, training: Mapping | None
) -> JobMetrics:
    """The trials of the `tuning` job and the curves of the `training` job (the tuning and
    training operators' XComs; None: the run has none)."""
    measured = JobMetrics()
    if tuning:
        try:
            measured.trials = tuning_trials(sagemaker, tuning["TuningJobName"])
        except AWS_ERRORS as error:
            measured.problems.append(f"Could not read the tuning trials: {error}")
    if training:
        try:
            measured.curves = epoch_curves(cloudwatch, training["TrainingJobName"])
        except AWS_ERRORS as error:
            measured.problems.append(f"Could not read the training curves: {error}")
    return measured


def tuning_trials(sagemaker, tuning_job: str) -> list[dict]:
    paginator = sagemaker.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job")
    pages = paginator.paginate(HyperParameterTuningJobName=tuning_job)
    return [trial for page in pages for trial in page["TrainingJobSummaries"]]


def epoch_curves(cloudwatch, training_job: str) -> dict[str, list[tuple[float, float]]]:
    """Per-epoch values of the job's metrics, as SageMaker publishes them to CloudWatch (one
    datapoint per scraped log line: the training script prints one line per epoch)."""
    end = datetime.now(UTC)
    # One-second periods keep epochs seconds apart as separate points, but CloudWatch answers
    # them only for the last 3 hours; older runs are read by the minute.
    for period, since in ((1, timedelta(hours=3)), (60, timedelta(days=15))):
        curves = _metric_series(cloudwatch, training_job, period, end - since, end)
        if curves:
            return curves
    return {}


def _metric_series(cloudwatch, job: str, period: int, start, end) -> dict[str, list]:
    queries = [
        {"Id": f"m{index}", "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": TRAINING_NAMESPACE, "MetricName": metric,
                       "Dimensions": [{"Name": "TrainingJobName", "Value": job}]},
            "Period": period, "Stat": "Average"}}
        for index, metric in enumerate(CURVE_METRICS)
    ]  # fmt: skip
    answer = cloudwatch.get_metric_data(MetricDataQueries=queries, StartTime=start, EndTime=end,
                                        ScanBy="TimestampAscending")  # fmt: skip
    curves = {}
    for result in answer["MetricDataResults"]:
        points = sorted(zip(result["Timestamps"], result["Values"], strict=True))
        if points:
            metric = CURVE_METRICS[int(result["Id"][1:])]
            curves[metric] = [(epoch, value) for epoch, (_, value) in enumerate(points, 1)]
    return curves


def trial_table(trials: list[dict], tuning: Mapping | None) -> TrialTable:
    """The trials of `tuning` (its XCom: TuningJobName, BestTrainingJobName, ObjectiveMetric),
    numbered in creation order, with its best trial picked out by name."""
    ordered = sorted(trials, key=lambda trial: str(trial.get("CreationTime", "")))
    rows = [
        {
            "number": number,
            "name": trial["TrainingJobName"],
            "status": trial.get("TrainingJobStatus", ""),
            "objective": trial.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value"),
            "hyperparameters": trial.get("TunedHyperParameters", {}),
        }
        for number, trial in enumerate(ordered, start=1)
    ]
    best_name = (tuning or {}).get("BestTrainingJobName")
    best = next((row for row in rows if row["name"] == best_name), None)
    metric = (tuning or {}).get("ObjectiveMetric", {}).get("MetricName", "objective")
    return TrialTable(rows, best, metric)
