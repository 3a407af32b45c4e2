"""Batch transform jobs: every object under the input prefix through the model's handlers.

A job runs in a background thread: the model's artifacts are fetched, a model server starts
with the batch environment (``SAGEMAKER_BATCH=true`` and, when the request sets them,
``SAGEMAKER_MAX_PAYLOAD_IN_MB`` / ``SAGEMAKER_BATCH_STRATEGY`` /
``SAGEMAKER_MAX_CONCURRENT_TRANSFORMS``), and ``local_sagemaker.hosting.batch`` sends the
objects through it. Settings the request leaves out come from the container's
``GET /execution-parameters``, then from SageMaker's defaults (sagemaker-behaviour.md 5.6).

Output naming: the object ``<input prefix><relative key>`` is written to
``<S3OutputPath>/<relative key>.out`` (the same rule as S3Prefix training channels: the whole
prefix is stripped, a leading ``/`` too), so sub-folders under the input prefix are kept.

Status: ``InProgress`` -> ``Completed`` | ``Failed`` (FailureReason lists failed objects; their
outputs are not written) | ``Stopping`` -> ``Stopped``. A runtime shutdown or restart fails jobs
that were running and kills their model servers (:mod:`.jobs`). Logs go to
``/aws/sagemaker/TransformJobs``, stream ``<job>/<instance-id>-<epoch>``.
"""

from __future__ import annotations

import json
import logging
import shutil
import time

from local_sagemaker.errors import ValidationException
from local_sagemaker.hosting.artifacts import ModelArtifactError, prepare_model_dir
from local_sagemaker.hosting.batch import InputObject, TransformSettings, run_transform
from local_sagemaker.hosting.process import ModelServerProcess, ModelServerStartError
from local_sagemaker.s3 import S3Error, parse_s3_uri
from local_sagemaker.sagemaker.hosting import MODELS
from local_sagemaker.sagemaker.jobs import JobFamily, JobSpec, RunningJob
from local_sagemaker.sagemaker.resources import new_instance_id, truncate_reason

log = logging.getLogger(__name__)

LOG_GROUP = "/aws/sagemaker/TransformJobs"
SUPPORTED_SPLIT_TYPES = ("None", "Line")
DEFAULT_INVOCATION_TIMEOUT_S = 600
DEFAULT_MAX_RETRIES = 3
# Request members copied into the record (and so returned by DescribeTransformJob).
DESCRIBED_MEMBERS = (
    "TransformJobName",
    "ModelName",
    "MaxConcurrentTransforms",
    "ModelClientConfig",
    "MaxPayloadInMB",
    "BatchStrategy",
    "Environment",
    "TransformInput",
    "TransformOutput",
    "DataCaptureConfig",
    "TransformResources",
    "DataProcessing",
    "ExperimentConfig",
)


class TransformJobStopped(Exception):
    """StopTransformJob arrived before the model server was ready."""


class _StoppableServer:
    """A model server as a job's work (:class:`~local_sagemaker.sagemaker.jobs.RunningJob`)."""

    def __init__(self, server: ModelServerProcess):
        self.server = server

    def stop(self, grace_seconds: float) -> None:
        self.server.stop()  # the server has its own grace period


def check_supported(request: dict) -> None:
    """Refuse, with a clear message, what the local runtime does not implement."""
    transform_input = request["TransformInput"]
    split_type = transform_input.get("SplitType", "None")
    if split_type not in SUPPORTED_SPLIT_TYPES:
        raise ValidationException(
            f"SplitType {split_type} is not supported by the local SageMaker runtime "
            f"(supported: {', '.join(SUPPORTED_SPLIT_TYPES)})."
        )
    data_type = transform_input["DataSource"]["S3DataSource"]["S3DataType"]
    if data_type not in ("S3Prefix", "ManifestFile"):
        raise ValidationException(
            f"S3DataType {data_type} is not supported by the local SageMaker runtime "
            "(supported: S3Prefix, ManifestFile)."
        )
    processing = request.get("DataProcessing") or {}
    if processing.get("JoinSource", "None") != "None" or any(
        processing.get(key, "$") != "$" for key in ("InputFilter", "OutputFilter")
    ):
        raise ValidationException(
            "DataProcessing (InputFilter, OutputFilter, JoinSource) is not supported by the "
            "local SageMaker runtime."
        )
    concurrent = request.get("MaxConcurrentTransforms") or 1
    payload = request.get("MaxPayloadInMB", 6)
    if concurrent * payload > 100:
        raise ValidationException(
            f"MaxConcurrentTransforms ({concurrent}) * MaxPayloadInMB ({payload}) must not "
            "exceed 100 MB."
        )


def batch_environment(request: dict) -> dict[str, str]:
    """The SAGEMAKER_* variables SageMaker adds for a batch container (only those requested)."""
    environment = {"SAGEMAKER_BATCH": "true"}
    if "MaxPayloadInMB" in request:
        environment["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = str(request["MaxPayloadInMB"])
    if "BatchStrategy" in request:
        strategy = {"SingleRecord": "SINGLE_RECORD", "MultiRecord": "MULTI_RECORD"}
        environment["SAGEMAKER_BATCH_STRATEGY"] = strategy[request["BatchStrategy"]]
    if request.get("MaxConcurrentTransforms"):
        environment["SAGEMAKER_MAX_CONCURRENT_TRANSFORMS"] = str(request["MaxConcurrentTransforms"])
    return environment


def resolve_settings(request: dict, container_parameters: dict) -> TransformSettings:
    """Request values, else the container's /execution-parameters, else SageMaker's defaults."""
    transform_input, transform_output = request["TransformInput"], request["TransformOutput"]
    strategy = request.get("BatchStrategy") or {
        "SINGLE_RECORD": "SingleRecord",
        "MULTI_RECORD": "MultiRecord",
    }.get(container_parameters.get("BatchStrategy"), "MultiRecord")
    client_config = request.get("ModelClientConfig") or {}
    return TransformSettings(
        content_type=transform_input.get("ContentType"),
        accept=transform_output.get("Accept"),
        split_type=transform_input.get("SplitType", "None"),
        compression_type=transform_input.get("CompressionType", "None"),
        batch_strategy=strategy,
        max_payload_mb=request.get("MaxPayloadInMB", container_parameters.get("MaxPayloadInMB", 6)),
        max_concurrent_transforms=request.get("MaxConcurrentTransforms")
        or container_parameters.get("MaxConcurrentTransforms", 1),
        assemble_with=transform_output.get("AssembleWith", "None"),
        max_retries=client_config.get("InvocationsMaxRetries", DEFAULT_MAX_RETRIES),
    )


def relative_key(key: str, prefix: str) -> str:
    """``key`` below ``prefix`` (an object named exactly by the prefix keeps its file name)."""
    return key[len(prefix) :].lstrip("/") or key.rsplit("/", 1)[-1]


def failure_reason(failures: dict[str, str], total: int) -> str:
    listed = "; ".join(f"{key}: {reason}" for key, reason in failures.items())
    return truncate_reason(
        f"ClientError: {len(failures)} of {total} input objects failed "
        f"(no output was written for them): {listed}"
    )


class TransformJobs(JobFamily):
    """Create/Describe/Stop/ListTransformJobs, given the hosting family (which owns models)."""

    spec = JobSpec("TransformJob", extra_summary_keys=("FailureReason",))

    def __init__(self, services, hosting):
        super().__init__(services)
        self.hosting = hosting

    def not_found(self, name: str):
        return ValidationException(f'Could not find transform job "{self.arn(name)}".')

    # -- API -----------------------------------------------------------------------------------

    def create_transform_job(self, request: dict) -> dict:
        self.hosting.require_model(request["ModelName"])
        check_supported(request)
        description = self.new_description(request, DESCRIBED_MEMBERS)
        running = self.create({"description": description})
        self.start_thread(self._run_transform_job, request["TransformJobName"], running)
        return {"TransformJobArn": description["TransformJobArn"]}

    def describe_transform_job(self, request: dict) -> dict:
        job = self.description(request["TransformJobName"])
        job.pop("LastModifiedTime", None)
        return job

    def stop_transform_job(self, request: dict) -> dict:
        self.request_stop(request["TransformJobName"])
        return {}

    def list_transform_jobs(self, request: dict) -> dict:
        return self.list_jobs(request)

    # -- the job (background) ------------------------------------------------------------------

    def _run_transform_job(self, name: str, running: RunningJob) -> None:
        stop = running.stop_requested
        job = self.description(name)
        work_dir = self.config.data_dir / "transform-jobs" / name
        stream = f"{name}/{new_instance_id()}-{int(time.time())}"

        def log_line(line: str) -> None:
            self.logs.append(LOG_GROUP, stream, line)

        self.update(name, TransformStartTime=time.time())
        try:
            server = self._start_transform_server(job, work_dir, log_line, running)
            status, reason = self._transform_objects(job, server, stop, log_line)
        except (ModelArtifactError, ModelServerStartError, S3Error) as error:
            status, reason = "Failed", f"ClientError: {error}"
        except TransformJobStopped:
            status, reason = "Stopped", None
        except Exception as error:  # a job thread must always end its job, whatever went wrong
            log.exception("transform job %s failed unexpectedly", name)
            status, reason = "Failed", f"InternalServerError: {type(error).__name__}: {error}"
        finally:
            if running.work is not None:
                running.work.stop(grace_seconds=0)
                self.record_processes(name, [])
            shutil.rmtree(work_dir, ignore_errors=True)
            self.done(name)
        self.finish(name, status, **({"FailureReason": reason} if reason else {}))
        log_line(f"Transform job {name} ended: {status}" + (f" ({reason})" if reason else ""))

    def _start_transform_server(self, job, work_dir, log_line, running) -> ModelServerProcess:
        model = self.store.get(MODELS, job["ModelName"])
        if model is None:
            raise ModelArtifactError(f"The model {job['ModelName']} was deleted.")
        container = model.get("PrimaryContainer") or model["Containers"][0]
        model_dir, environment = prepare_model_dir(self.s3, container, work_dir)
        environment.update(job.get("Environment") or {})
        environment.update(batch_environment(job))
        client_config = job.get("ModelClientConfig") or {}
        server = ModelServerProcess(
            self.config.python_for_image(container.get("Image", "")),
            model_dir,
            environment,
            log_line,
            invocation_timeout_s=client_config.get(
                "InvocationsTimeoutInSeconds", DEFAULT_INVOCATION_TIMEOUT_S
            ),
            on_started=lambda identity: self.record_processes(job["TransformJobName"], [identity]),
        )
        running.work = _StoppableServer(server)
        server.wait_until_healthy()
        if running.stop_requested.is_set():
            raise TransformJobStopped()
        return server

    def _transform_objects(self, job, server, stop, log_line) -> tuple[str, str | None]:
        """Run the batch over the job's inputs; returns (final status, FailureReason)."""
        status, _, body = server.request("GET", "/execution-parameters")
        settings = resolve_settings(job, json.loads(body) if status == 200 else {})
        objects = self._transform_inputs(job)
        output_bucket, output_prefix = parse_s3_uri(job["TransformOutput"]["S3OutputPath"])
        output_prefix = output_prefix.rstrip("/") + "/" if output_prefix else ""
        input_bucket = parse_s3_uri(job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"])[0]
        log_line(f"Transforming {len(objects)} objects with {settings}")
        outcome = run_transform(
            objects,
            lambda key: self.s3.read(input_bucket, key),
            lambda key, data: self.s3.write(output_bucket, output_prefix + key, data),
            lambda payload, headers: server.request("POST", "/invocations", payload, headers),
            settings,
            stop,
            log_line,
        )
        log_line(f"{len(outcome.succeeded)} of {len(objects)} objects transformed")
        if outcome.stopped:
            return "Stopped", None
        if outcome.failures:
            return "Failed", failure_reason(outcome.failures, len(objects))
        return "Completed", None

    def _transform_inputs(self, job: dict) -> list[InputObject]:
        """The input objects and their output keys (relative to S3OutputPath)."""
        source = job["TransformInput"]["DataSource"]["S3DataSource"]
        bucket, prefix = parse_s3_uri(source["S3Uri"])
        if source["S3DataType"] == "ManifestFile":
            keys, prefix = self._manifest_keys(bucket, prefix)
        else:
            keys = [key for key in self.s3.list_keys(bucket, prefix) if not key.endswith("/")]
        if not keys:
            raise S3Error(f"{source['S3Uri']}: no input objects")
        return [InputObject(key, f"{relative_key(key, prefix)}.out") for key in keys]

    def _manifest_keys(self, bucket: str, manifest_key: str) -> tuple[list[str], str]:
        """A manifest ``[{"prefix": "s3://b/p/"}, "rel1", "rel2", ...]``: (keys, their prefix)."""
        entries = json.loads(self.s3.read(bucket, manifest_key))
        manifest_bucket, prefix = parse_s3_uri(entries[0]["prefix"])
        if manifest_bucket != bucket:
            raise S3Error(f"the manifest's prefix bucket {manifest_bucket} must be {bucket}")
        return [prefix + relative for relative in entries[1:]], prefix
