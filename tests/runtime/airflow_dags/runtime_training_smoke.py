"""A one-task DAG for the runtime's Airflow test: the Amazon provider's SageMakerTrainingOperator
runs a training job in the local runtime and tails its CloudWatch log (print_log).

The test passes the CreateTrainingJob request as JSON in ``RUNTIME_SMOKE_TRAINING_REQUEST``."""

import json
import os

import pendulum
from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator
from airflow.sdk import DAG

with DAG(
    dag_id="runtime_training_smoke",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
):
    SageMakerTrainingOperator(
        task_id="train",
        config=json.loads(os.environ.get("RUNTIME_SMOKE_TRAINING_REQUEST", "{}")),
        aws_conn_id="aws_default",
        wait_for_completion=True,
        print_log=True,
        check_interval=1,
        action_if_job_exists="fail",
    )
