"""Every SageMaker call the pipeline makes, and the waiting, on top of the provider's hook.

What this adds to `SageMakerHook` (platform-notes "Amazon provider SageMaker operators"):
- `start_job` is idempotent per name: a job already running or completed under the requested name
  is attached to or reused (a retried or cleared task), a failed or stopped one gets a fresh
  `-a<N>` name; tuning jobs are covered too.
- `raise_unless_completed` judges an ended job: Stopped is a failure too (the waiting itself is
  `job_triggers.SageMakerJobTrigger`'s, in the triggerer).
- `ensure_model` and `ensure_endpoint_config` reuse an identical resource and replace a different
  one instead of failing with "Cannot create already existing ...".
- `start_endpoint_deployment` creates or updates the endpoint (or adopts a deployment of the same
  config in progress); `served_endpoint` then checks that the endpoint serves the config asked
  for, so an update that SageMaker rolled back (InService on the old config) fails the task.
  `deploy_endpoint` does both around botocore's `endpoint_in_service` waiter. `shift_traffic`
  moves traffic between the variants of one config (UpdateEndpointWeightsAndCapacities).
- `latest_completed_tuning_job` finds the tuning job a new one can warm-start from.
- `stop_running_jobs`, `delete_endpoint_created_by_run` and `delete_unused_deployment` clean up
  after a failed run; `retire_challenger` after the promotion decision.
- a job that failed on its script or input (AlgorithmError, ClientError) fails the task without
  a retry (`DeterministicJobError`).
- `profiler_report_uri` finds the HTML report of a training job's ProfilerReport rule.
- the Model Registry: `registered_version` finds the version a training job was registered as
  (a retried or cleared registration reuses it), `champion_version` the newest Approved one,
  `update_model_version` records scores and approval decisions, `model_version` finds a version
  by its number (a rollback's).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.sdk.exceptions import AirflowFailException
from botocore.exceptions import ClientError, WaiterError

from sagemaker_lifecycle.naming import MAX_NAME_LENGTH, MAX_TUNING_JOB_NAME_LENGTH, retry_name

RUNNING_STATUSES = frozenset({"InProgress", "Stopping"})
COMPLETED = "Completed"
# Error codes SageMaker answers Describe* with for a name it does not know.
NOT_FOUND_CODES = frozenset({"ValidationException", "ResourceNotFound"})
# FailureReason prefixes of a job that failed on its own input or code: running it again gives
# the same failure (and the same bill). Infrastructure failures carry other reasons.
DETERMINISTIC_FAILURES = ("AlgorithmError", "ClientError")
# Where SageMaker (and the rule processing jobs) put the ProfilerReport rule's HTML report, under
# <ProfilerConfig.S3OutputPath>/<job>/rule-output/; the rule's configured name may carry a suffix.
PROFILER_REPORT_KEY = re.compile(r"ProfilerReport[^/]*/profiler-output/profiler-report\.html$")


class SageMakerJobError(RuntimeError):
    """A SageMaker job or resource ended badly; the message carries SageMaker's reason."""


class DeterministicJobError(SageMakerJobError, AirflowFailException):
    """A job failed on its script or input (AlgorithmError, ClientError): the task fails without
    a retry, which would only run, and bill, the same failure again."""


def failed_deterministically(description: Mapping) -> bool:
    """Whether a Failed job's Describe* response says a rerun would fail the same way.

    Training, processing and transform jobs say it in FailureReason; a tuning job when its
    trials failed only with non-retryable errors (TrainingJobStatusCounters).
    """
    if str(description.get("FailureReason", "")).startswith(DETERMINISTIC_FAILURES):
        return True
    counters = description.get("TrainingJobStatusCounters", {})
    return counters.get("NonRetryableError", 0) > 0 and not counters.get("RetryableError", 0)


@dataclass(frozen=True)
class JobKind:
    """How to address one kind of SageMaker job through the API."""

    noun: str
    name_key: str
    status_key: str
    api_suffix: str  # create_<suffix>, describe_<suffix>, stop_<suffix>
    log_group: str | None = None
    max_name_length: int = MAX_NAME_LENGTH

    def operation(self, verb: str) -> str:
        """The client method that does `verb` (create, describe, stop, list) to this kind."""
        return f"list_{self.api_suffix}s" if verb == "list" else f"{verb}_{self.api_suffix}"


JOB_KINDS = {
    "training": JobKind(
        "training job", "TrainingJobName", "TrainingJobStatus", "training_job",
        log_group="/aws/sagemaker/TrainingJobs",
    ),
    "tuning": JobKind(
        "hyperparameter tuning job", "HyperParameterTuningJobName",
        "HyperParameterTuningJobStatus", "hyper_parameter_tuning_job",
        max_name_length=MAX_TUNING_JOB_NAME_LENGTH,
    ),
    "transform": JobKind(
        "transform job", "TransformJobName", "TransformJobStatus", "transform_job",
        log_group="/aws/sagemaker/TransformJobs",
    ),
    "processing": JobKind(
        "processing job", "ProcessingJobName", "ProcessingJobStatus", "processing_job",
        log_group="/aws/sagemaker/ProcessingJobs",
    ),
}  # fmt: skip


def _projection(items: list[Mapping], keys: tuple[str, ...]) -> list[dict]:
    return [{key: item.get(key) for key in keys} for item in items]


def _same_container(existing: Mapping, requested: Mapping) -> bool:
    # A model made from a model version is that version's container.
    by_version = "ModelPackageName" in requested["PrimaryContainer"]
    keys = ("ModelPackageName",) if by_version else ("Image", "ModelDataUrl", "Environment")
    return _projection([existing.get("PrimaryContainer", {})], keys) == _projection(
        [requested["PrimaryContainer"]], keys
    )


def _same_variants(existing: Mapping, requested: Mapping) -> bool:
    keys = ("VariantName", "ModelName", "InitialInstanceCount", "InstanceType")
    return _projection(existing["ProductionVariants"], keys) == _projection(
        requested["ProductionVariants"], keys
    )


@dataclass(frozen=True)
class ImmutableResource:
    """A SageMaker resource that cannot be updated in place, and when two are the same."""

    noun: str
    api_suffix: str  # create_<suffix>, describe_<suffix>, delete_<suffix>
    name_key: str
    same: Callable[[Mapping, Mapping], bool]  # (Describe* response, Create* request)

    def operation(self, verb: str) -> str:
        """The client method that does `verb` (create, describe, delete) to this resource."""
        return f"{verb}_{self.api_suffix}"


MODEL = ImmutableResource("model", "model", "ModelName", _same_container)
ENDPOINT_CONFIG = ImmutableResource(
    "endpoint config", "endpoint_config", "EndpointConfigName", _same_variants
)


def _config_being_deployed(endpoint: Mapping) -> str | None:
    """The config a Creating or Updating endpoint (a DescribeEndpoint response) moves to."""
    if endpoint["EndpointStatus"] == "Creating":
        return endpoint["EndpointConfigName"]
    return endpoint.get("PendingDeploymentSummary", {}).get("EndpointConfigName")


def is_not_found(error: ClientError) -> bool:
    return error.response["Error"]["Code"] in NOT_FOUND_CODES


def raise_unless_completed(kind_name: str, description: Mapping) -> None:
    """Raise SageMakerJobError (with SageMaker's FailureReason) unless the ended job whose
    Describe* response this is completed; DeterministicJobError when a rerun would fail alike."""
    kind = JOB_KINDS[kind_name]
    status = description[kind.status_key]
    if status == COMPLETED:
        return
    reason = description.get("FailureReason", "no reason given")
    message = f"{kind.noun} {description[kind.name_key]} ended {status}: {reason}"
    if status == "Failed" and failed_deterministically(description):
        raise DeterministicJobError(f"{message} (not retried: it would fail again)")
    raise SageMakerJobError(message)


class SageMakerLifecycleHook(SageMakerHook):
    """SageMakerHook with idempotent starts, strict waits, job stops and resource reuse."""

    # The only places that name a SageMaker operation at run time: every job kind gets every
    # verb passed to `_job_call` (and to `kind.operation` in job_triggers.py), every resource
    # every verb passed to `_resource_call` (tests/pipeline/test_iam_policy.py reads the verbs
    # from here to check the IAM policy).
    def _job_call(self, kind: JobKind, verb: str) -> Callable[..., dict]:
        return getattr(self.conn, kind.operation(verb))

    def _resource_call(self, resource: ImmutableResource, verb: str) -> Callable[..., dict]:
        return getattr(self.conn, resource.operation(verb))

    def describe_job(self, kind_name: str, name: str) -> dict | None:
        """The Describe* response of job `name`, or None when SageMaker does not know it."""
        kind = JOB_KINDS[kind_name]
        return self._describe_or_none(self._job_call(kind, "describe"), **{kind.name_key: name})

    def start_job(self, kind_name: str, request: Mapping[str, Any]) -> str:
        """Start the job `request` describes, or adopt the one already under its name.

        Returns the name of the job to follow: the requested one when it is new, running or
        completed; else (it failed or stopped earlier) the first free or adoptable `-a<N>` name.
        """
        kind = JOB_KINDS[kind_name]
        base = request[kind.name_key]
        for attempt in range(1, 100):
            name = base if attempt == 1 else retry_name(base, attempt, kind.max_name_length)
            existing = self.describe_job(kind_name, name)
            if existing is None:
                self.log.info("Creating %s %s", kind.noun, name)
                self._job_call(kind, "create")(**{**request, kind.name_key: name})
                return name
            status = existing[kind.status_key]
            if status in RUNNING_STATUSES or status == COMPLETED:
                self.log.info(
                    "Adopting %s %s, already %s (a retried task)", kind.noun, name, status
                )
                return name
            self.log.info("%s %s ended %s earlier; starting a new one", kind.noun, name, status)
        raise SageMakerJobError(f"no free name for {kind.noun} {base} after 99 attempts")

    def stop_job(self, kind_name: str, name: str) -> None:
        """Ask SageMaker to stop job `name`; a job already ended is left as it is."""
        kind = JOB_KINDS[kind_name]
        try:
            self._job_call(kind, "stop")(**{kind.name_key: name})
            self.log.info("Asked SageMaker to stop %s %s", kind.noun, name)
        except ClientError as error:
            self.log.info("%s %s was not stopped: %s", kind.noun, name, error)

    def stop_running_jobs(self, kind_name: str, name_contains: str) -> list[str]:
        """Stop every InProgress job of `kind_name` whose name contains `name_contains`; returns
        their names."""
        kind = JOB_KINDS[kind_name]
        summaries = kind.name_key.replace("Name", "Summaries")  # TrainingJobSummaries, ...
        pages = self.conn.get_paginator(kind.operation("list")).paginate(
            NameContains=name_contains, StatusEquals="InProgress"
        )
        running = [summary[kind.name_key] for page in pages for summary in page[summaries]]
        for name in running:
            self.stop_job(kind_name, name)
        return running

    def _describe_or_none(self, describe: Callable[..., dict], **name) -> dict | None:
        """`describe`'s response (a Describe* call), or None when SageMaker does not know it."""
        try:
            return describe(**name)
        except ClientError as error:
            if is_not_found(error):
                return None
            raise

    def _endpoint_or_none(self, name: str) -> dict | None:
        """DescribeEndpoint of `name`, or None when there is no such endpoint."""
        return self._describe_or_none(self.conn.describe_endpoint, EndpointName=name)

    def _ensure(self, resource: ImmutableResource, request: Mapping[str, Any]) -> dict:
        """Describe* of `request`'s resource: created now, reused when identical, else replaced.

        Models and endpoint configs cannot be changed in place, so one under the same name that
        differs (say, a model of a retrained job's artifact) is deleted and created again.
        """
        name = {resource.name_key: request[resource.name_key]}
        existing = self._describe_or_none(self._resource_call(resource, "describe"), **name)
        if existing is not None:
            if resource.same(existing, request):
                self.log.info("Reusing %s %s", resource.noun, *name.values())
                return existing
            self.log.info(
                "%s %s differs from the request; replacing it", resource.noun, *name.values()
            )
            self._resource_call(resource, "delete")(**name)
        self._resource_call(resource, "create")(**request)
        return self._resource_call(resource, "describe")(**name)

    def ensure_model(self, request: Mapping[str, Any]) -> dict:
        """DescribeModel of the CreateModel `request`'s model (see `_ensure`)."""
        return self._ensure(MODEL, request)

    def ensure_endpoint_config(self, request: Mapping[str, Any]) -> dict:
        """DescribeEndpointConfig of the CreateEndpointConfig `request`'s config (see `_ensure`)."""
        return self._ensure(ENDPOINT_CONFIG, request)

    def endpoint_config_of(self, endpoint_name: str) -> str | None:
        """The config the endpoint serves now, or None when there is no such endpoint."""
        endpoint = self._endpoint_or_none(endpoint_name)
        return endpoint["EndpointConfigName"] if endpoint else None

    def serving_config(self, endpoint_name: str) -> dict | None:
        """DescribeEndpointConfig of the config the endpoint serves, or None without endpoint."""
        name = self.endpoint_config_of(endpoint_name)
        return name and self._resource_call(ENDPOINT_CONFIG, "describe")(EndpointConfigName=name)

    def shift_traffic(self, request: Mapping[str, Any]) -> bool:
        """Send the UpdateEndpointWeightsAndCapacities `request`. Returns False when there is
        nothing to wait for: the variants have those weights InService already, or the endpoint
        no longer has them all (it moved on to another config: a retried task). A weight change
        under way (Updating) is waited for, not sent again."""
        name = request["EndpointName"]
        endpoint = self.conn.describe_endpoint(EndpointName=name)
        current = {v["VariantName"]: v.get("CurrentWeight") for v in
                   endpoint.get("ProductionVariants", [])}  # fmt: skip
        desired = {c["VariantName"]: c["DesiredWeight"] for c in
                   request["DesiredWeightsAndCapacities"]}  # fmt: skip
        if not desired.keys() <= current.keys():
            self.log.info("Endpoint %s has moved on from variants %s", name, sorted(desired))
            return False
        if endpoint["EndpointStatus"] != "InService":
            self.log.info("Endpoint %s is %s; waiting for it", name, endpoint["EndpointStatus"])
            return True
        if all(current[variant] == weight for variant, weight in desired.items()):
            self.log.info("Endpoint %s already routes by weights %s", name, desired)
            return False
        self.log.info("Endpoint %s: variant weights %s", name, desired)
        self.conn.update_endpoint_weights_and_capacities(**request)
        return True

    def start_endpoint_deployment(self, request: Mapping[str, Any]) -> bool:
        """Create the endpoint, or update it, to serve `request`'s config (a CreateEndpoint /
        UpdateEndpoint request). Returns False when it already serves that config InService
        (nothing to wait for). A creation or update to that config already under way (a retried
        task) is adopted."""
        name, config = request["EndpointName"], request["EndpointConfigName"]
        current = self._endpoint_or_none(name)
        if current is None:
            self.log.info("Creating endpoint %s with config %s", name, config)
            self.conn.create_endpoint(**request)
            return True
        status = current["EndpointStatus"]
        if status == "InService" and current["EndpointConfigName"] == config:
            self.log.info("Endpoint %s already serves %s", name, config)
            return False
        if config == _config_being_deployed(current):
            self.log.info("Endpoint %s is already %s to %s; waiting for it", name, status, config)
            return True
        self.log.info("Updating endpoint %s to config %s", name, config)
        self.conn.update_endpoint(**request)
        return True

    def served_endpoint(self, name: str, config: str) -> dict:
        """DescribeEndpoint of endpoint `name`, checked to be InService on `config`.

        Raises SageMakerJobError otherwise, with SageMaker's FailureReason; when SageMaker
        rolled an update back (a rollback alarm, or new instances that never became healthy)
        the endpoint is InService on its previous config, and the message names both configs.
        """
        description = self.conn.describe_endpoint(EndpointName=name)
        status, served = description["EndpointStatus"], description["EndpointConfigName"]
        reason = description.get("FailureReason", "no reason given")
        if status != "InService":
            raise SageMakerJobError(f"endpoint {name} is {status}: {reason}")
        if served != config:
            raise SageMakerJobError(
                f"endpoint {name} is InService on config {served}, not on {config} that this "
                f"deployment asked for: SageMaker rolled the update back ({reason})"
            )
        return description

    def deploy_endpoint(self, request: Mapping[str, Any], interval: float, timeout: float) -> dict:
        """DescribeEndpoint once the endpoint serves `request`'s config (created or updated),
        waiting in this process (the smoke test's rollback; the deploy task defers instead)."""
        name, config = request["EndpointName"], request["EndpointConfigName"]
        if self.start_endpoint_deployment(request):
            delay = interval or 1.0
            attempts = math.ceil(timeout / delay) if math.isfinite(timeout) else 10**9
            try:
                self.conn.get_waiter("endpoint_in_service").wait(
                    EndpointName=name, WaiterConfig={"Delay": delay, "MaxAttempts": attempts}
                )
            except WaiterError as error:
                if "Max attempts exceeded" in str(error):
                    raise SageMakerJobError(
                        f"endpoint {name} not InService after {timeout:.0f} s"
                    ) from error
                # A terminal state (Failed): served_endpoint names it with SageMaker's reason.
        return self.served_endpoint(name, config)

    def latest_completed_tuning_job(
        self, name_prefix: str, exclude: str, matching: Callable[[dict], bool] = lambda _: True
    ) -> dict | None:
        """DescribeHyperParameterTuningJob of the newest Completed tuning job named
        `name_prefix`... for which `matching(description)` holds, leaving out the jobs whose
        names start with `exclude` (a run's, with its candidates' and their `-a<N>` retries);
        None when there is none."""
        pages = self.conn.get_paginator("list_hyper_parameter_tuning_jobs").paginate(
            NameContains=name_prefix, StatusEquals=COMPLETED,
            SortBy="CreationTime", SortOrder="Descending",
        )  # fmt: skip
        for page in pages:
            for summary in page["HyperParameterTuningJobSummaries"]:
                name = summary["HyperParameterTuningJobName"]
                if name.startswith(name_prefix) and not name.startswith(exclude):
                    description = self.describe_job("tuning", name)
                    if matching(description):
                        return description
        return None

    def profiler_report_uri(self, training_job_name: str) -> str | None:
        """The s3:// URI of the job's profiler-report.html, or None while there is none."""
        description = self.describe_job("training", training_job_name) or {}
        output_path = description.get("ProfilerConfig", {}).get("S3OutputPath")
        if not output_path:
            return None
        bucket, _, prefix = output_path.removeprefix("s3://").partition("/")
        rule_output = f"{prefix.strip('/')}/{training_job_name}/rule-output/".lstrip("/")
        keys = self.s3_hook.list_keys(bucket_name=bucket, prefix=rule_output) or []
        reports = sorted(key for key in keys if PROFILER_REPORT_KEY.search(key))
        return f"s3://{bucket}/{reports[0]}" if reports else None

    def delete_endpoint_created_by_run(
        self, endpoint_name: str, config_name: str, unless_status: str | None = None
    ) -> bool:
        """Delete the endpoint when the run whose endpoint config is `config_name` created it,
        unless it is in status `unless_status`; one that served before the run is kept.
        Returns whether it was deleted.

        The run creates its config before it creates or updates the endpoint, so the endpoint
        is the run's own exactly when SageMaker created it after that config (both times are
        SageMaker's: no clock of ours is compared).
        """
        endpoint = self._endpoint_or_none(endpoint_name)
        config = self._describe_or_none(
            self._resource_call(ENDPOINT_CONFIG, "describe"), EndpointConfigName=config_name
        )
        if endpoint is None or config is None or endpoint["CreationTime"] < config["CreationTime"]:
            return False
        if endpoint["EndpointStatus"] == unless_status:
            return False
        self.conn.delete_endpoint(EndpointName=endpoint_name)
        self.log.info("Deleted endpoint %s, created by this run (after %s)", endpoint_name,
                      config_name)  # fmt: skip
        return True

    def _configs_serving(self, endpoint_name: str) -> set[str]:
        """The configs the endpoint serves or is being updated to (empty without an endpoint,
        or while it is being deleted)."""
        endpoint = self._endpoint_or_none(endpoint_name) or {}
        if endpoint.get("EndpointStatus") == "Deleting":
            return set()
        pending = endpoint.get("PendingDeploymentSummary", {}).get("EndpointConfigName")
        return {name for name in (endpoint.get("EndpointConfigName"), pending) if name}

    def delete_unused_deployment(
        self, endpoint_name: str, config_name: str, model_name: str
    ) -> list[str]:
        """Delete the endpoint config `config_name` and the model `model_name` unless the
        endpoint `endpoint_name` serves (or is moving to) them; returns what was deleted."""
        serving = self._configs_serving(endpoint_name)
        models_in_use = {
            variant["ModelName"]
            for config in serving
            for variant in self.conn.describe_endpoint_config(EndpointConfigName=config)[
                "ProductionVariants"
            ]
        }
        return [
            f"{resource.noun} {name}"
            for resource, name, in_use in ((ENDPOINT_CONFIG, config_name, serving),
                                           (MODEL, model_name, models_in_use))
            if name not in in_use and self.delete_if_present(resource, name)
        ]  # fmt: skip

    def delete_if_present(self, resource: ImmutableResource, name: str) -> bool:
        """Delete the model or endpoint config `name`; False when there is none."""
        key = {resource.name_key: name}
        if not self._describe_or_none(self._resource_call(resource, "describe"), **key):
            return False
        self._resource_call(resource, "delete")(**key)
        self.log.info("Deleted %s %s", resource.noun, name)
        return True

    def delete_endpoint_if_present(self, endpoint_name: str) -> bool:
        """Delete the endpoint; False when there is none (or it is being deleted already)."""
        endpoint = self._endpoint_or_none(endpoint_name)
        if endpoint is None or endpoint["EndpointStatus"] == "Deleting":
            return False
        self.conn.delete_endpoint(EndpointName=endpoint_name)
        self.log.info("Deleted endpoint %s", endpoint_name)
        return True

    def retire_challenger(self, retired: Mapping[str, Any]) -> list[str]:
        """Take down what tried a decided challenger (`request_builders.promotion_actions`'s
        `retired`): its trial endpoint, if it had one, then its endpoint config and model unless
        the endpoint users call serves them. Returns what was deleted."""
        trial = retired["TrialEndpointName"]
        deleted = [f"trial endpoint {trial}"] if trial and self.delete_endpoint_if_present(
            trial) else []  # fmt: skip
        return deleted + self.delete_unused_deployment(
            retired["EndpointName"], retired["EndpointConfigName"], retired["ModelName"]
        )

    def _model_versions(self, group: str, **filters) -> Iterator[dict]:
        """DescribeModelPackage of the group's versions, newest first."""
        pages = self.conn.get_paginator("list_model_packages").paginate(
            ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending", **filters
        )
        for page in pages:
            for summary in page["ModelPackageSummaryList"]:
                yield self.conn.describe_model_package(ModelPackageName=summary["ModelPackageArn"])

    def registered_version(self, group: str, training_job: str) -> dict | None:
        """The version of `group` whose metadata names `training_job`, or None (also when the
        group does not exist yet). Newest first: a retry finds its earlier try's at once."""
        try:
            for version in self._model_versions(group):
                metadata = version.get("CustomerMetadataProperties", {})
                if metadata.get("training_job") == training_job:
                    return version
        except ClientError as error:
            if not is_not_found(error):
                raise
        return None

    def model_version(self, group: str, number: int) -> dict | None:
        """DescribeModelPackage of version `number` of `group`, or None when there is none."""
        return next((v for v in self._model_versions(group)
                     if v["ModelPackageVersion"] == number), None)  # fmt: skip

    def champion_version(self, group: str, exclude_arn: str) -> dict | None:
        """The newest Approved version of `group` other than `exclude_arn`, or None."""
        for version in self._model_versions(group, ModelApprovalStatus="Approved"):
            if version["ModelPackageArn"] != exclude_arn:
                return version
        return None

    def update_model_version(self, arn: str, metadata: Mapping[str, str] | None = None,
                             status: str | None = None, reason: str = "") -> None:  # fmt: skip
        """Merge `metadata` into the version's CustomerMetadataProperties and, given `status`,
        set its ModelApprovalStatus with `reason` as the ApprovalDescription."""
        request: dict[str, Any] = {"ModelPackageArn": arn}
        if metadata:
            request["CustomerMetadataProperties"] = dict(metadata)
        if status:
            request.update(ModelApprovalStatus=status, ApprovalDescription=reason[:1024])
        self.conn.update_model_package(**request)

    def delete_endpoint_and_config(self, endpoint_name: str) -> None:
        """Delete the endpoint and the config it serves (absent ones are skipped)."""
        endpoint = self._endpoint_or_none(endpoint_name)
        if endpoint is None:
            return
        self.conn.delete_endpoint(EndpointName=endpoint_name)
        self.conn.delete_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
