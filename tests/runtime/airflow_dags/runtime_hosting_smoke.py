"""A three-task DAG for the runtime's hosting test: the Amazon provider's SageMakerModelOperator,
SageMakerEndpointOperator and SageMakerTransformOperator against the local runtime.

The test passes the requests as JSON in ``RUNTIME_SMOKE_HOSTING`` (keys ``model``, ``endpoint``
and ``transform``, each an operator's ``config``)."""

import json
import os

import pendulum
from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerEndpointOperator,
    SageMakerModelOperator,
    SageMakerTransformOperator,
)
from airflow.sdk import DAG

REQUESTS = json.loads(os.environ.get("RUNTIME_SMOKE_HOSTING", "{}"))

with DAG(
    dag_id="runtime_hosting_smoke",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
):
    model = SageMakerModelOperator(
        task_id="model", config=REQUESTS.get("model", {}), aws_conn_id="aws_default"
    )
    endpoint = SageMakerEndpointOperator(
        task_id="endpoint",
        config=REQUESTS.get("endpoint", {}),
        aws_conn_id="aws_default",
        wait_for_completion=True,
        check_interval=1,
    )
    transform = SageMakerTransformOperator(
        task_id="transform",
        config=REQUESTS.get("transform", {}),
        aws_conn_id="aws_default",
        wait_for_completion=True,
        check_interval=1,
        action_if_job_exists="fail",
    )
    model >> endpoint >> transform
