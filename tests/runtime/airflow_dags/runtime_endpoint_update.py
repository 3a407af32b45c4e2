"""The pipeline's own ModelOperator and EndpointOperator (plugins/sagemaker_lifecycle) against the
local runtime: the endpoint test runs it once to create an endpoint and once to update it.

The test passes the requests as JSON in ``RUNTIME_ENDPOINT_UPDATE`` (keys ``model`` and
``endpoint``, each an operator's ``config``)."""

import json
import os

import pendulum
from airflow.sdk import DAG
from sagemaker_lifecycle.operators import EndpointOperator, ModelOperator

REQUESTS = json.loads(os.environ.get("RUNTIME_ENDPOINT_UPDATE", "{}"))

with DAG(
    dag_id="runtime_endpoint_update",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
):
    model = ModelOperator(task_id="model", config=REQUESTS.get("model", {}))
    endpoint = EndpointOperator(
        task_id="endpoint", config=REQUESTS.get("endpoint", {}), check_interval=1
    )
    model >> endpoint
