"""A one-task DAG for the runtime's tuning test: the Amazon provider's SageMakerTuningOperator
runs a hyperparameter tuning job in the local runtime and waits for it.

The test passes the CreateHyperParameterTuningJob request as JSON in
``RUNTIME_SMOKE_TUNING_REQUEST``."""

import json
import os

import pendulum
from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTuningOperator
from airflow.sdk import DAG

with DAG(
    dag_id="runtime_tuning_smoke",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
):
    SageMakerTuningOperator(
        task_id="tune",
        config=json.loads(os.environ.get("RUNTIME_SMOKE_TUNING_REQUEST", "{}")),
        aws_conn_id="aws_default",
        wait_for_completion=True,
        check_interval=1,
    )
