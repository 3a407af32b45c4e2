"""One task: the Amazon provider's SageMakerTuningOperator, as the project's DAG uses it.

The tuning request comes from the environment variable TUNING_TEST_CONFIG (JSON), so the test
that runs `airflow dags test tuning_test` decides what to tune and against which runtime.
"""

import json
import os
from datetime import datetime

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTuningOperator
from airflow.sdk import DAG

with DAG(dag_id="tuning_test", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    SageMakerTuningOperator(
        task_id="tune",
        config=json.loads(os.environ.get("TUNING_TEST_CONFIG", "{}")),
        aws_conn_id="aws_default",
        wait_for_completion=True,
        check_interval=1,
    )
