"""Operators that run one SageMaker job each: tuning, training, transform, rule processing.

Each subclasses the provider's operator (templated `config`, integer parsing, role expansion) and
replaces its `execute` with `SageMakerLifecycleHook.start_job` + `wait_for_job`, which close the
provider's gaps: retries adopt the job their earlier try started, Stopped is a failure, the poll
interval (templated, so a run's params can set it) applies from the first check, and `on_kill`
stops the job. XCom gets a compact summary instead of the whole Describe* response.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.providers.amazon.aws.links.sagemaker import SageMakerTransformJobLink
from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerProcessingOperator,
    SageMakerTrainingOperator,
    SageMakerTransformOperator,
    SageMakerTuningOperator,
)

from sagemaker_lifecycle.hooks import SageMakerLifecycleHook

WAIT_TEMPLATE_FIELDS = ("check_interval", "max_ingestion_time")


class _LifecycleJobMixin:
    """Runs the operator's `config` as one job of `job_kind` and waits for it."""

    aws_hook_class = SageMakerLifecycleHook
    job_kind: str
    job_name: str | None = None

    def run_job(self, on_poll=None) -> dict:
        self.preprocess_config()
        self.job_name = self.hook.start_job(self.job_kind, self.config)
        return self.hook.wait_for_job(
            self.job_kind,
            self.job_name,
            interval=float(self.check_interval),
            timeout=wait_limit(self.max_ingestion_time),
            on_poll=on_poll,
        )

    def on_kill(self) -> None:
        """Stop the SageMaker job when Airflow kills the task (the provider leaves it running)."""
        if self.job_name:
            self.hook.stop_job(self.job_kind, self.job_name)


def wait_limit(max_ingestion_time: str | float | None) -> float:
    """Seconds to wait for a job (templated values arrive as strings); no limit when unset."""
    return float(max_ingestion_time) if max_ingestion_time else math.inf


def _template_fields(base: Sequence[str]) -> tuple[str, ...]:
    return (*base, *WAIT_TEMPLATE_FIELDS)


class TuningJobOperator(_LifecycleJobMixin, SageMakerTuningOperator):
    """Runs a hyperparameter tuning job; XCom: the best training job and its tuned values.

    A job warm-started over identical data and algorithm competes with its parents' trials: the
    best of all of them (OverallBestTrainingJob) is the one to train.
    """

    job_kind = "tuning"
    template_fields = _template_fields(SageMakerTuningOperator.template_fields)

    def execute(self, context) -> dict[str, Any]:
        description = self.run_job(on_poll=self._log_progress)
        best = description.get("OverallBestTrainingJob") or description.get("BestTrainingJob")
        if not best:
            raise RuntimeError(
                f"tuning job {self.job_name} completed without a best training job: "
                f"{description.get('TrainingJobStatusCounters')}"
            )
        metric = best.get("FinalHyperParameterTuningJobObjectiveMetric", {})
        summary = {
            "TuningJobName": self.job_name,
            "BestTrainingJobName": best["TrainingJobName"],
            "TunedHyperParameters": best["TunedHyperParameters"],
            "ObjectiveMetric": metric,
            "TrainingJobStatusCounters": description.get("TrainingJobStatusCounters", {}),
        }
        self.log.info(
            "Best training job %s: %s = %s\n%s",
            best["TrainingJobName"],
            metric.get("MetricName"),
            metric.get("Value"),
            "\n".join(f"  {k} = {v}" for k, v in sorted(best["TunedHyperParameters"].items())),
        )
        return summary

    def _log_progress(self, description: Mapping) -> None:
        """Log the trial counters when they change (not at every poll)."""
        progress = (description["HyperParameterTuningJobStatus"],
                    description.get("TrainingJobStatusCounters"))  # fmt: skip
        if progress != getattr(self, "_last_progress", None):
            self._last_progress = progress
            self.log.info("Tuning %s: %s, training jobs %s", self.job_name, *progress)


class TrainingJobOperator(_LifecycleJobMixin, SageMakerTrainingOperator):
    """Runs a training job (its log streams into the task log); XCom: artifact and metrics."""

    job_kind = "training"
    template_fields = _template_fields(SageMakerTrainingOperator.template_fields)

    def execute(self, context) -> dict[str, Any]:
        description = self.run_job()
        metrics = {m["MetricName"]: m["Value"] for m in description.get("FinalMetricDataList", [])}
        self.log.info("Training job %s completed; final metrics %s", self.job_name, metrics)
        return {
            "TrainingJobName": self.job_name,
            "ModelArtifact": description["ModelArtifacts"]["S3ModelArtifacts"],
            "FinalMetrics": metrics,
            "HyperParameters": description.get("HyperParameters", {}),
            # Where rules.engine processing's tensors are (none with the sagemaker engine).
            "CheckpointS3Uri": description.get("CheckpointConfig", {}).get("S3Uri"),
        }


class TransformJobOperator(_LifecycleJobMixin, SageMakerTransformOperator):
    """Runs a batch transform job over an existing model; XCom: its name and output prefix.

    `config` is a plain CreateTransformJob request (the model is created by ModelOperator).
    """

    job_kind = "transform"
    template_fields = _template_fields(SageMakerTransformOperator.template_fields)

    def execute(self, context) -> dict[str, Any]:
        description = self.run_job()
        # The console link the provider's operator shows in the UI (its extra link reads this).
        SageMakerTransformJobLink.persist(
            context=context,
            operator=self,
            region_name=self.hook.conn_region_name,
            aws_partition=self.hook.conn_partition,
            job_name=urllib.parse.quote(self.job_name, safe=""),
        )
        return {
            "TransformJobName": self.job_name,
            "OutputPath": description["TransformOutput"]["S3OutputPath"],
            "InputPath": description["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"],
        }


class RuleProcessingJobsOperator(SageMakerProcessingOperator):
    """Starts one processing job per rule (rules.engine: processing); the gate waits for them.

    `config` is a list of CreateProcessingJob requests; XCom maps rule name -> job name.
    """

    aws_hook_class = SageMakerLifecycleHook

    def preprocess_config(self) -> None:
        """Each request is already complete (built by request_builders.rule_processing_requests)."""

    def execute(self, context) -> dict[str, str]:
        self.job_names = {
            request["Environment"]["RULE_NAME"]: self.hook.start_job("processing", request)
            for request in self.config
        }
        return self.job_names

    def on_kill(self) -> None:
        for name in getattr(self, "job_names", {}).values():
            self.hook.stop_job("processing", name)
