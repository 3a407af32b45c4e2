"""The Amazon provider's SageMakerTrainingOperator, under ``airflow dags test``, trains in the
local runtime and streams the job's log into the task log (the provider's print_log)."""

import json

import pytest
from runtime_support import BUCKET, airflow_dags_test, training_request, upload_script

pytestmark = pytest.mark.e2e
SCRIPT = (
    "for epoch in (1, 2):\n"
    "    print(f'#metrics epoch={epoch} train_loss=0.5 valid_acc=0.{epoch}')\n"
    "print('training script finished')\n"
)


def test_training_operator_runs_a_job_and_tails_its_log(runtime, sagemaker, tmp_path):
    upload_script(runtime.client("s3"), BUCKET, "from-airflow", SCRIPT)
    request = training_request("from-airflow", BUCKET, SCRIPT)
    result = airflow_dags_test(
        runtime,
        tmp_path / "airflow",
        "runtime_training_smoke",
        {"RUNTIME_SMOKE_TRAINING_REQUEST": json.dumps(request)},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "training script finished" in output, "print_log did not stream the job's log"
    described = sagemaker.describe_training_job(TrainingJobName="from-airflow")
    assert described["TrainingJobStatus"] == "Completed"
    final = {m["MetricName"]: m["Value"] for m in described["FinalMetricDataList"]}
    assert final == {"valid_acc": 0.2, "train_loss": 0.5}
