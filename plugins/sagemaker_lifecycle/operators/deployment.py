"""Operators that deploy: the model, then the endpoint config and endpoint.

Unlike the provider's, they are safe to retry and to clear: an identical model or endpoint config
already there is reused, a different one replaced, and the endpoint updated in place.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerEndpointOperator,
    SageMakerModelOperator,
)
from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger

from sagemaker_lifecycle.hooks import SageMakerLifecycleHook
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
            delay = int(float(self.check_interval)) or 1
            limit = wait_limit(self.max_ingestion_time)
            finite = math.isfinite(limit)
            self.defer(
                trigger=SageMakerTrigger(
                    job_name=endpoint["EndpointName"],
                    job_type="endpoint",
                    waiter_delay=delay,
                    waiter_max_attempts=math.ceil(limit / delay) if finite else 10**9,
                    aws_conn_id=self.aws_conn_id,
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=limit) if finite else None,
            )
        return self._checked(previous)

    def execute_complete(self, context, event=None) -> dict[str, Any]:
        """Resumes once the trigger saw the endpoint InService (or Failed, or the wait ran out)."""
        if event["status"] != "success":
            self.log.error("Waiting for endpoint %s: %s", event.get("job_name"),
                           event.get("message"))  # fmt: skip
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
