"""Processing jobs: Create/Describe/List/StopProcessingJob and the job lifecycle.

A job is recorded ``InProgress`` at once; a background thread then drives a
:class:`~local_sagemaker.executor.processing_run.ProcessingRun` (the job's /opt/ml stand-in,
inputs, container process, outputs: see that module for the container paths). Statuses:
``InProgress`` -> ``Completed`` | ``Failed`` | ``Stopping`` -> ``Stopped``.

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

import logging
import time
from pathlib import PurePosixPath

import botocore.session

from local_sagemaker.errors import ValidationException
from local_sagemaker.executor.processing_run import ProcessingJobError, ProcessingRun
from local_sagemaker.sagemaker.jobs import JobFamily, JobSpec, RunningJob
from local_sagemaker.sagemaker.resources import truncate_reason

log = logging.getLogger(__name__)

PROCESSING_ROOT = PurePosixPath("/opt/ml/processing")


def _describe_members() -> frozenset[str]:
    model = botocore.session.get_session().get_service_model("sagemaker")
    return frozenset(model.operation_model("DescribeProcessingJob").output_shape.members)


DESCRIBE_MEMBERS = _describe_members()


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


class ProcessingJobs(JobFamily):
    """The processing family of the SageMaker backend (see the module docstring)."""

    spec = JobSpec("ProcessingJob", extra_summary_keys=("FailureReason", "ExitMessage"))

    def create_processing_job(self, request: dict) -> dict:
        """Record the job and start its thread; returns ``{"ProcessingJobArn": ...}`` at once."""
        check_processing_request(request)
        description = self.new_description(request, DESCRIBE_MEMBERS)
        running = self.create({"description": description}, claim_slot=True)
        self.start_thread(self._run_processing_job, request["ProcessingJobName"], running)
        return {"ProcessingJobArn": description["ProcessingJobArn"]}

    def describe_processing_job(self, request: dict) -> dict:
        return self.description(request["ProcessingJobName"])

    def list_processing_jobs(self, request: dict) -> dict:
        return self.list_jobs(request)

    def stop_processing_job(self, request: dict) -> dict:
        """InProgress -> Stopping (the thread then ends the process and records Stopped)."""
        self.request_stop(request["ProcessingJobName"])
        return {}

    # -- the job (background) ------------------------------------------------------------------

    def _run_processing_job(self, name: str, running: RunningJob) -> None:
        run = running.work = ProcessingRun(self.description(name), self.executor)
        try:
            status, members = self._process(name, running, run)
        except ProcessingJobError as error:
            status, members = "Failed", {"FailureReason": str(error)}
        except Exception as error:  # a job thread must always end its job, whatever went wrong
            log.exception("processing job %s crashed the runtime's runner", name)
            run.stop(grace_seconds=0)
            reason = f"InternalServerError: {type(error).__name__}: {error}"
            status, members = "Failed", {"FailureReason": reason}
        finally:
            self.done(name)
        exit_message = run.exit_message()
        if exit_message is not None:
            members["ExitMessage"] = exit_message
        run.remove_tree()
        self.finish(name, status, **members)

    def _process(self, name: str, running: RunningJob, run: ProcessingRun) -> tuple[str, dict]:
        """Inputs, process, outputs; returns the terminal status and the members to record."""
        run.prepare()
        run.download_inputs()
        if running.stop_requested.is_set():
            return "Stopped", {}
        argv, env = run.command()
        self.update(name, ProcessingStartTime=time.time())
        run.launch(argv, env, lambda identity: self.record_processes(name, [identity]))
        max_runtime = run.job.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
        exit_code = run.wait(max_runtime, running.stop_requested)
        if running.stop_requested.is_set():
            return "Stopped", {}
        if exit_code is None:
            return "Failed", {
                "FailureReason": "ClientError: the job ran past StoppingCondition."
                f"MaxRuntimeInSeconds ({max_runtime} s) and was stopped"
            }
        if exit_code != 0:
            reason = (
                f"AlgorithmError: the processing container exited with code {exit_code}. "
                f"Last lines of its stderr:\n{run.stderr_tail()}"
            )
            return "Failed", {"FailureReason": truncate_reason(reason)}
        run.upload_outputs()
        return "Completed", {}
