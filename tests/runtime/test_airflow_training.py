"""The Amazon provider's SageMakerTrainingOperator, under ``airflow dags test``, trains in the
local runtime and streams the job's log into the task log (the provider's print_log)."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from runtime_support import BUCKET, client_environment, training_request, upload_script

pytestmark = pytest.mark.e2e
AIRFLOW = Path(__file__).resolve().parents[2] / ".venvs" / "airflow" / "bin" / "airflow"
DAGS = Path(__file__).resolve().parent / "airflow_dags"
SCRIPT = (
    "for epoch in (1, 2):\n"
    "    print(f'#metrics epoch={epoch} train_loss=0.5 valid_acc=0.{epoch}')\n"
    "print('training script finished')\n"
)


def test_training_operator_runs_a_job_and_tails_its_log(runtime, sagemaker, tmp_path):
    upload_script(runtime.client("s3"), BUCKET, "from-airflow", SCRIPT)
    request = training_request("from-airflow", BUCKET, SCRIPT)
    connection = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": runtime.url, "region_name": "us-east-1"},
    }
    env = {
        **os.environ,
        **client_environment(runtime.url),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection),
        "RUNTIME_SMOKE_TRAINING_REQUEST": json.dumps(request),
    }

    def airflow(*args):
        return subprocess.run(
            [str(AIRFLOW), *args], env=env, capture_output=True, text=True, timeout=240
        )

    assert airflow("db", "migrate").returncode == 0
    result = airflow("dags", "test", "runtime_training_smoke")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "training script finished" in output, "print_log did not stream the job's log"
    described = sagemaker.describe_training_job(TrainingJobName="from-airflow")
    assert described["TrainingJobStatus"] == "Completed"
