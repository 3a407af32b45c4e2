"""Operators that run one SageMaker job each: tuning, training, transform, rule processing and
the explanation job.

Each subclasses the provider's operator (templated `config`, integer parsing, role expansion) and
replaces its `execute`: `SageMakerLifecycleHook.start_job` starts the job (or adopts the one an
earlier try started), then the task defers to `job_triggers.SageMakerJobTrigger`, so no worker slot
is held while the job runs, and resumes in `execute_complete` once the job has ended. This closes
the provider's gaps: retries adopt their job, Stopped is a failure, the poll interval (templated,
so a run's params can set it) applies from the first check, the time limit stops the job, and a
user who kills the task, or marks the deferred task failed, stops the job. XCom gets a compact
summary instead of the whole Describe* response.

The job's name is also kept in Airflow's task state store (Airflow 3.3): a retry first follows
the job its earlier try recorded there; the name-based adoption of `start_job` is the fallback
(no store, a cleared task, an expired key).
"""

from __future__ import annotations

import math
import time
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

from sagemaker_lifecycle.hooks import (
    COMPLETED,
    JOB_KINDS,
    RUNNING_STATUSES,
    SageMakerJobError,
    SageMakerLifecycleHook,
    raise_unless_completed,
)
from sagemaker_lifecycle.job_triggers import SageMakerJobTrigger
from sagemaker_lifecycle.ui.links import SageMakerJobLink, TrainingLogLink

WAIT_TEMPLATE_FIELDS = ("check_interval", "max_ingestion_time")


class _LifecycleJobMixin:
    """Runs the operator's `config` as one job of `job_kind`, deferred until it ends."""

    aws_hook_class = SageMakerLifecycleHook
    job_kind: str
    job_name: str | None = None

    @property
    def state_key(self) -> str:
        """The task state store key of the job this task follows."""
        return f"{self.job_kind}_job_name"

    def execute(self, context) -> None:
        self.preprocess_config()
        self.job_name = self._recorded_job(context) or self.hook.start_job(
            self.job_kind, self.config
        )
        store = context.get("task_state_store")
        if store is not None:
            store.set(self.state_key, self.job_name)
        limit = wait_limit(self.max_ingestion_time)
        self.defer(
            trigger=SageMakerJobTrigger(
                kind_name=self.job_kind,
                job_name=self.job_name,
                poll_interval=float(self.check_interval),
                deadline=None if math.isinf(limit) else time.time() + limit,
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
            ),
            method_name="execute_complete",
        )

    def _recorded_job(self, context) -> str | None:
        """The job an earlier try of this task recorded, when it is running or completed."""
        store = context.get("task_state_store")
        name = store.get(self.state_key) if store is not None else None
        if not name:
            return None
        kind = JOB_KINDS[self.job_kind]
        status = (self.hook.describe_job(self.job_kind, name) or {}).get(kind.status_key)
        if status in RUNNING_STATUSES or status == COMPLETED:
            self.log.info("Following %s %s, recorded by an earlier try (%s)", kind.noun, name,
                          status)  # fmt: skip
            return name
        return None

    def execute_complete(self, context, event: Mapping[str, Any]) -> dict:
        """The task's XCom once the job ended; raises when it did not complete."""
        self.job_name = event["job_name"]
        kind = JOB_KINDS[self.job_kind]
        if event["timed_out"]:
            limit = wait_limit(self.max_ingestion_time)
            raise SageMakerJobError(
                f"{kind.noun} {self.job_name} still {event['status']} after {limit:.0f} s; "
                "stopped it"
            )
        description = self.hook.describe_job(self.job_kind, self.job_name)
        if description is None:
            raise SageMakerJobError(f"{kind.noun} {self.job_name} does not exist")
        raise_unless_completed(self.job_kind, description)
        return self.summarize(description, context)

    def summarize(self, description: Mapping, context) -> dict[str, Any]:
        """The XCom of a completed job (its final Describe* response)."""
        raise NotImplementedError

    def on_kill(self) -> None:
        """Stop the SageMaker job when Airflow kills the task before it deferred (the trigger's
        `on_kill` stops it afterwards)."""
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
    operator_extra_links = (SageMakerJobLink(), TrainingLogLink())

    def summarize(self, description: Mapping, context) -> dict[str, Any]:
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


class TrainingJobOperator(_LifecycleJobMixin, SageMakerTrainingOperator):
    """Runs a training job (its log streams into the task log); XCom: artifact and metrics."""

    job_kind = "training"
    template_fields = _template_fields(SageMakerTrainingOperator.template_fields)
    operator_extra_links = (SageMakerJobLink(), TrainingLogLink())

    def summarize(self, description: Mapping, context) -> dict[str, Any]:
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

    def summarize(self, description: Mapping, context) -> dict[str, Any]:
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


class ExplanationJobOperator(_LifecycleJobMixin, SageMakerProcessingOperator):
    """Runs the explanation processing job (sagemaker_code/explain.py); XCom: its name and
    where its report is."""

    job_kind = "processing"
    template_fields = _template_fields(SageMakerProcessingOperator.template_fields)

    def summarize(self, description: Mapping, context) -> dict[str, Any]:
        output = description["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
        report = f"{output.rstrip('/')}/report.html"
        self.log.info("Explanation report: %s", report)
        return {"ProcessingJobName": self.job_name, "ReportUri": report,
                "SummaryUri": f"{output.rstrip('/')}/summary.json"}  # fmt: skip


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
