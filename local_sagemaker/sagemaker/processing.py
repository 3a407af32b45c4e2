"""Processing jobs: Create/Describe/List/StopProcessingJob and the job lifecycle.

A job is recorded ``InProgress`` at once; a background thread then downloads its inputs, runs
``AppSpecification.ContainerEntrypoint + ContainerArguments`` as one child process in its own
process group (the image's Python stands in for ``python``/``python3``, as for training), streams
its output to CloudWatch Logs ``/aws/sagemaker/ProcessingJobs``, stream ``<job>/algo-1-<epoch>``,
and uploads the outputs. Statuses: ``InProgress`` -> ``Completed`` | ``Failed`` | ``Stopping`` ->
``Stopped``.

Container paths. A processing container finds its inputs and writes its outputs under
``/opt/ml/processing/...`` and may leave a note in ``/opt/ml/output/message``. Each job gets a tree
``<data_dir>/processing-jobs/<job>/`` standing in for ``/opt/ml``. A root runtime's job sees that
tree at ``/opt/ml`` itself (``executor/sandbox.py``). Every ``/opt/ml`` path in
ContainerEntrypoint, ContainerArguments and Environment values is also rewritten into the tree
(the processing analogue of the training executor's ``SM_*`` variables), for a runtime that is not
root; there, paths a script only knows as its own defaults cannot be rewritten: pass them as
arguments. The tree also holds ``config/processingjobconfig.json`` (the job's description) and
``config/resourceconfig.json``, as SageMaker provides them.

Outcome, as SageMaker reports it:

- ``ExitMessage``: the first 1 KB of ``/opt/ml/output/message`` in every terminal status.
- ``FailureReason``: ``AlgorithmError: ...`` with the exit code and the stderr tail (or the
  message file) when the process exits non-zero; ``ClientError: ...`` for inputs that cannot be
  downloaded, outputs that cannot be uploaded, an image without a local Python, or a run past
  ``StoppingCondition.MaxRuntimeInSeconds`` (enforced only when the request sets it).
- Outputs (``S3UploadMode: EndOfJob``) are uploaded only when the process exits 0.

The local runtime runs one instance with File-mode ``S3Prefix`` inputs and ``EndOfJob`` outputs;
anything else is refused at CreateProcessingJob with a ValidationException saying so. A job running
when the runtime stopped or died comes back Failed, its process group killed.
"""

import json
import logging
import os
import re
import shutil
import threading
import time
from pathlib import Path, PurePosixPath

import botocore.session

from local_sagemaker.errors import ResourceInUse, ValidationException
from local_sagemaker.executor.processes import kill_leftover_group
from local_sagemaker.executor.sandbox import job_sandbox
from local_sagemaker.executor.toolkit import ENVIRONMENT_NOT_INHERITED
from local_sagemaker.s3 import S3Error
from local_sagemaker.sagemaker.hosting import list_response, truncate_reason

log = logging.getLogger(__name__)

PROCESSING_JOBS = "processing-jobs"
LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
HOST = "algo-1"
PROCESSING_ROOT = PurePosixPath("/opt/ml/processing")
# "/opt/ml" as a whole path component, wherever it starts a path inside a string
# ("--input=/opt/ml/processing/input" too, "/opt/mlx" and "/x/opt/ml" not).
CONTAINER_ROOT_PATTERN = re.compile(r"(?<![\w./-])/opt/ml(?![\w.-])")
EXIT_MESSAGE_LIMIT = 1024
POLL_SECONDS = 0.5
ACTIVE_STATUSES = ("InProgress", "Stopping")
TERMINAL_STATUSES = ("Completed", "Failed", "Stopped")
RESTART_FAILURE = (
    "InternalServerError: the local SageMaker runtime restarted while the job was running"
)
SHUTDOWN_FAILURE = (
    "InternalServerError: the local SageMaker runtime was shut down while the job was running"
)
SUMMARY_KEYS = (
    "ProcessingJobName",
    "ProcessingJobArn",
    "CreationTime",
    "ProcessingEndTime",
    "LastModifiedTime",
    "ProcessingJobStatus",
    "FailureReason",
    "ExitMessage",
)


def _describe_members() -> frozenset[str]:
    model = botocore.session.get_session().get_service_model("sagemaker")
    return frozenset(model.operation_model("DescribeProcessingJob").output_shape.members)


DESCRIBE_MEMBERS = _describe_members()


class ProcessingJobError(Exception):
    """The job cannot go on; the message is its FailureReason (``ClientError: ...``)."""


# -- request checks ----------------------------------------------------------------------------


def _unsupported(what: str) -> ValidationException:
    return ValidationException(f"{what} is not supported by the local SageMaker runtime.")


def _check_local_path(local_path: str | None, member: str) -> None:
    path = PurePosixPath(local_path or "")
    if not path.is_absolute() or PROCESSING_ROOT not in path.parents or ".." in path.parts:
        raise ValidationException(
            f"{member} {local_path!r} must be an absolute path under {PROCESSING_ROOT}/."
        )


def _check_unique(names: list[str], member: str) -> None:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValidationException(f"{member} must be unique; repeated: {', '.join(repeated)}.")


def _check_inputs(inputs: list[dict]) -> None:
    _check_unique([item["InputName"] for item in inputs], "ProcessingInputs InputName")
    for number, item in enumerate(inputs, start=1):
        member = f"ProcessingInputs.{number}"
        source = item.get("S3Input")
        if source is None:
            raise _unsupported(f"{member}: an input without S3Input (DatasetDefinition)")
        _check_local_path(source.get("LocalPath"), f"{member}.S3Input.LocalPath")
        for key, supported in (
            ("S3DataType", "S3Prefix"),
            ("S3InputMode", "File"),
            ("S3CompressionType", "None"),
        ):
            value = source.get(key, supported)
            if value != supported:
                raise _unsupported(f"{member}.S3Input.{key} {value} (use {supported})")


def _check_outputs(outputs: list[dict]) -> None:
    _check_unique([item["OutputName"] for item in outputs], "ProcessingOutputConfig OutputName")
    for number, item in enumerate(outputs, start=1):
        member = f"ProcessingOutputConfig.Outputs.{number}"
        target = item.get("S3Output")
        if target is None:
            raise _unsupported(f"{member}: an output without S3Output (FeatureStoreOutput)")
        _check_local_path(target.get("LocalPath"), f"{member}.S3Output.LocalPath")
        if target["S3UploadMode"] != "EndOfJob":
            raise _unsupported(f"{member}.S3Output.S3UploadMode {target['S3UploadMode']}")


def check_processing_request(request: dict) -> None:
    """Raise ValidationException for what SageMaker refuses or the local runtime cannot run."""
    instance_count = request["ProcessingResources"]["ClusterConfig"]["InstanceCount"]
    if instance_count != 1:
        raise _unsupported(f"ProcessingResources.ClusterConfig.InstanceCount {instance_count}")
    if not request["AppSpecification"].get("ContainerEntrypoint"):
        raise _unsupported(
            "A processing job without AppSpecification.ContainerEntrypoint (the image's own "
            "entrypoint)"
        )
    _check_inputs(request.get("ProcessingInputs", []))
    _check_outputs(request.get("ProcessingOutputConfig", {}).get("Outputs", []))


# -- the job's tree ----------------------------------------------------------------------------


def to_local_paths(text: str, root: Path) -> str:
    """``text`` with every ``/opt/ml`` path moved under ``root`` (the job's /opt/ml stand-in)."""
    return CONTAINER_ROOT_PATTERN.sub(lambda _: str(root), text)


def local_path(root: Path, container_path: str) -> Path:
    """Where the container path ``/opt/ml/...`` (already checked to be safe) is in ``root``."""
    return root / PurePosixPath(container_path).relative_to("/opt/ml")


def read_exit_message(root: Path) -> str | None:
    """The first 1 KB of ``/opt/ml/output/message``, or None when the job wrote none."""
    message = root / "output" / "message"
    if not message.is_file():
        return None
    return message.read_bytes()[:EXIT_MESSAGE_LIMIT].decode("utf-8", errors="replace")


class _RunningProcessingJob:
    """In-memory handle of a job whose thread is alive."""

    def __init__(self):
        self.stop_requested = threading.Event()
        self.process = None


class ProcessingMixin:
    """The processing family of the SageMaker backend (see the module docstring)."""

    def setup(self) -> None:
        self._processing_lock = threading.RLock()
        self._running_processing: dict[str, _RunningProcessingJob] = {}
        for record in self.store.list(PROCESSING_JOBS):
            if record["description"]["ProcessingJobStatus"] not in ACTIVE_STATUSES:
                continue
            for identity in record.get("processes", []):
                if kill_leftover_group(identity):
                    log.info("killed the leftover process group %s", identity["pid"])
            name = record["description"]["ProcessingJobName"]
            self._finish_processing_job(name, "Failed", FailureReason=RESTART_FAILURE)
            log.warning("processing job %s failed: runtime restarted", name)

    def shutdown(self) -> None:
        """Fail running jobs (the runtime is going away) and kill their process groups."""
        for name, running in list(self._running_processing.items()):
            # Recorded before the kill, so the job's thread cannot report the kill as its outcome.
            self._finish_processing_job(name, "Failed", FailureReason=SHUTDOWN_FAILURE)
            running.stop_requested.set()
            if running.process is not None:
                running.process.stop(grace_seconds=0)

    # -- records -------------------------------------------------------------------------------

    def _processing_record(self, name: str) -> dict:
        record = self.store.get(PROCESSING_JOBS, name)
        if record is None:
            raise ValidationException("Requested resource not found.")
        return record

    def _change_processing_job(self, name: str, change) -> dict:
        """Apply ``change(description)`` to the stored job under the family lock; returns it."""
        with self._processing_lock:
            record = self._processing_record(name)
            change(record["description"])
            self.store.put(PROCESSING_JOBS, name, record)
            return record["description"]

    def _record_processing_process(self, name: str, identity: dict) -> None:
        """Remember the child (pid + start time) so a restarted runtime can kill its group."""
        with self._processing_lock:
            record = self._processing_record(name)
            record["processes"] = [identity]
            self.store.put(PROCESSING_JOBS, name, record)

    def _update_processing_job(self, name: str, **members) -> None:
        def change(description):
            description.update(members, LastModifiedTime=time.time())

        self._change_processing_job(name, change)

    def _finish_processing_job(self, name: str, status: str, **members) -> None:
        """Move the job to a terminal status; a job that already ended keeps its outcome."""

        def change(description):
            if description["ProcessingJobStatus"] not in TERMINAL_STATUSES:
                now = time.time()
                description.update(
                    members, ProcessingJobStatus=status, ProcessingEndTime=now, LastModifiedTime=now
                )

        self._change_processing_job(name, change)
        log.info("processing job %s: %s", name, status)

    # -- API -----------------------------------------------------------------------------------

    def create_processing_job(self, request: dict) -> dict:
        """Record the job and start its thread; returns ``{"ProcessingJobArn": ...}`` at once."""
        name = request["ProcessingJobName"]
        arn = self.config.arn("processing-job", name)
        check_processing_request(request)
        now = time.time()
        description = {k: v for k, v in request.items() if k in DESCRIBE_MEMBERS}
        description.update(
            ProcessingJobArn=arn,
            ProcessingJobStatus="InProgress",
            CreationTime=now,
            LastModifiedTime=now,
        )
        with self._processing_lock:
            if self.store.get(PROCESSING_JOBS, name) is not None:
                raise ResourceInUse(
                    "Job name must be unique within an AWS account and region, and a job with "
                    f"this name already exists ({arn})"
                )
            self.executor.job_slots.claim(name)
            self.store.put(PROCESSING_JOBS, name, {"description": description, "processes": []})
            running = self._running_processing[name] = _RunningProcessingJob()
        threading.Thread(
            target=self._run_processing_job,
            args=(name, running),
            daemon=True,
            name=f"processing-{name}",
        ).start()
        log.info("processing job %s created", name)
        return {"ProcessingJobArn": arn}

    def describe_processing_job(self, request: dict) -> dict:
        return dict(self._processing_record(request["ProcessingJobName"])["description"])

    def list_processing_jobs(self, request: dict) -> dict:
        descriptions = [record["description"] for record in self.store.list(PROCESSING_JOBS)]
        return list_response(
            descriptions,
            request,
            "ProcessingJobSummaries",
            SUMMARY_KEYS,
            status_key="ProcessingJobStatus",
        )

    def stop_processing_job(self, request: dict) -> dict:
        """InProgress -> Stopping (the thread then ends the process and records Stopped)."""
        name = request["ProcessingJobName"]
        with self._processing_lock:
            status = self._processing_record(name)["description"]["ProcessingJobStatus"]
            running = self._running_processing.get(name)
            if status == "Stopping":
                return {}
            if status != "InProgress" or running is None:
                raise ValidationException(
                    f"The request was rejected because the processing job is in status {status}."
                )
            self._update_processing_job(name, ProcessingJobStatus="Stopping")
            running.stop_requested.set()
        return {}

    # -- the job (background) ------------------------------------------------------------------

    def _processing_root(self, name: str) -> Path:
        return self.config.data_dir / PROCESSING_JOBS / name

    def _run_processing_job(self, name: str, running: _RunningProcessingJob) -> None:
        root = self._processing_root(name)
        try:
            status, members = self._process(name, running, root)
        except ProcessingJobError as error:
            status, members = "Failed", {"FailureReason": str(error)}
        except Exception as error:  # a job thread must always end its job, whatever went wrong
            log.exception("processing job %s crashed the runtime's runner", name)
            if running.process is not None:
                running.process.stop(grace_seconds=0)
            reason = f"InternalServerError: {type(error).__name__}: {error}"
            status, members = "Failed", {"FailureReason": reason}
        finally:
            self._running_processing.pop(name, None)
            self.executor.job_slots.release(name)
        exit_message = read_exit_message(root)
        if exit_message is not None:
            members["ExitMessage"] = exit_message
        shutil.rmtree(root, ignore_errors=True)
        self._finish_processing_job(name, status, **members)

    def _process(
        self, name: str, running: _RunningProcessingJob, root: Path
    ) -> tuple[str, dict[str, str]]:
        """Inputs, process, outputs; returns the terminal status and the members to record."""
        job = self._processing_record(name)["description"]
        self._prepare_tree(job, root)
        self._download_processing_inputs(job, root)
        if running.stop_requested.is_set():
            return "Stopped", {}
        argv, env = self._processing_command(job, root)
        self._update_processing_job(name, ProcessingStartTime=time.time())
        stream = f"{name}/{HOST}-{int(time.time())}"
        python = self.config.python_for_image(job["AppSpecification"]["ImageUri"])
        running.process = self.executor.start_process(
            argv, env, root, LOG_GROUP, stream, sandbox=job_sandbox(root, python)
        )
        self._record_processing_process(name, running.process.identity)
        max_runtime = job.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
        exit_code = self._wait_for_processing(running, max_runtime)
        if running.stop_requested.is_set():
            return "Stopped", {}
        if exit_code is None:
            return "Failed", {
                "FailureReason": "ClientError: the job ran past StoppingCondition."
                f"MaxRuntimeInSeconds ({max_runtime} s) and was stopped"
            }
        if exit_code != 0:
            return "Failed", {"FailureReason": self._algorithm_error(running.process, exit_code)}
        self._upload_processing_outputs(job, root)
        return "Completed", {}

    def _prepare_tree(self, job: dict, root: Path) -> None:
        """A fresh /opt/ml stand-in with the config files SageMaker writes for the container."""
        if root.exists():
            shutil.rmtree(root)
        config_dir = root / "config"
        for folder in (config_dir, root / "output", root / "processing"):
            folder.mkdir(parents=True)
        (config_dir / "processingjobconfig.json").write_text(json.dumps(job, indent=2))
        resource = {"current_host": HOST, "hosts": [HOST]}
        (config_dir / "resourceconfig.json").write_text(json.dumps(resource, indent=2))
        for output in job.get("ProcessingOutputConfig", {}).get("Outputs", []):
            local_path(root, output["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)

    def _download_processing_inputs(self, job: dict, root: Path) -> None:
        for item in job.get("ProcessingInputs", []):
            source = item["S3Input"]
            destination = local_path(root, source["LocalPath"])
            destination.mkdir(parents=True, exist_ok=True)
            try:
                self.s3.download(source["S3Uri"], destination)
            except S3Error as error:
                raise ProcessingJobError(
                    f"ClientError: ProcessingInput {item['InputName']!r}: {error}"
                ) from error

    def _processing_command(self, job: dict, root: Path) -> tuple[list[str], dict[str, str]]:
        """The child's argv and environment, container paths rewritten into ``root``."""
        app = job["AppSpecification"]
        python = self.config.python_for_image(app["ImageUri"])
        entrypoint = list(app["ContainerEntrypoint"])
        if entrypoint[0] in ("python", "python3"):
            if not Path(python).exists():
                raise ProcessingJobError(
                    f"ClientError: no Python for image {app['ImageUri']!r}: {python} does not "
                    "exist (set LOCAL_SAGEMAKER_CONTAINER_PYTHON or LOCAL_SAGEMAKER_IMAGE_PYTHONS)"
                )
            entrypoint[0] = python
        command = entrypoint + app.get("ContainerArguments", [])
        argv = [to_local_paths(part, root) for part in command]
        env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT_NOT_INHERITED}
        # Lines reach the log as they are printed, not when a pipe buffer fills.
        env["PYTHONUNBUFFERED"] = "1"
        env.update({k: to_local_paths(v, root) for k, v in job.get("Environment", {}).items()})
        return argv, env

    def _wait_for_processing(
        self, running: _RunningProcessingJob, max_runtime: int | None
    ) -> int | None:
        """The exit code; None when MaxRuntimeInSeconds ran out. A stop request or the deadline
        ends the process group (SIGTERM, SIGKILL after the grace period)."""
        deadline = None if max_runtime is None else time.monotonic() + max_runtime
        while True:
            code = running.process.wait(timeout=POLL_SECONDS)
            if code is not None:
                return code
            if running.stop_requested.is_set():
                return running.process.stop(self.config.stop_grace_seconds)
            if deadline is not None and time.monotonic() > deadline:
                running.process.stop(self.config.stop_grace_seconds)
                return None

    @staticmethod
    def _algorithm_error(process, exit_code: int) -> str:
        stderr_tail = "\n".join(process.stderr_tail)
        return truncate_reason(
            f"AlgorithmError: the processing container exited with code {exit_code}. "
            f"Last lines of its stderr:\n{stderr_tail}"
        )

    def _upload_processing_outputs(self, job: dict, root: Path) -> None:
        for output in job.get("ProcessingOutputConfig", {}).get("Outputs", []):
            target = output["S3Output"]
            try:
                self.s3.upload_directory(local_path(root, target["LocalPath"]), target["S3Uri"])
            except S3Error as error:
                raise ProcessingJobError(
                    f"ClientError: ProcessingOutput {output['OutputName']!r}: {error}"
                ) from error
