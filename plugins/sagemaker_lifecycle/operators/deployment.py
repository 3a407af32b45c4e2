"""Operators that deploy: the model, then the endpoint config and endpoint.

Unlike the provider's, they are safe to retry and to clear: an identical model or endpoint config
already there is reused, a different one replaced, and the endpoint updated in place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerEndpointOperator,
    SageMakerModelOperator,
)
from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger

from sagemaker_lifecycle.hooks import SageMakerJobError, SageMakerLifecycleHook
from sagemaker_lifecycle.operators.jobs import wait_limit

PREVIOUS_CONFIG_KEY = "previous_endpoint_config"


class ModelOperator(SageMakerModelOperator):
    """Creates (or reuses) the model `config` (a CreateModel request); XCom: name and artifact."""

    aws_hook_class = SageMakerLifecycleHook

    def execute(self, context) -> dict[str, Any]:
        self.preprocess_config()
        description = self.hook.ensure_model(self.config)
        return {
            "ModelName": description["ModelName"],
            "ModelDataUrl": description["PrimaryContainer"]["ModelDataUrl"],
        }


class EndpointOperator(SageMakerEndpointOperator):
    """Deploys `config` = {"EndpointConfig": {...}, "Endpoint": {...}}: creates or updates the
    endpoint, defers to the provider's SageMakerTrigger (botocore's `endpoint_in_service` waiter)
    until it is InService, then checks that it serves the config asked for. An update SageMaker
    rolled back (a rollback alarm during baking) fails the task, naming both configs.

    XCom: the endpoint, the config it now serves and the one it served before (None for a new
    endpoint), which the smoke test rolls back to when the new model does not answer.
    """

    aws_hook_class = SageMakerLifecycleHook
    template_fields = (
        *SageMakerEndpointOperator.template_fields,
        "check_interval",
        "max_ingestion_time",
    )

    def execute(self, context) -> dict[str, Any]:
        self.preprocess_config()
        endpoint = self.config["Endpoint"]
        previous = self.hook.endpoint_config_of(endpoint["EndpointName"])
        # Kept for execute_complete: once resumed, the endpoint may serve the new config already.
        context["ti"].xcom_push(key=PREVIOUS_CONFIG_KEY, value=previous)
        self.hook.ensure_endpoint_config(self.config["EndpointConfig"])
        if self.hook.start_endpoint_deployment(endpoint):
            self._defer_until_in_service(endpoint["EndpointName"], "execute_complete")
        return self._checked(previous)

    def _defer_until_in_service(self, endpoint_name: str, method_name: str) -> None:
        """Defer to the provider's SageMakerTrigger until the endpoint is InService again."""
        delay = int(float(self.check_interval)) or 1
        limit = wait_limit(self.max_ingestion_time)
        finite = math.isfinite(limit)
        self.defer(
            trigger=SageMakerTrigger(
                job_name=endpoint_name,
                job_type="endpoint",
                waiter_delay=delay,
                waiter_max_attempts=math.ceil(limit / delay) if finite else 10**9,
                aws_conn_id=self.aws_conn_id,
            ),
            method_name=method_name,
            timeout=timedelta(seconds=limit) if finite else None,
        )

    def _log_failed_wait(self, event: dict | None) -> None:
        # The check after the wait (served_endpoint) fails the task with SageMaker's reason.
        if event and event["status"] != "success":
            self.log.error("Waiting for endpoint %s: %s", event.get("job_name"),
                           event.get("message"))  # fmt: skip

    def execute_complete(self, context, event=None) -> dict[str, Any]:
        """Resumes once the trigger saw the endpoint InService (or Failed, or the wait ran out)."""
        self._log_failed_wait(event)
        previous = context["ti"].xcom_pull(task_ids=self.task_id, key=PREVIOUS_CONFIG_KEY)
        return self._checked(previous)

    def _checked(self, previous: str | None) -> dict[str, Any]:
        """The XCom, once the endpoint is checked to serve the requested config."""
        endpoint = self.config["Endpoint"]
        description = self.hook.served_endpoint(
            endpoint["EndpointName"], endpoint["EndpointConfigName"]
        )
        self.log.info("Endpoint %s is InService on %s", description["EndpointName"],
                      description["EndpointConfigName"])  # fmt: skip
        return {
            "EndpointName": description["EndpointName"],
            "EndpointConfigName": description["EndpointConfigName"],
            "PreviousEndpointConfigName": previous,
        }


class PromotionOperator(EndpointOperator):
    """Puts the promotion decision on the endpoint (`request_builders.promotion_actions`):

    - Approved beside a champion: `traffic` (UpdateEndpointWeightsAndCapacities) gives the
      challenger's variant every request, deferred until the endpoint is InService again; then
      the endpoint settles on `config`, the challenger's model alone (a blue/green
      UpdateEndpoint, deferred, as EndpointOperator deploys);
    - Approved first model (it was tried on the run's trial endpoint): `config` creates the
      endpoint users call with the challenger's model alone, deferred until InService;
    - not Approved: the endpoint settles on the champion's model alone, as it served before the
      run: the challenger's variant, which never had traffic, is removed. `config` None (a first
      model): the endpoint users call never existed, and nothing is deployed.

    Then the `retired` trial endpoint, challenger config and model are deleted unless the
    endpoint users call serves them (`SageMakerLifecycleHook.retire_challenger`).
    XCom: EndpointOperator's (EndpointConfigName None when that endpoint was never created).
    """

    template_fields = (*EndpointOperator.template_fields, "traffic", "retired")

    def __init__(self, *, traffic: Mapping | str | None, retired: Mapping | str, **kwargs):
        super().__init__(**kwargs)
        self.traffic = traffic
        self.retired = retired

    def execute(self, context) -> dict[str, Any]:
        if self.traffic and self.hook.shift_traffic(self.traffic):
            self._defer_until_in_service(self.traffic["EndpointName"], "settle")
        return self.settle(context)

    def settle(self, context, event=None) -> dict[str, Any]:
        """After the traffic moved (or with none to move): the endpoint's one-variant config."""
        if event and event["status"] != "success":
            raise SageMakerJobError(f"moving the traffic of endpoint {event.get('job_name')} to "
                                    f"the challenger: {event.get('message')}")  # fmt: skip
        if self.config is not None:
            return super().execute(context)
        self._retire()
        return {"EndpointName": self.retired["EndpointName"], "EndpointConfigName": None,
                "PreviousEndpointConfigName": None}  # fmt: skip

    def _checked(self, previous: str | None) -> dict[str, Any]:
        checked = super()._checked(previous)
        self._retire()
        return checked

    def _retire(self) -> None:
        deleted = self.hook.retire_challenger(self.retired)
        self.log.info("Challenger deployment retired: deleted %s", deleted or "nothing")
