"""Models, endpoint configs and endpoints: the SageMaker hosting API over real model servers.

Records (``store`` kinds ``models``, ``endpoint-configs``, ``endpoints``) hold what Describe
returns. Endpoints run one model server per production variant (``local_sagemaker.hosting``);
``endpoint-processes`` records each deployment's server process groups as soon as they are
spawned, so that neither a shutdown during a deployment nor a ``kill -9`` of the runtime leaves
an orphan (the next start kills what is recorded).

Status machine: CreateEndpoint -> ``Creating`` -> ``InService`` once every variant answers /ping,
or ``Failed`` with the reason (e.g. model_fn's error). UpdateEndpoint -> ``Updating``: the new
config's servers start beside the old ones, traffic shifts to them as the DeploymentConfig asks
(``local_sagemaker.hosting.deployment``; without one, all at once), the old servers drain and
stop; if the new ones fail to start, the endpoint stays ``InService`` on the old config with a
FailureReason. When a rollback alarm fires during baking: ``RollingBack`` while the new servers
drain, then ``InService`` on the old config, with the alarm in FailureReason. After a runtime
restart, endpoints that were serving are launched again
(``Creating`` -> ``InService``), because the record says they should be serving.

Each variant runs InitialInstanceCount model servers (instances, each with its log stream
``<variant>/<instance id>``); requests pick an instance at random. Serverless variants run one.
Multi-container (inference pipeline) models are refused. A model with ``Mode: MultiModel`` starts
no server up front: each instance loads the models under its ``ModelDataUrl`` prefix on demand
(``local_sagemaker.hosting.multi_model``).

UpdateEndpointWeightsAndCapacities -> ``Updating`` -> the live variants route by the new
CurrentWeights -> ``InService``; the weights are kept in the record, so a restart relaunches the
endpoint with them. Instance counts cannot be changed this way here (the message says how).
"""

from __future__ import annotations

import logging
import secrets
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from werkzeug import Request, Response

from local_sagemaker.errors import ValidationException
from local_sagemaker.executor.processes import kill_leftover_group
from local_sagemaker.hosting.artifacts import ModelArtifactError, prepare_model_dir
from local_sagemaker.hosting.deployment import (
    ALL_AT_ONCE_NO_BAKING,
    TrafficPlan,
    shift_traffic,
    traffic_plan,
)
from local_sagemaker.hosting.fleet import (
    Deployment,
    EndpointFleet,
    RunningVariant,
    VariantSpec,
    launch_deployment,
)
from local_sagemaker.hosting.invoke import answer_invocation, endpoint_log_group
from local_sagemaker.hosting.multi_model import (
    ModelCache,
    variant_metric_points,
    variant_status,
)
from local_sagemaker.hosting.process import (
    STARTUP_TIMEOUT_S,
    ModelServerProcess,
    ModelServerStartError,
)
from local_sagemaker.s3 import S3Error, parse_s3_uri
from local_sagemaker.sagemaker.resources import list_response, new_instance_id, truncate_reason

log = logging.getLogger(__name__)

MODELS, CONFIGS, ENDPOINTS = "models", "endpoint-configs", "endpoints"
ENDPOINT_PROCESSES = "endpoint-processes"
SERVING_STATUSES = ("Creating", "Updating", "InService", "SystemUpdating", "RollingBack")


@dataclass(frozen=True)
class HostedResource:
    """How a record kind is stored and named in SageMaker's messages."""

    kind: str
    arn_type: str
    label: str
    arn_key: str


MODEL = HostedResource(MODELS, "model", "model", "ModelArn")
ENDPOINT_CONFIG = HostedResource(
    CONFIGS, "endpoint-config", "endpoint configuration", "EndpointConfigArn"
)
ENDPOINT = HostedResource(ENDPOINTS, "endpoint", "endpoint", "EndpointArn")


def _startup_timeout(variants: list[dict]) -> float:
    timeouts = [v.get("ContainerStartupHealthCheckTimeoutInSeconds") for v in variants]
    return min((t for t in timeouts if t), default=STARTUP_TIMEOUT_S)


def _initial_weight(variant: dict) -> float:
    return variant.get("InitialVariantWeight", 1.0)


def _check_desired_variants(desired: list[dict], summaries: dict, config_name: str) -> None:
    """SageMaker's refusals of an UpdateEndpointWeightsAndCapacities request (moto's texts)."""
    names = [change["VariantName"] for change in desired]
    for name in names:
        if names.count(name) > 1:
            raise ValidationException(
                f'The variant name "{name}" was non-unique within the request.'
            )
    missing = [name for name in names if name not in summaries]
    if missing:
        raise ValidationException(
            f'The variant name(s) "{", ".join(missing)}" is/are not present within endpoint '
            f'configuration "{config_name}".'
        )
    for change in desired:
        name = change["VariantName"]
        if "DesiredWeight" not in change and "DesiredInstanceCount" not in change:
            raise ValidationException(
                f"Variant {name}: give DesiredWeight, DesiredInstanceCount or both."
            )
        count = change.get("DesiredInstanceCount", summaries[name]["CurrentInstanceCount"])
        if count != summaries[name]["CurrentInstanceCount"] or "ServerlessUpdateConfig" in change:
            raise ValidationException(
                f"Variant {name}: the local SageMaker runtime changes variant weights only; to "
                "change its instance count, UpdateEndpoint to a config with that "
                "InitialInstanceCount."
            )


class Hosting:
    """CreateModel ... DeleteEndpoint, plus InvokeEndpoint for the runtime's HTTP server."""

    # -- life cycle ----------------------------------------------------------------------------

    def __init__(self, services, model_packages):
        self.config = services.config
        self.model_packages = model_packages  # CreateModel from a ModelPackageName
        self.store = services.store
        self.s3 = services.s3
        self.logs = services.logs
        self.endpoint_fleet = EndpointFleet()
        self._hosting_lock = threading.RLock()
        # Endpoint name -> id of the deployment being launched for it (at most one at a time).
        self._endpoint_deploying: dict[str, str] = {}

    def recover(self) -> None:
        """At start-up: kill model servers an earlier runtime left, relaunch serving endpoints."""
        self._kill_recorded_model_servers()
        for endpoint in self.store.list(ENDPOINTS):
            if endpoint["EndpointStatus"] in SERVING_STATUSES:
                name = endpoint["EndpointName"]
                log.info("endpoint %s was serving when the runtime stopped: relaunching", name)
                self.store.update(ENDPOINTS, name, {"EndpointStatus": "Creating"})
                weights = {
                    summary["VariantName"]: summary["CurrentWeight"]
                    for summary in endpoint.get("ProductionVariants", [])
                }  # as UpdateEndpointWeightsAndCapacities left them, not the config's initial ones
                with self._hosting_lock:
                    self._start_endpoint_deployment(
                        name, endpoint["EndpointConfigName"], weights=weights
                    )

    def shutdown(self) -> None:
        self.endpoint_fleet.stop_all()
        # Deployments still being launched are not in the fleet yet: their servers are recorded.
        self._kill_recorded_model_servers()

    def _kill_recorded_model_servers(self) -> None:
        """Kill every model server process group recorded in ``endpoint-processes``."""
        for record in self.store.list(ENDPOINT_PROCESSES):
            for identity in record["Processes"]:
                if kill_leftover_group(identity):
                    log.info(
                        "killed model server %s of %s", identity["pid"], record["EndpointName"]
                    )
            self.store.delete(ENDPOINT_PROCESSES, record["DeploymentId"])

    # -- records shared by models, endpoint configs and endpoints ------------------------------

    def _require(self, resource: HostedResource, name: str) -> dict:
        record = self.store.get(resource.kind, name)
        if record is None:
            arn = self.config.arn(resource.arn_type, name)
            raise ValidationException(f'Could not find {resource.label} "{arn}".')
        return record

    def _create_record(self, resource: HostedResource, name: str, fields: dict) -> dict:
        """Store a new record (``fields`` less Tags, plus its ARN and CreationTime) and return
        the Create response; a duplicate name is SageMaker's "Cannot create already existing"."""
        arn = self.config.arn(resource.arn_type, name)
        with self._hosting_lock:
            if self.store.get(resource.kind, name) is not None:
                raise ValidationException(
                    f'Cannot create already existing {resource.label} "{arn}".'
                )
            record = {k: v for k, v in fields.items() if k != "Tags"}
            record.update({resource.arn_key: arn, "CreationTime": time.time()})
            self.store.put(resource.kind, name, record)
        return {resource.arn_key: arn}

    def _delete_record(self, resource: HostedResource, name: str) -> dict:
        self._require(resource, name)
        self.store.delete(resource.kind, name)
        return {}

    # -- models --------------------------------------------------------------------------------

    def require_model(self, name: str) -> dict:
        """The model's record; ValidationException naming it when there is none."""
        return self._require(MODEL, name)

    def create_model(self, request: dict) -> dict:
        containers = request.get("Containers") or []
        if "PrimaryContainer" not in request and len(containers) != 1:
            raise ValidationException(
                "The local SageMaker runtime serves single-container models: give "
                "PrimaryContainer (or exactly one entry in Containers)."
            )
        container = request.get("PrimaryContainer") or containers[0]
        if container.get("ModelPackageName"):
            container = self.model_packages.container_for_model(container)
            if "PrimaryContainer" in request:
                request = {**request, "PrimaryContainer": container}
            else:
                request = {**request, "Containers": [container]}
        self._check_model_data_exists(container)
        return self._create_record(MODEL, request["ModelName"], request)

    def _check_model_data_exists(self, container: dict) -> None:
        """A single model's archive must exist; a multi-model prefix may still be empty (models
        are added under it while the endpoint serves)."""
        url = container.get("ModelDataUrl")
        if not url and container.get("Mode") == "MultiModel":
            raise ValidationException(
                "A container with Mode MultiModel needs ModelDataUrl: the S3 prefix its "
                "models (.tar.gz objects named by TargetModel) are under."
            )
        if not url:
            return
        try:
            bucket, key = parse_s3_uri(url)
        except S3Error as error:
            raise ValidationException(str(error)) from None
        if container.get("Mode") == "MultiModel":
            return
        if not self.s3.exists(bucket, key):
            raise ValidationException(f"Could not find model data at {url}.")

    def describe_model(self, request: dict) -> dict:
        return self._require(MODEL, request["ModelName"])

    def delete_model(self, request: dict) -> dict:
        return self._delete_record(MODEL, request["ModelName"])

    def list_models(self, request: dict) -> dict:
        keys = ("ModelName", "ModelArn", "CreationTime")
        return list_response(self.store.list(MODELS), request, "ListModels", keys)

    # -- endpoint configs ----------------------------------------------------------------------

    def create_endpoint_config(self, request: dict) -> dict:
        for variant in request["ProductionVariants"]:
            self._require(MODEL, variant["ModelName"])
        return self._create_record(ENDPOINT_CONFIG, request["EndpointConfigName"], request)

    def describe_endpoint_config(self, request: dict) -> dict:
        return self._require(ENDPOINT_CONFIG, request["EndpointConfigName"])

    def delete_endpoint_config(self, request: dict) -> dict:
        return self._delete_record(ENDPOINT_CONFIG, request["EndpointConfigName"])

    def list_endpoint_configs(self, request: dict) -> dict:
        keys = ("EndpointConfigName", "EndpointConfigArn", "CreationTime")
        return list_response(self.store.list(CONFIGS), request, "ListEndpointConfigs", keys)

    # -- endpoints -----------------------------------------------------------------------------

    def _require_deployable_config(self, config_name: str) -> None:
        for variant in self._require(ENDPOINT_CONFIG, config_name)["ProductionVariants"]:
            self._require(MODEL, variant["ModelName"])

    def create_endpoint(self, request: dict) -> dict:
        name, config_name = request["EndpointName"], request["EndpointConfigName"]
        self._require_deployable_config(config_name)
        fields = {
            "EndpointName": name,
            "EndpointConfigName": config_name,
            "EndpointStatus": "Creating",
            "LastModifiedTime": time.time(),
        }
        if request.get("DeploymentConfig"):
            fields["LastDeploymentConfig"] = request["DeploymentConfig"]
        with self._hosting_lock:
            response = self._create_record(ENDPOINT, name, fields)
            self._start_endpoint_deployment(name, config_name)
        return response

    def describe_endpoint(self, request: dict) -> dict:
        """The record; a multi-model variant's summary also carries ``MultiModelStatus`` (loaded
        models and load counts). That member is the runtime's own: botocore's parser keeps only
        the members of AWS's shape, so boto3 callers read the same figures from CloudWatch
        (:meth:`endpoint_metric_points`)."""
        endpoint = self._require(ENDPOINT, request["EndpointName"])
        for summary in endpoint.get("ProductionVariants", []):
            variant = self._live_variant(endpoint["EndpointName"], summary["VariantName"])
            if variant is not None and variant.multi_model:
                summary["MultiModelStatus"] = variant_status(variant.caches)
        return endpoint

    def _live_variant(self, endpoint_name: str, variant_name: str) -> RunningVariant | None:
        deployment = self.endpoint_fleet.current(endpoint_name)
        variants = deployment.variants if deployment is not None else []
        return next((v for v in variants if v.name == variant_name), None)

    def endpoint_metric_points(self, endpoint_name: str, variant_name: str) -> dict[str, list]:
        """The multi-model metrics SageMaker publishes in ``AWS/SageMaker`` for one variant
        (LoadedModelCount, ModelCacheHit, ModelLoadingTime, ModelDownloadingTime,
        ModelUnloadingTime): metric name -> [{"Timestamp", "Value"}]; none for other variants."""
        variant = self._live_variant(endpoint_name, variant_name)
        if variant is None or not variant.multi_model:
            return {}
        return variant_metric_points(variant.caches)

    def update_endpoint(self, request: dict) -> dict:
        name, config_name = request["EndpointName"], request["EndpointConfigName"]
        arn = self.config.arn("endpoint", name)
        self._require_deployable_config(config_name)
        with self._hosting_lock:
            endpoint = self._require(ENDPOINT, name)
            status = endpoint["EndpointStatus"]
            if status == "Failed":
                raise ValidationException(
                    f'Cannot update failed endpoint "{arn}": delete it and create it again.'
                )
            if status != "InService":
                raise ValidationException(f'Cannot update in-progress endpoint "{arn}".')
            deployment_config = request.get("DeploymentConfig") or (
                endpoint.get("LastDeploymentConfig") if request.get("RetainDeploymentConfig")
                else None
            )  # fmt: skip
            plan = traffic_plan(deployment_config, self._instance_count(config_name))
            now = time.time()
            changes = {
                "EndpointStatus": "Updating",
                "LastModifiedTime": now,
                "PendingDeploymentSummary": {"EndpointConfigName": config_name, "StartTime": now},
            }
            if deployment_config:
                changes["LastDeploymentConfig"] = deployment_config
            self.store.update(ENDPOINTS, name, changes)
            self._start_endpoint_deployment(name, config_name, plan)
        return {"EndpointArn": arn}

    def update_endpoint_weights_and_capacities(self, request: dict) -> dict:
        """Desired weights -> ``Updating`` -> applied to the live variants -> ``InService``."""
        name = request["EndpointName"]
        arn = self.config.arn("endpoint", name)
        desired = request["DesiredWeightsAndCapacities"]
        with self._hosting_lock:
            endpoint = self._require(ENDPOINT, name)
            if endpoint["EndpointStatus"] != "InService":
                raise ValidationException(f'Cannot update in-progress endpoint "{arn}".')
            summaries = {s["VariantName"]: s for s in endpoint["ProductionVariants"]}
            _check_desired_variants(desired, summaries, endpoint["EndpointConfigName"])
            weights = {}
            for change in desired:
                if "DesiredWeight" in change:
                    weights[change["VariantName"]] = change["DesiredWeight"]
                    summaries[change["VariantName"]]["DesiredWeight"] = change["DesiredWeight"]
            endpoint.update(EndpointStatus="Updating", LastModifiedTime=time.time())
            self.store.put(ENDPOINTS, name, endpoint)
        threading.Thread(
            target=self._apply_weights, args=(name, weights), name=f"weights-{name}", daemon=True
        ).start()
        return {"EndpointArn": arn}

    def _apply_weights(self, name: str, weights: dict[str, float]) -> None:
        with self._hosting_lock:
            endpoint = self.store.get(ENDPOINTS, name)
            deployment = self.endpoint_fleet.current(name)
            if endpoint is None or deployment is None:  # deleted meanwhile
                return
            deployment.set_weights(weights)
            for summary in endpoint["ProductionVariants"]:
                summary["CurrentWeight"] = summary["DesiredWeight"]
            endpoint.update(EndpointStatus="InService", LastModifiedTime=time.time())
            self.store.put(ENDPOINTS, name, endpoint)
        log.info("endpoint %s serves with weights %s", name, weights)

    def _instance_count(self, config_name: str) -> int:
        variants = self._require(ENDPOINT_CONFIG, config_name)["ProductionVariants"]
        return sum(variant.get("InitialInstanceCount", 1) for variant in variants)

    def delete_endpoint(self, request: dict) -> dict:
        name = request["EndpointName"]
        with self._hosting_lock:
            self._delete_record(ENDPOINT, name)
            self._endpoint_deploying.pop(name, None)
            deployment = self.endpoint_fleet.remove(name)
        if deployment is not None:
            # Let in-flight requests finish off the caller's thread; the record is already gone.
            threading.Thread(target=self._retire, args=(deployment,), daemon=True).start()
        return {}

    def list_endpoints(self, request: dict) -> dict:
        keys = ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus")
        return list_response(
            self.store.list(ENDPOINTS), request, "ListEndpoints", keys, status_key="EndpointStatus"
        )

    def invoke_endpoint(self, endpoint_name: str, request: Request) -> Response:
        """SageMaker Runtime's InvokeEndpoint (routed here by the runtime's HTTP server)."""
        status, headers, body = answer_invocation(
            self.endpoint_fleet,
            endpoint_name,
            request.get_data(),
            dict(request.headers),
            self.config.region,
            self.config.account,
        )
        return Response(body, status=status, headers=headers)

    # -- deployments (background) --------------------------------------------------------------

    def _start_endpoint_deployment(
        self,
        name: str,
        config_name: str,
        plan: TrafficPlan = ALL_AT_ONCE_NO_BAKING,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        """Launch ``config_name`` for endpoint ``name`` in the background (lock held); an update
        moves traffic to it along ``plan``. ``weights`` (variant -> weight) override the config's
        InitialVariantWeights."""
        deployment_id = secrets.token_hex(4)
        self._endpoint_deploying[name] = deployment_id
        threading.Thread(
            target=self._deploy_endpoint,
            args=(name, config_name, deployment_id, plan, weights or {}),
            name=f"deploy-{name}",
            daemon=True,
        ).start()

    def _deploy_endpoint(
        self,
        name: str,
        config_name: str,
        deployment_id: str,
        plan: TrafficPlan,
        weights: Mapping[str, float],
    ) -> None:
        work_dir = self.config.data_dir / "endpoints" / name / deployment_id
        try:
            deployment, summaries = self._launch_endpoint_config(
                name, config_name, deployment_id, work_dir, weights
            )
        except (ModelServerStartError, ModelArtifactError, ValidationException) as error:
            shutil.rmtree(work_dir, ignore_errors=True)
            self.store.delete(ENDPOINT_PROCESSES, deployment_id)
            self._record_deployment_failure(name, deployment_id, str(error))
            return
        if self.endpoint_fleet.current(name) is not None and not self._shift_to(
            name, config_name, deployment_id, deployment, plan, summaries
        ):
            return
        with self._hosting_lock:
            if self._endpoint_deploying.get(name) != deployment_id:  # deleted meanwhile
                self._retire(deployment)
                return
            del self._endpoint_deploying[name]
            previous = self.endpoint_fleet.install(name, deployment)
            record = self.store.get(ENDPOINTS, name)
            record.pop("FailureReason", None)
            record.pop("PendingDeploymentSummary", None)
            record.update(
                EndpointStatus="InService",
                EndpointConfigName=config_name,
                ProductionVariants=summaries,
                LastModifiedTime=time.time(),
            )
            self.store.put(ENDPOINTS, name, record)
        if previous is not None:
            self._retire(previous)
        log.info("endpoint %s is InService with %s", name, config_name)

    def _shift_to(
        self,
        name: str,
        config_name: str,
        deployment_id: str,
        green: Deployment,
        plan: TrafficPlan,
        summaries: list[dict],
    ) -> bool:
        """An update's traffic shifts, baking and termination wait (PendingDeploymentSummary,
        set by UpdateEndpoint, gains the new variants meanwhile). True when the new deployment
        is to be installed; else it was rolled back (or the endpoint deleted) and is stopped."""
        with self._hosting_lock:
            record = self.store.get(ENDPOINTS, name)
            if record is not None:  # else deleted meanwhile: still_wanted() is False
                record["PendingDeploymentSummary"]["ProductionVariants"] = summaries
                self.store.put(ENDPOINTS, name, record)

        def still_wanted() -> bool:
            return self._endpoint_deploying.get(name) == deployment_id

        alarm = shift_traffic(self.endpoint_fleet, name, green, plan, still_wanted)
        if alarm is None and still_wanted():
            time.sleep(plan.termination_wait_seconds)  # the old fleet stands by, unused
            return True
        if alarm is not None:
            with self._hosting_lock:
                if still_wanted():
                    self.store.update(ENDPOINTS, name, {"EndpointStatus": "RollingBack"})
        self._retire(green)
        if alarm is not None:
            self._record_deployment_failure(name, deployment_id, alarm)
        return False

    def _launch_endpoint_config(
        self, name: str, config_name: str, deployment_id: str, work_dir, weights
    ) -> tuple[Deployment, list[dict]]:
        """Fetch each variant's model and start its server (a multi-model variant's servers
        start on demand); returns the deployment and its ProductionVariants summaries. Raises on
        any failure (nothing is left running)."""
        variants = self._require(ENDPOINT_CONFIG, config_name)["ProductionVariants"]
        weights = {
            v["VariantName"]: weights.get(v["VariantName"], _initial_weight(v)) for v in variants
        }
        group = endpoint_log_group(name)
        caches: list[ModelCache] = []
        spawned: list[dict] = []

        def log_line(variant_name: str, instance_id: str, line: str) -> None:
            self.logs.append(group, f"{variant_name}/{instance_id}", line)

        def record_processes(identities: list[dict] | None = None) -> None:
            """Record every server of the deployment (for clean-up after a crash)."""
            if identities is not None:
                spawned[:] = identities
            every = spawned + [identity for cache in caches for identity in cache.identities()]
            processes = {"EndpointName": name, "DeploymentId": deployment_id, "Processes": every}
            self.store.put(ENDPOINT_PROCESSES, deployment_id, processes)

        specs, images = [], {}
        for variant in variants:
            variant_name = variant["VariantName"]
            model = self._require(MODEL, variant["ModelName"])
            container = model.get("PrimaryContainer") or model["Containers"][0]
            image = container.get("Image", "")
            images[variant_name] = image
            spec = VariantSpec(
                name=variant_name,
                weight=weights[variant_name],
                python=self.config.python_for_image(image),
                model_dir=work_dir / variant_name / "model",
                environment=dict(container.get("Environment") or {}),
                instance_ids=[
                    new_instance_id() for _ in range(variant.get("InitialInstanceCount", 1))
                ],
            )
            if container.get("Mode") == "MultiModel":
                timeout = _startup_timeout([variant])
                spec.caches = [
                    self._model_cache(spec, iid, container, timeout, log_line, record_processes)
                    for iid in spec.instance_ids
                ]
                caches += spec.caches
            else:
                spec.model_dir, spec.environment = prepare_model_dir(
                    self.s3, container, work_dir / variant_name
                )
            specs.append(spec)
        deployment = launch_deployment(
            deployment_id, specs, log_line, _startup_timeout(variants), work_dir, record_processes
        )
        return deployment, self._variant_summaries(variants, images, weights)

    def _model_cache(
        self, spec: VariantSpec, instance_id: str, container: dict, timeout, log_line, on_change
    ) -> ModelCache:
        """The loaded models of one instance of a multi-model variant."""

        def start_server(target_model: str, model_dir) -> ModelServerProcess:
            return ModelServerProcess(
                spec.python,
                model_dir,
                spec.environment,
                lambda line: log_line(spec.name, instance_id, f"[{target_model}] {line}"),
            )

        return ModelCache(
            self.s3,
            container["ModelDataUrl"],
            spec.model_dir.parent / instance_id,
            self.config.multi_model_memory_mb * 2**20,
            start_server,
            timeout,
            on_change,
        )

    @staticmethod
    def _variant_summaries(variants: list[dict], images: dict, weights: dict) -> list[dict]:
        now = time.time()
        summaries = []
        for variant in variants:
            image = images[variant["VariantName"]]
            weight = weights[variant["VariantName"]]
            summaries.append(
                {
                    "VariantName": variant["VariantName"],
                    "DeployedImages": [
                        {"SpecifiedImage": image, "ResolvedImage": image, "ResolutionTime": now}
                    ],
                    "CurrentWeight": weight,
                    "DesiredWeight": weight,
                    "CurrentInstanceCount": variant.get("InitialInstanceCount", 1),
                    "DesiredInstanceCount": variant.get("InitialInstanceCount", 1),
                }
            )
        return summaries

    def _record_deployment_failure(self, name: str, deployment_id: str, reason: str) -> None:
        """Failed for a new endpoint; back to InService (old config serving) for an update that
        failed to start or was rolled back."""
        log.warning("endpoint %s deployment failed: %s", name, reason)
        with self._hosting_lock:
            if self._endpoint_deploying.get(name) != deployment_id:
                return
            del self._endpoint_deploying[name]
            serving = self.endpoint_fleet.current(name) is not None
            record = self.store.get(ENDPOINTS, name)
            record.pop("PendingDeploymentSummary", None)
            record.update(
                EndpointStatus="InService" if serving else "Failed",
                FailureReason=truncate_reason(reason),
                LastModifiedTime=time.time(),
            )
            self.store.put(ENDPOINTS, name, record)

    def _retire(self, deployment: Deployment) -> None:
        """Drain and stop a deployment that no longer serves, and forget its processes."""
        deployment.drain_and_stop()
        self.store.delete(ENDPOINT_PROCESSES, deployment.deployment_id)
