"""The Amazon provider's SageMakerTuningOperator, under ``airflow dags test``, runs a tuning job
in the local runtime: 6 trials, 2 at a time, and the task succeeds once the job completed."""

import json

import pytest
from runtime_support import BUCKET, airflow_dags_test
from tuning_support import all_trials, tuning_request, upload_trial_source

pytestmark = pytest.mark.e2e


def test_tuning_operator_runs_a_tuning_job_to_completion(runtime, sagemaker, tmp_path):
    source_uri = upload_trial_source(runtime.client("s3"), BUCKET)
    request = tuning_request(
        "airflow-tune", BUCKET, source_uri, strategy="Bayesian", RandomSeed=1,
        static={"epochs": "2", "epoch-seconds": "0.05"},
    )  # fmt: skip

    result = airflow_dags_test(
        runtime,
        tmp_path / "airflow",
        "runtime_tuning_smoke",
        {"RUNTIME_SMOKE_TUNING_REQUEST": json.dumps(request)},
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Creating SageMaker Hyper-Parameter Tuning Job airflow-tune" in output
    (finished,) = [line for line in output.splitlines() if "DagRun Finished" in line]
    assert "state=success" in finished
    described = sagemaker.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="airflow-tune"
    )
    assert described["HyperParameterTuningJobStatus"] == "Completed"
    assert described["ObjectiveStatusCounters"]["Succeeded"] == 6
    trials = all_trials(sagemaker, "airflow-tune")
    assert described["BestTrainingJob"]["TrainingJobName"] in {t["TrainingJobName"] for t in trials}
