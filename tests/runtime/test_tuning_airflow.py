"""The Amazon provider's SageMakerTuningOperator runs a tuning job on the local runtime under
`airflow dags test`: 6 trials, 2 at a time, and the task succeeds with the described job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from runtime_support import BUCKET
from tuning_support import all_trials, tuning_request, upload_trial_source

pytestmark = pytest.mark.e2e

DAG_FOLDER = Path(__file__).resolve().parent / "tuning_dag"
AIRFLOW = Path(sys.executable).parent / "airflow"


def airflow_environment(home: Path, runtime_url: str, tuning_config: dict) -> dict[str, str]:
    environment = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAG_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"region_name": "us-east-1", "endpoint_url": runtime_url},
            }
        ),
        "TUNING_TEST_CONFIG": json.dumps(tuning_config),
    }
    environment.pop("AWS_ENDPOINT_URL", None)
    return environment


def airflow(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(AIRFLOW), *args], env=environment, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip


def test_sagemaker_tuning_operator_runs_a_tuning_job_on_the_local_runtime(runtime, tmp_path):
    sagemaker = runtime.client("sagemaker")
    source_uri = upload_trial_source(runtime.client("s3"), BUCKET)
    config = tuning_request("airflow-tune", BUCKET, source_uri, strategy="Bayesian", RandomSeed=1)
    environment = airflow_environment(tmp_path / "airflow", runtime.url, config)
    migrated = airflow(environment, "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-3000:]

    result = airflow(environment, "dags", "test", "tuning_test")

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "Creating SageMaker Hyper-Parameter Tuning Job airflow-tune" in output
    described = sagemaker.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="airflow-tune"
    )
    assert described["HyperParameterTuningJobStatus"] == "Completed"
    assert described["ObjectiveStatusCounters"]["Succeeded"] == 6
    trials = all_trials(sagemaker, "airflow-tune")
    assert len(trials) == 6
    assert described["BestTrainingJob"]["TrainingJobName"] in {t["TrainingJobName"] for t in trials}
    (finished,) = [line for line in output.splitlines() if "DagRun Finished" in line]
    assert "state=success" in finished
