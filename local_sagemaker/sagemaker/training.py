"""Training jobs: Create/Describe/List/StopTrainingJob and the job lifecycle.

Statuses follow behaviour doc 2.1. A job is recorded InProgress/Starting at once; a background
thread then walks it through Starting -> Downloading -> Training -> Uploading -> Completed
(or Failed / Stopping -> Stopped / MaxRuntimeExceeded), driving a
:class:`~local_sagemaker.executor.training_run.TrainingRun` for the mechanics.

For other families (the contract):

- ``create_training_job(request, tuning_job_name=None)``: tuning launches trials through it; the
  link shows up as ``TuningJobArn`` and :meth:`TrainingJobs.training_job_tuning_name`.
- ``training_metric_series(name) -> {metric name: [{"Value", "Timestamp", "Epoch"}, ...]}``:
  every value scraped for each MetricDefinition, oldest first.
- ``stop_training(name, secondary_status="Stopped")``: what StopTrainingJob does, callable
  with ``"MaxRuntimeExceeded"`` too (tuning's early stopping uses ``"Stopped"``).
- ``observers``: a family given the training family appends its :class:`TrainingObserver`.
- ``process_ids(name)``: the pids of the job's host processes.
"""

import logging
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
from local_sagemaker.executor.training_run import TrainingSetupError
from local_sagemaker.sagemaker.jobs import TERMINAL_STATUSES, JobFamily, JobSpec, RunningJob
from local_sagemaker.sagemaker.resources import FAILURE_REASON_LIMIT

log = logging.getLogger(__name__)

DEFAULT_MAX_RUNTIME_SECONDS = 86400
# The last secondary status's message, as the service writes it (behaviour doc 2.1).
ENDING_MESSAGES = {
    "Completed": "Training job completed",
    "Failed": "Training job failed",
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


class TrainingJobs(JobFamily):
    """The training family of the SageMaker backend (see the module docstring)."""

    spec = JobSpec("TrainingJob", extra_summary_keys=("SecondaryStatus",))

    def __init__(self, services):
        super().__init__(services)
        self.observers: list[TrainingObserver] = []

    def not_found(self, name: str):
        return training_job_not_found()

    def name_in_use(self, name: str):
        return ResourceInUse(
            "Training job names must be unique within an AWS account and region, and a "
            f"training job with this name already exists ({self.arn(name)})"
        )

    def ending(self, description: dict, status: str, now: float) -> None:
        """The last secondary status, and the job's training and billable seconds."""
        running = self.running.get(description["TrainingJobName"])
        secondary = running.stop_status if status == "Stopped" and running else status
        enter_secondary_status(description, secondary, ENDING_MESSAGES[secondary])
        started = description.get("TrainingStartTime", description["CreationTime"])
        seconds = max(1, int(now - started))
        description.update(TrainingTimeInSeconds=seconds, BillableTimeInSeconds=seconds)

    def _set_secondary(self, name: str, status: str, message: str, **members) -> None:
        """Record a step of a running job (ignored once the job has ended, e.g. at shutdown)."""

        def change(record):
            if record["description"]["TrainingJobStatus"] not in TERMINAL_STATUSES:
                enter_secondary_status(record["description"], status, message)
                record["description"].update(members)

        self.change(name, change)

    # -- API -----------------------------------------------------------------------------------

    def create_training_job(self, request: dict, tuning_job_name: str | None = None) -> dict:
        """Record the job and start its thread; returns ``{"TrainingJobArn": ...}`` at once."""
        self._check_runnable(request)
        algorithm = request["AlgorithmSpecification"]
        description = self.new_description(request, DESCRIBE_MEMBERS)
        description.update(
            StoppingCondition={
                "MaxRuntimeInSeconds": DEFAULT_MAX_RUNTIME_SECONDS,
                **request.get("StoppingCondition", {}),
            },
            # AWS always describes the key, "" when the request names none.
            OutputDataConfig={"KmsKeyId": "", **request["OutputDataConfig"]},
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
        record = {
            "description": description,
            "tuning_job_name": tuning_job_name,
            "metric_series": {d["Name"]: [] for d in algorithm.get("MetricDefinitions", [])},
        }
        running = self.create(record, claim_slot=True)
        running.work = run
        self.start_thread(self._run_training_job, description["TrainingJobName"], running)
        return {"TrainingJobArn": description["TrainingJobArn"]}

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
        record = self.record(request["TrainingJobName"])
        description = dict(record["description"])
        final_metrics = _final_metrics(record["metric_series"])
        if final_metrics:
            description["FinalMetricDataList"] = final_metrics
        for observer in self.observers:
            try:
                description.update(observer.describe_extras(dict(record["description"])))
            except Exception:
                log.exception("describe_extras of %r failed", observer)
        return description

    def list_training_jobs(self, request: dict) -> dict:
        return self.list_jobs(request)

    def stop_training_job(self, request: dict) -> dict:
        self.stop_training(request["TrainingJobName"])
        return {}

    # -- contract for other families -----------------------------------------------------------

    def stop_training(self, name: str, secondary_status: str = "Stopped") -> None:
        """Ask a running job to stop: Stopping now, then ``Stopped`` with ``secondary_status``
        (``"Stopped"`` or ``"MaxRuntimeExceeded"``) once its processes ended (SIGTERM, then
        SIGKILL after the grace period). Raises ValidationException for a finished job."""
        with self.lock:
            status = self.status(name)
            running = self.running.get(name)
            if status != "InProgress" or running is None:
                raise ValidationException(
                    f"The request was rejected because the training job is in status {status}."
                )
            running.stop_status = secondary_status
            self._set_secondary(
                name, "Stopping", "Stopping the training job", TrainingJobStatus="Stopping"
            )
            running.stop_requested.set()

    def training_metric_series(self, name: str) -> dict[str, list[dict]]:
        """Every scraped value per metric (see module docstring); raises for an unknown job."""
        return self.record(name)["metric_series"]

    def training_job_tuning_name(self, name: str) -> str | None:
        """The tuning job that launched this training job, or None."""
        return self.record(name).get("tuning_job_name")

    def process_ids(self, name: str) -> list[int]:
        """The pids of the job's host processes (empty before they start)."""
        return [identity["pid"] for identity in self.record(name)["processes"]]

    # -- lifecycle -----------------------------------------------------------------------------

    def _notify(self, event: str, name: str, *args) -> None:
        job = self.description(name)
        for observer in self.observers:
            try:
                getattr(observer, event)(job, *args)
            except Exception:
                log.exception("training observer %r failed in %s", observer, event)

    def _record_metric_line(self, name: str, scraper, text: str) -> None:
        for metric_name, point in scraper.scrape(text):
            self.change(
                name,
                lambda r, m=metric_name, p=point: r["metric_series"].setdefault(m, []).append(p),
            )
            self._notify("metric_reported", name, metric_name, point)

    def _run_training_job(self, name: str, running: RunningJob) -> None:
        run = running.work
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
            self.finish(name, "Failed", FailureReason=str(error))
        except Exception as error:
            log.exception("training job %s crashed the runtime's runner", name)
            reason = f"InternalServerError: {type(error).__name__}: {error}"
            self.finish(name, "Failed", FailureReason=reason)
        finally:
            self.done(name)
            self._notify("training_finished", name, run.paths)

    def _train(self, name: str, running: RunningJob) -> None:
        run = running.work
        description = self.description(name)
        scraper = MetricScraper(description["AlgorithmSpecification"].get("MetricDefinitions", []))
        self._notify("training_started", name, run.paths)
        self._set_secondary(
            name, "Training", "Training image download completed. Training in progress."
        )
        run.launch(
            lambda host, text, pipe: self._record_metric_line(name, scraper, text),
            lambda identities: self.record_processes(name, identities),
        )
        deadline = time.monotonic() + description["StoppingCondition"]["MaxRuntimeInSeconds"]
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
            self.finish(
                name, "Failed", FailureReason=f"AlgorithmError: {failure}"[:FAILURE_REASON_LIMIT]
            )
        else:
            self.finish(name, "Completed", ModelArtifacts={"S3ModelArtifacts": model_uri})

    def _finish_stopped(self, name: str, running: RunningJob) -> None:
        """Upload what the stopped job left (as SageMaker does) and record Stopped."""
        run = running.work
        run.mark_debugger_end()
        model_dir = run.workspace.master.model_dir
        if model_dir.is_dir() and any(model_dir.iterdir()):
            run.upload_outputs()
            run.sync_checkpoints()
        self.finish(name, "Stopped")
