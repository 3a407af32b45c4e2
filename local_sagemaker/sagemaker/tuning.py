"""Hyperparameter tuning jobs: Create/Describe/List/Stop/DeleteHyperParameterTuningJob and
ListTrainingJobsForHyperParameterTuningJob, over real training jobs.

A tuning job's trials are ordinary training jobs, created through the training family's
``create_training_job(request, tuning_job_name=...)`` and named
``<tuning job>-<001..>-<8 hex>``. The search itself (Optuna samplers for Bayesian, Random, Grid
and Hyperband; the median stopping rule for ``TrainingJobEarlyStoppingType: Auto``) lives in
:mod:`local_sagemaker.tuning`; :class:`~local_sagemaker.tuning.runner.TuningRun` drives each job.

Records (the job record of :mod:`.jobs`, kind ``hyper-parameter-tuning-jobs``): ``description``
(what Describe echoes, plus status and times), ``trials`` (one entry per launched training
job: name, tuned hyperparameters, objective values, ObjectiveStatus) and
``jobs_not_improving``. Counters, the best job and the trial summaries are derived from the
trials and their training jobs on read.

Local behaviour worth knowing: MaxParallelTrainingJobs is capped at the machine's CPU count;
a tuning job running when the runtime stops is Failed (its trials too), and a new tuning job can
warm-start from it. One training job definition per tuning job; no
Autotune. When MaxRuntimeInSeconds passes, running trials are stopped and the tuning job ends
Completed, as it does when TuningJobCompletionCriteria are met (AWS documents neither status).
ConvergenceDetected is accepted and not acted on.
"""

from __future__ import annotations

import logging
import time

from local_sagemaker.errors import ResourceInUse, ResourceNotFound, ValidationException
from local_sagemaker.paging import paginate
from local_sagemaker.sagemaker.jobs import ACTIVE_STATUSES, JobFamily, JobSpec, interruption_reason
from local_sagemaker.sagemaker.training import TrainingObserver
from local_sagemaker.tuning.plan import TuningPlan, training_job_definition
from local_sagemaker.tuning.runner import TuningRun
from local_sagemaker.tuning.search_space import InvalidTuningConfig

log = logging.getLogger(__name__)

DESCRIPTION_MEMBERS = (
    "HyperParameterTuningJobConfig",
    "TrainingJobDefinition",
    "TrainingJobDefinitions",
    "WarmStartConfig",
)
TRIAL_SUMMARY_KEYS = (
    "TrainingJobName",
    "TrainingJobArn",
    "CreationTime",
    "TrainingStartTime",
    "TrainingEndTime",
    "TrainingJobStatus",
    "FailureReason",
)


def tuning_job_not_found(name: str) -> ResourceNotFound:
    """SageMaker's answer for an unknown tuning job (behaviour doc 4.3)."""
    return ResourceNotFound(
        f"Amazon SageMaker can't find a tuning job called {name}. Type another name."
    )


class _TrialWatcher(TrainingObserver):
    """Wakes a tuning job's loop when one of its trials reports a metric or ends."""

    def __init__(self, tuning):
        self.tuning = tuning

    def metric_reported(self, job: dict, metric_name: str, point: dict) -> None:
        self.tuning.wake_tuning_run(job)

    def training_finished(self, job: dict, paths) -> None:
        self.tuning.wake_tuning_run(job)


class TuningJobs(JobFamily):
    """The hyperparameter tuning family, given the training family that runs its trials."""

    spec = JobSpec(
        "HyperParameterTuningJob",
        extra_summary_keys=(
            "Strategy",
            "TrainingJobStatusCounters",
            "ObjectiveStatusCounters",
            "ResourceLimits",
        ),
        subject="tuning job",
    )

    def __init__(self, services, training):
        super().__init__(services)
        self.training = training
        training.observers.append(_TrialWatcher(self))

    def not_found(self, name: str):
        return tuning_job_not_found(name)

    def name_in_use(self, name: str):
        return ResourceInUse(
            f"A hyperparameter tuning job with the name, {name}, already exists. "
            "Choose a different name."
        )

    def fail_interrupted(self, name: str, reason: str) -> None:
        """Failed, with the trials still waiting for an objective (the training family, which
        starts first and shuts down last, fails the trials themselves)."""

        def fail_pending(record):
            for entry in record["trials"]:
                if entry["ObjectiveStatus"] == "Pending":
                    entry["ObjectiveStatus"] = "Failed"

        self.change(name, fail_pending)
        self.finish(name, "Failed", FailureReason=reason)

    def shutdown(self) -> None:
        """Halt the tuning loops, then fail their jobs (halted first: a loop's last write must
        not undo the Failed)."""
        for name, running in list(self.running.items()):
            running.work.halt()
            self.fail_interrupted(name, interruption_reason("was shut down", self.spec.subject))

    def wake_tuning_run(self, training_job: dict) -> None:
        """Nudge the loop of the tuning job that launched ``training_job``, if any."""
        if "TuningJobArn" not in training_job:
            return
        tuning_job_name = self.training.training_job_tuning_name(training_job["TrainingJobName"])
        running = self.running.get(tuning_job_name)
        if running is not None:
            running.work.wake()

    # -- API --

    def create_hyper_parameter_tuning_job(self, request: dict) -> dict:
        """Validate, record the tuning job InProgress, start its loop; returns its ARN at once."""
        name = request["HyperParameterTuningJobName"]
        try:
            plan = TuningPlan.from_request(request)
            definition = training_job_definition(request)
        except InvalidTuningConfig as error:
            raise ValidationException(str(error)) from None
        history = self._warm_start_history(request, plan)
        description = self.new_description(request, DESCRIPTION_MEMBERS)
        record = {
            "description": description,
            "objective": {
                "Type": "Maximize" if plan.maximize else "Minimize",
                "MetricName": plan.objective_metric,
            },
            "trials": [],
            "jobs_not_improving": 0,
        }
        running = self.create(record)
        run = running.work = TuningRun(self.training, self, name, plan, definition, history)
        run.start()
        log.info("tuning job %s created (%s, %d jobs)", name, plan.strategy, plan.max_training_jobs)
        return {"HyperParameterTuningJobArn": description["HyperParameterTuningJobArn"]}

    def describe_hyper_parameter_tuning_job(self, request: dict) -> dict:
        record = self.record(request["HyperParameterTuningJobName"])
        description = dict(record["description"])
        summaries = self._trial_summaries(record)
        description["TrainingJobStatusCounters"] = training_job_status_counters(summaries)
        description["ObjectiveStatusCounters"] = objective_status_counters(summaries)
        maximize = record["objective"]["Type"] == "Maximize"
        best = best_training_job(summaries, maximize)
        if best is not None:
            description["BestTrainingJob"] = best
        warm_start = description.get("WarmStartConfig")
        if warm_start and warm_start["WarmStartType"] == "IdenticalDataAndAlgorithm":
            overall = best_training_job(summaries + self._parent_summaries(warm_start), maximize)
            if overall is not None:
                description["OverallBestTrainingJob"] = overall
        end = description.get("HyperParameterTuningEndTime", time.time())
        description["ConsumedResources"] = {
            "RuntimeInSeconds": int(end - description["CreationTime"])
        }
        criteria = description["HyperParameterTuningJobConfig"].get("TuningJobCompletionCriteria")
        if criteria:
            description["TuningJobCompletionDetails"] = {
                "NumberOfTrainingJobsObjectiveNotImproving": record["jobs_not_improving"]
            }
        return description

    def summaries_source(self) -> list[dict]:
        """Descriptions with the summary members derived from the config and the trials."""
        sources = []
        for record in self.store.list(self.spec.kind):
            description = record["description"]
            trials = self._trial_summaries(record)
            config = description["HyperParameterTuningJobConfig"]
            sources.append(
                {
                    **description,
                    "Strategy": config["Strategy"],
                    "ResourceLimits": config["ResourceLimits"],
                    "TrainingJobStatusCounters": training_job_status_counters(trials),
                    "ObjectiveStatusCounters": objective_status_counters(trials),
                }
            )
        return sources

    def list_hyper_parameter_tuning_jobs(self, request: dict) -> dict:
        return self.list_jobs(request)

    def list_training_jobs_for_hyper_parameter_tuning_job(self, request: dict) -> dict:
        """Trials of one tuning job. Defaults as documented: SortBy Name, Ascending, 10 a page;
        sorting by FinalObjectiveMetricValue leaves out jobs without an objective value."""
        record = self.record(request["HyperParameterTuningJobName"])
        summaries = self._trial_summaries(record)
        if "StatusEquals" in request:
            summaries = [s for s in summaries if s["TrainingJobStatus"] == request["StatusEquals"]]
        sort_by = request.get("SortBy", "Name")
        if sort_by == "FinalObjectiveMetricValue":
            summaries = [s for s in summaries if "FinalHyperParameterTuningJobObjectiveMetric" in s]
        summaries.sort(
            key=_TRIAL_SORT_KEYS[sort_by], reverse=request.get("SortOrder") == "Descending"
        )
        return paginate(summaries, request, "ListTrainingJobsForHyperParameterTuningJob")

    def stop_hyper_parameter_tuning_job(self, request: dict) -> dict:
        """Stopping now; every running trial is stopped; Stopped once they all ended."""
        name = request["HyperParameterTuningJobName"]
        status = self.status(name)
        running = self.running.get(name)
        if status not in ACTIVE_STATUSES or running is None or not running.work.request_stop():
            raise ValidationException(
                f"The hyperparameter tuning job {name} is in status {status} and cannot be stopped."
            )
        return {}

    def delete_hyper_parameter_tuning_job(self, request: dict) -> dict:
        """Forget a finished tuning job; its training jobs and artifacts stay."""
        name = request["HyperParameterTuningJobName"]
        with self.lock:
            status = self.status(name)
            if status in ACTIVE_STATUSES:
                raise ValidationException(
                    f"The hyperparameter tuning job {name} is in status {status}; stop it and "
                    "wait until it is Stopped before deleting it."
                )
            self.store.delete(self.spec.kind, name)
            self.running.pop(name, None)
        return {}

    # -- trials --

    def _trial_summaries(self, record: dict) -> list[dict]:
        """HyperParameterTrainingJobSummary of every trial, with its training job's state."""
        description = record["description"]
        summaries = []
        for entry in record["trials"]:
            job = self.training.describe_training_job({"TrainingJobName": entry["TrainingJobName"]})
            summary = {key: job[key] for key in TRIAL_SUMMARY_KEYS if key in job}
            summary.update(
                TuningJobName=description["HyperParameterTuningJobName"],
                TunedHyperParameters=entry["TunedHyperParameters"],
                ObjectiveStatus=entry["ObjectiveStatus"],
            )
            if entry["ObjectiveStatus"] == "Succeeded":
                summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                    "MetricName": record["objective"]["MetricName"],
                    "Value": entry["ObjectiveValues"][-1],
                }
            summaries.append(summary)
        return summaries

    # -- warm start --

    def _parent_records(self, warm_start: dict) -> list[dict]:
        records = []
        for parent in warm_start["ParentHyperParameterTuningJobs"]:
            name = parent["HyperParameterTuningJobName"]
            records.append(self.record(name))
        return records

    def _parent_summaries(self, warm_start: dict) -> list[dict]:
        return [
            summary
            for record in self._parent_records(warm_start)
            for summary in self._trial_summaries(record)
        ]

    def _warm_start_history(
        self, request: dict, plan: TuningPlan
    ) -> list[tuple[dict[str, str], list[float]]]:
        """Finished, successful trials of the parents, after checking the parents qualify."""
        warm_start = request.get("WarmStartConfig")
        if not warm_start:
            return []
        history = []
        for record in self._parent_records(warm_start):
            _check_parent(record, request, plan, warm_start["WarmStartType"])
            history.extend(
                (entry["TunedHyperParameters"], entry["ObjectiveValues"])
                for entry in record["trials"]
                if entry["ObjectiveStatus"] == "Succeeded"
            )
        return history


def _check_parent(record: dict, request: dict, plan: TuningPlan, warm_start_type: str) -> None:
    parent = record["description"]
    name = parent["HyperParameterTuningJobName"]
    status = parent["HyperParameterTuningJobStatus"]
    if status in ACTIVE_STATUSES:
        raise ValidationException(
            f"Parent tuning job {name} is {status}; warm start needs parents that are "
            "Completed, Stopped or Failed."
        )
    parent_metric = record["objective"]["MetricName"]
    if parent_metric != plan.objective_metric:
        raise ValidationException(
            f"Parent tuning job {name} optimised '{parent_metric}', not '{plan.objective_metric}'; "
            "warm start needs the same objective metric."
        )
    if warm_start_type == "IdenticalDataAndAlgorithm":
        parent_definition = training_job_definition(parent)
        definition = training_job_definition(request)
        for member in ("InputDataConfig", "AlgorithmSpecification"):
            if _data_and_algorithm(parent_definition, member) != _data_and_algorithm(
                definition, member
            ):
                raise ValidationException(
                    f"WarmStartType IdenticalDataAndAlgorithm needs the same {member} as parent "
                    f"tuning job {name}; use TransferLearning when they differ."
                )


def _data_and_algorithm(definition: dict, member: str):
    value = definition.get(member)
    if member == "AlgorithmSpecification" and value:
        return value.get("TrainingImage") or value.get("AlgorithmName")
    return value


def training_job_status_counters(summaries: list[dict]) -> dict:
    """TrainingJobStatusCounters: a failure is retryable only if the runtime caused it."""
    counters = dict.fromkeys(
        ("Completed", "InProgress", "RetryableError", "NonRetryableError", "Stopped"), 0
    )
    for summary in summaries:
        status = summary["TrainingJobStatus"]
        if status == "Failed":
            internal = summary.get("FailureReason", "").startswith("InternalServerError")
            counters["RetryableError" if internal else "NonRetryableError"] += 1
        else:
            counters["InProgress" if status == "Stopping" else status] += 1
    return counters


def objective_status_counters(summaries: list[dict]) -> dict:
    counters = dict.fromkeys(("Succeeded", "Pending", "Failed"), 0)
    for summary in summaries:
        counters[summary["ObjectiveStatus"]] += 1
    return counters


def best_training_job(summaries: list[dict], maximize: bool) -> dict | None:
    """The trial with the best final objective among those whose objective succeeded."""
    scored = [s for s in summaries if s["ObjectiveStatus"] == "Succeeded"]
    if not scored:
        return None
    choose = max if maximize else min
    return choose(scored, key=_objective_value)


def _objective_value(summary: dict) -> float:
    return summary["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]


_TRIAL_SORT_KEYS = {
    "Name": lambda summary: summary["TrainingJobName"],
    "CreationTime": lambda summary: summary["CreationTime"],
    "Status": lambda summary: summary["TrainingJobStatus"],
    "FinalObjectiveMetricValue": _objective_value,
}
