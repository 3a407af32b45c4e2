"""Training jobs: Create/Describe/List/StopTrainingJob and the job lifecycle.

Statuses follow behaviour doc 2.1. A job is recorded InProgress/Starting at once; a background
thread then walks it through Starting -> Downloading -> Training -> Uploading -> Completed
(or Failed / Stopping -> Stopped / MaxRuntimeExceeded), driving a
:class:`~local_sagemaker.executor.training_run.TrainingRun` for the mechanics.

For other families (the contract):

- ``create_training_job(request, tuning_job_name=None)``: tuning launches trials through it; the
  link shows up as ``TuningJobArn`` and :meth:`TrainingMixin.training_job_tuning_name`.
- ``training_metric_series(name) -> {metric name: [{"Value", "Timestamp", "Epoch"}, ...]}``:
  every value scraped for each MetricDefinition, oldest first.
- ``stop_training(name, secondary_status="Stopped")``: what StopTrainingJob does, callable
  with ``"MaxRuntimeExceeded"`` too (tuning's early stopping uses ``"Stopped"``).
- ``self.training_observers``: append a :class:`TrainingObserver` in your family's ``setup``.
"""

import logging
import threading
import time
from pathlib import PurePosixPath

import botocore.session

from local_sagemaker.errors import (
    ResourceInUse,
    ResourceLimitExceeded,
    ValidationException,
    training_job_not_found,
)
from local_sagemaker.executor.metrics import MetricScraper, compile_metric_definitions
from local_sagemaker.executor.processes import kill_leftover_group
from local_sagemaker.executor.training_run import TrainingSetupError
from local_sagemaker.validation import pagination_offset

log = logging.getLogger(__name__)

TRAINING_JOBS = "training-jobs"
ACTIVE_STATUSES = ("InProgress", "Stopping")
TERMINAL_STATUSES = ("Completed", "Failed", "Stopped")
DEFAULT_MAX_RUNTIME_SECONDS = 86400
FAILURE_REASON_LIMIT = 1024
RESTART_FAILURE = (
    "InternalServerError: the local SageMaker runtime restarted while the job was running"
)
SHUTDOWN_FAILURE = (
    "InternalServerError: the local SageMaker runtime was shut down while the job was running"
)
# Status messages as the service writes them (behaviour doc 2.1).
STOPPED_MESSAGES = {
    "Stopped": "Training job stopped",
    "MaxRuntimeExceeded": "Training job runtime exceeded MaxRuntimeInSeconds provided",
}


def _describe_members() -> frozenset[str]:
    model = botocore.session.get_session().get_service_model("sagemaker")
    return frozenset(model.operation_model("DescribeTrainingJob").output_shape.members)


DESCRIBE_MEMBERS = _describe_members()


class TrainingObserver:
    """Base class for families that follow training jobs (rules, tuning). Override what you need.

    ``job`` is the job's DescribeTrainingJob response without observer extras (a copy);
    ``paths`` is the job's :class:`~local_sagemaker.executor.workspace.TrainingPaths`.
    Calls come from the job's own thread; exceptions are logged and otherwise ignored.
    """

    def training_started(self, job: dict, paths) -> None:
        """The tree and config files exist; the user's processes start right after."""

    def metric_reported(self, job: dict, metric_name: str, point: dict) -> None:
        """A metric value was scraped from the log (``point`` as in training_metric_series)."""

    def training_finished(self, job: dict, paths) -> None:
        """The job reached Completed, Failed or Stopped (``job`` shows which); outputs are in S3."""

    def describe_extras(self, job: dict) -> dict:
        """Members merged into this job's DescribeTrainingJob response."""
        return {}


def enter_secondary_status(description: dict, status: str, message: str) -> None:
    """Move the job to ``status`` (or update its message), closing the previous transition."""
    now = time.time()
    transitions = description.setdefault("SecondaryStatusTransitions", [])
    if transitions and transitions[-1]["Status"] == status:
        transitions[-1]["StatusMessage"] = message
    else:
        if transitions:
            transitions[-1]["EndTime"] = now
        transitions.append({"Status": status, "StartTime": now, "StatusMessage": message})
    description["SecondaryStatus"] = status
    description["LastModifiedTime"] = now


def _final_metrics(series: dict[str, list[dict]]) -> list[dict]:
    return [
        {"MetricName": name, "Value": points[-1]["Value"], "Timestamp": points[-1]["Timestamp"]}
        for name, points in series.items()
        if points
    ]


class _RunningJob:
    """In-memory handle of a job whose thread is alive."""

    def __init__(self, run):
        self.run = run
        self.stop_requested = threading.Event()
        self.stop_status = "Stopped"


class TrainingMixin:
    """The training family of the SageMaker backend (see the module docstring)."""

    def setup(self) -> None:
        self._training_lock = threading.RLock()
        self._running_training: dict[str, _RunningJob] = {}
        self._fail_jobs_interrupted_by_restart()

    def shutdown(self) -> None:
        """Fail running jobs (the runtime is going away) and kill their processes."""
        for name, running in list(self._running_training.items()):
            self._finish(
                name, "Failed", "Failed", "Training job failed", FailureReason=SHUTDOWN_FAILURE
            )
            running.run.stop(grace_seconds=0)

    # -- records -------------------------------------------------------------------------------

    def _training_record(self, name: str) -> dict:
        record = self.store.get(TRAINING_JOBS, name)
        if record is None:
            raise training_job_not_found()
        return record

    def _change_training_job(self, name: str, change) -> dict:
        """Apply ``change(record)`` to the stored record under the family lock; returns it."""
        with self._training_lock:
            record = self._training_record(name)
            change(record)
            self.store.put(TRAINING_JOBS, name, record)
            return record

    def _set_secondary(self, name: str, status: str, message: str, **members) -> None:
        """Record a step of a running job (ignored once the job has ended, e.g. at shutdown)."""

        def change(record):
            if record["description"]["TrainingJobStatus"] not in TERMINAL_STATUSES:
                enter_secondary_status(record["description"], status, message)
                record["description"].update(members)

        self._change_training_job(name, change)

    def _fail_jobs_interrupted_by_restart(self) -> None:
        for record in self.store.list(TRAINING_JOBS):
            description = record["description"]
            if description["TrainingJobStatus"] not in ACTIVE_STATUSES:
                continue
            for identity in record.get("processes", []):
                if kill_leftover_group(identity):
                    log.info("killed leftover process group %s", identity["pid"])
            self._finish(
                description["TrainingJobName"],
                "Failed",
                "Failed",
                "Training job failed",
                FailureReason=RESTART_FAILURE,
            )
            log.warning("training job %s failed: runtime restarted", description["TrainingJobName"])

    # -- API -----------------------------------------------------------------------------------

    def create_training_job(self, request: dict, tuning_job_name: str | None = None) -> dict:
        """Record the job and start its thread; returns ``{"TrainingJobArn": ...}`` at once."""
        name = request["TrainingJobName"]
        arn = self.config.arn("training-job", name)
        self._check_runnable(request)
        algorithm = request["AlgorithmSpecification"]
        now = time.time()
        description = {k: v for k, v in request.items() if k in DESCRIBE_MEMBERS}
        description.update(
            TrainingJobArn=arn,
            TrainingJobStatus="InProgress",
            CreationTime=now,
            LastModifiedTime=now,
            StoppingCondition={
                "MaxRuntimeInSeconds": DEFAULT_MAX_RUNTIME_SECONDS,
                **request.get("StoppingCondition", {}),
            },
            EnableNetworkIsolation=request.get("EnableNetworkIsolation", False),
            EnableInterContainerTrafficEncryption=request.get(
                "EnableInterContainerTrafficEncryption", False
            ),
            EnableManagedSpotTraining=request.get("EnableManagedSpotTraining", False),
            ProfilingStatus=(
                "Enabled"
                if request.get("ProfilerConfig")
                and not request["ProfilerConfig"].get("DisableProfiler")
                else "Disabled"
            ),
        )
        if tuning_job_name:
            description["TuningJobArn"] = self.config.arn(
                "hyper-parameter-tuning-job", tuning_job_name
            )
        enter_secondary_status(description, "Starting", "Starting the training job")
        run = self.executor.training_run(description)
        description["ModelArtifacts"] = {"S3ModelArtifacts": run.model_artifact_uri()}
        with self._training_lock:
            if self.store.get(TRAINING_JOBS, name) is not None:
                raise ResourceInUse(
                    "Training job names must be unique within an AWS account and region, and a "
                    f"training job with this name already exists ({arn})"
                )
            self.executor.job_slots.claim(name)
            record = {
                "description": description,
                "tuning_job_name": tuning_job_name,
                "metric_series": {d["Name"]: [] for d in algorithm.get("MetricDefinitions", [])},
                "processes": [],
            }
            self.store.put(TRAINING_JOBS, name, record)
            running = _RunningJob(run)
            self._running_training[name] = running
        threading.Thread(
            target=self._run_training_job, args=(name, running), daemon=True, name=f"train-{name}"
        ).start()
        log.info("training job %s created", name)
        return {"TrainingJobArn": arn}

    def _check_runnable(self, request: dict) -> None:
        """Refuse (ValidationException) what no job could run: members the model leaves optional
        but a training job needs, an instance count outside 1..the runtime's cap, bad regexes."""
        missing = [m for m in ("AlgorithmSpecification", "ResourceConfig") if m not in request]
        if missing:
            errors = [
                f"Value null at '{m[0].lower() + m[1:]}' failed to satisfy constraint: Member "
                "must not be null"
                for m in missing
            ]
            noun = "error" if len(errors) == 1 else "errors"
            raise ValidationException(
                f"{len(errors)} validation {noun} detected: {'; '.join(errors)}"
            )
        count = request["ResourceConfig"].get("InstanceCount", 1)
        if count < 1:
            raise ValidationException(
                f"1 validation error detected: Value '{count}' at 'resourceConfig.instanceCount' "
                "failed to satisfy constraint: Member must have value greater than or equal to 1"
            )
        if count > self.config.max_instance_count:
            raise ResourceLimitExceeded(
                f"ResourceConfig.InstanceCount {count} exceeds the local runtime's cap of "
                f"{self.config.max_instance_count} hosts per job "
                "(LOCAL_SAGEMAKER_MAX_INSTANCE_COUNT)."
            )
        local_path = request.get("CheckpointConfig", {}).get("LocalPath", "/opt/ml/checkpoints")
        if ".." in PurePosixPath(local_path).parts or not local_path.startswith("/opt/ml/"):
            raise ValidationException(
                f"CheckpointConfig.LocalPath {local_path!r} must be a folder under /opt/ml/ "
                "without '..'"
            )
        try:
            compile_metric_definitions(
                request["AlgorithmSpecification"].get("MetricDefinitions", [])
            )
        except ValueError as error:
            raise ValidationException(f"MetricDefinitions: invalid Regex: {error}") from error

    def describe_training_job(self, request: dict) -> dict:
        record = self._training_record(request["TrainingJobName"])
        return self._described(record)

    def _described(self, record: dict) -> dict:
        description = dict(record["description"])
        final_metrics = _final_metrics(record["metric_series"])
        if final_metrics:
            description["FinalMetricDataList"] = final_metrics
        for observer in self.training_observers:
            try:
                description.update(observer.describe_extras(dict(record["description"])))
            except Exception:
                log.exception("describe_extras of %r failed", observer)
        return description

    def list_training_jobs(self, request: dict) -> dict:
        summaries = [self._summary(r["description"]) for r in self.store.list(TRAINING_JOBS)]
        summaries = [s for s in summaries if _matches_list_filters(s, request)]
        sort_key = {"Name": "TrainingJobName", "Status": "TrainingJobStatus"}.get(
            request.get("SortBy", "CreationTime"), "CreationTime"
        )
        summaries.sort(key=lambda s: s[sort_key], reverse=request.get("SortOrder") != "Ascending")
        start = pagination_offset(request.get("NextToken"))
        end = start + request.get("MaxResults", 10)
        response = {"TrainingJobSummaries": summaries[start:end]}
        if end < len(summaries):
            response["NextToken"] = str(end)
        return response

    @staticmethod
    def _summary(description: dict) -> dict:
        keys = (
            "TrainingJobName",
            "TrainingJobArn",
            "CreationTime",
            "TrainingEndTime",
            "LastModifiedTime",
            "TrainingJobStatus",
            "SecondaryStatus",
        )
        return {k: description[k] for k in keys if k in description}

    def stop_training_job(self, request: dict) -> dict:
        self.stop_training(request["TrainingJobName"])
        return {}

    # -- contract for other families -----------------------------------------------------------

    def stop_training(self, name: str, secondary_status: str = "Stopped") -> None:
        """Ask a running job to stop: Stopping now, then ``Stopped`` with ``secondary_status``
        (``"Stopped"`` or ``"MaxRuntimeExceeded"``) once its processes ended (SIGTERM, then
        SIGKILL after the grace period). Raises ValidationException for a finished job."""
        with self._training_lock:
            description = self._training_record(name)["description"]
            running = self._running_training.get(name)
            if description["TrainingJobStatus"] != "InProgress" or running is None:
                raise ValidationException(
                    "The request was rejected because the training job is in status "
                    f"{description['TrainingJobStatus']}."
                )
            running.stop_status = secondary_status
            self._set_secondary(
                name, "Stopping", "Stopping the training job", TrainingJobStatus="Stopping"
            )
            running.stop_requested.set()

    def training_metric_series(self, name: str) -> dict[str, list[dict]]:
        """Every scraped value per metric (see module docstring); raises for an unknown job."""
        return self._training_record(name)["metric_series"]

    def training_job_tuning_name(self, name: str) -> str | None:
        """The tuning job that launched this training job, or None."""
        return self._training_record(name).get("tuning_job_name")

    # -- lifecycle -----------------------------------------------------------------------------

    def _notify(self, event: str, name: str, *args) -> None:
        job = self._training_record(name)["description"]
        for observer in self.training_observers:
            try:
                getattr(observer, event)(job, *args)
            except Exception:
                log.exception("training observer %r failed in %s", observer, event)

    def _record_metric_line(self, name: str, scraper, text: str) -> None:
        for metric_name, point in scraper.scrape(text):
            self._change_training_job(
                name,
                lambda r, m=metric_name, p=point: r["metric_series"].setdefault(m, []).append(p),
            )
            self._notify("metric_reported", name, metric_name, point)

    def _run_training_job(self, name: str, running: _RunningJob) -> None:
        run = running.run
        try:
            self._set_secondary(name, "Starting", "Preparing the instances for training")
            run.prepare()
            self._set_secondary(
                name, "Downloading", "Downloading input data", TrainingStartTime=time.time()
            )
            run.download_inputs()
            if running.stop_requested.is_set():
                self._finish_stopped(name, running)
                return
            self._set_secondary(name, "Training", "Downloading the training image")
            self._train(name, running)
        except TrainingSetupError as error:
            self._finish(name, "Failed", "Failed", "Training job failed", FailureReason=str(error))
        except Exception as error:
            log.exception("training job %s crashed the runtime's runner", name)
            reason = f"InternalServerError: {type(error).__name__}: {error}"
            self._finish(name, "Failed", "Failed", "Training job failed", FailureReason=reason)
        finally:
            self._running_training.pop(name, None)
            self.executor.job_slots.release(name)
            self._notify("training_finished", name, run.paths)

    def _train(self, name: str, running: _RunningJob) -> None:
        run = running.run
        job = self._training_record(name)
        scraper = MetricScraper(
            job["description"]["AlgorithmSpecification"].get("MetricDefinitions", [])
        )
        self._notify("training_started", name, run.paths)
        self._set_secondary(
            name, "Training", "Training image download completed. Training in progress."
        )
        run.launch(lambda host, text, pipe: self._record_metric_line(name, scraper, text))
        identities = [p.identity for p in run.processes.values()]
        self._change_training_job(name, lambda r: r.update(processes=identities))
        max_runtime = job["description"]["StoppingCondition"]["MaxRuntimeInSeconds"]
        deadline = time.monotonic() + max_runtime
        exit_codes = None
        while exit_codes is None:
            exit_codes = run.wait(timeout=self.config.checkpoint_sync_seconds)
            run.sync_checkpoints()
            if running.stop_requested.is_set():
                break
            if exit_codes is None and time.monotonic() > deadline:
                running.stop_status = "MaxRuntimeExceeded"
                running.stop_requested.set()
                self._set_secondary(
                    name, "Stopping", "Stopping the training job", TrainingJobStatus="Stopping"
                )
                break
        if running.stop_requested.is_set():
            run.stop(self.config.stop_grace_seconds)
            self._finish_stopped(name, running)
            return
        failure = run.failure_reason(exit_codes)
        run.mark_debugger_end()
        self._set_secondary(name, "Uploading", "Uploading generated training model")
        model_uri = run.upload_outputs()
        run.sync_checkpoints()
        if failure is not None:
            reason = f"AlgorithmError: {failure}"[:FAILURE_REASON_LIMIT]
            self._finish(name, "Failed", "Failed", "Training job failed", FailureReason=reason)
        else:
            self._finish(
                name,
                "Completed",
                "Completed",
                "Training job completed",
                ModelArtifacts={"S3ModelArtifacts": model_uri},
            )

    def _finish_stopped(self, name: str, running: _RunningJob) -> None:
        """Upload what the stopped job left (as SageMaker does) and record Stopped."""
        run = running.run
        run.mark_debugger_end()
        model_dir = run.workspace.master.model_dir
        if model_dir.is_dir() and any(model_dir.iterdir()):
            run.upload_outputs()
            run.sync_checkpoints()
        status = running.stop_status
        self._finish(name, "Stopped", status, STOPPED_MESSAGES[status])

    def _finish(self, name: str, status: str, secondary: str, message: str, **members) -> None:
        """Move the job to a terminal status; a job that already ended keeps its outcome."""

        def change(record):
            description = record["description"]
            if description["TrainingJobStatus"] in TERMINAL_STATUSES:
                return
            now = time.time()
            enter_secondary_status(description, secondary, message)
            description.update(members, TrainingJobStatus=status, TrainingEndTime=now)
            started = description.get("TrainingStartTime", description["CreationTime"])
            seconds = max(1, int(now - started))
            description.update(TrainingTimeInSeconds=seconds, BillableTimeInSeconds=seconds)

        self._change_training_job(name, change)
        log.info("training job %s: %s (%s)", name, status, secondary)


def _matches_list_filters(summary: dict, request: dict) -> bool:
    checks = (
        ("NameContains", lambda v: v.lower() in summary["TrainingJobName"].lower()),
        ("StatusEquals", lambda v: summary["TrainingJobStatus"] == v),
        ("CreationTimeAfter", lambda v: summary["CreationTime"] > v),
        ("CreationTimeBefore", lambda v: summary["CreationTime"] < v),
        ("LastModifiedTimeAfter", lambda v: summary["LastModifiedTime"] > v),
        ("LastModifiedTimeBefore", lambda v: summary["LastModifiedTime"] < v),
    )
    return all(check(request[key]) for key, check in checks if key in request)
