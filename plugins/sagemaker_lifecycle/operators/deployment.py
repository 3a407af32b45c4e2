"""Operators that deploy: the model, then the endpoint config and endpoint.

Unlike the provider's, they are safe to retry and to clear: an identical model or endpoint config
already there is reused, a different one replaced, and the endpoint updated in place.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerEndpointOperator,
    SageMakerModelOperator,
)

from sagemaker_lifecycle.hooks import SageMakerLifecycleHook
from sagemaker_lifecycle.operators.jobs import wait_limit


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
    """Deploys `config` = {"EndpointConfig": {...}, "Endpoint": {...}} and waits for InService.

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
        previous = self.hook.endpoint_config_of(self.config["Endpoint"]["EndpointName"])
        self.hook.ensure_endpoint_config(self.config["EndpointConfig"])
        description = self.hook.deploy_endpoint(
            self.config["Endpoint"],
            interval=float(self.check_interval),
            timeout=wait_limit(self.max_ingestion_time),
        )
        self.log.info("Endpoint %s is InService", description["EndpointName"])
        return {
            "EndpointName": description["EndpointName"],
            "EndpointConfigName": description["EndpointConfigName"],
            "PreviousEndpointConfigName": previous,
        }
