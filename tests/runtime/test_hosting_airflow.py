"""The Amazon provider's model, endpoint and transform operators, under ``airflow dags test``,
deploy and batch-score in the local runtime."""

import json

import pytest
from hosting_support import expected_label, model_tarball
from runtime_support import BUCKET, ROLE_ARN, airflow_dags_test

pytestmark = pytest.mark.e2e
ROWS = [[2.0, 0.0], [0.0, 3.0]]


def hosting_requests() -> dict:
    return {
        "model": {
            "ModelName": "airflow-scorer",
            "ExecutionRoleArn": ROLE_ARN,
            "PrimaryContainer": {
                "Image": "pytorch-inference:2.5-cpu-py311",
                "ModelDataUrl": f"s3://{BUCKET}/hosting/model.tar.gz",
            },
        },
        "endpoint": {
            "EndpointConfig": {
                "EndpointConfigName": "airflow-scorer",
                "ProductionVariants": [
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": "airflow-scorer",
                        "InitialInstanceCount": 1,
                        "InstanceType": "ml.m5.large",
                    }
                ],
            },
            "Endpoint": {"EndpointName": "airflow-scorer", "EndpointConfigName": "airflow-scorer"},
        },
        "transform": {
            "TransformJobName": "airflow-scorer-batch",
            "ModelName": "airflow-scorer",
            "TransformInput": {
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{BUCKET}/hosting/input/",
                    }
                },
                "ContentType": "application/json",
            },
            "TransformOutput": {"S3OutputPath": f"s3://{BUCKET}/hosting/output/"},
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        },
    }


def test_model_endpoint_and_transform_operators(runtime, sagemaker, s3, tmp_path):
    s3.put_object(Bucket=BUCKET, Key="hosting/model.tar.gz", Body=model_tarball())
    s3.put_object(Bucket=BUCKET, Key="hosting/input/rows.json", Body=json.dumps(ROWS).encode())
    environment = {"RUNTIME_SMOKE_HOSTING": json.dumps(hosting_requests())}
    result = airflow_dags_test(runtime, tmp_path / "airflow", "runtime_hosting_smoke", environment)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    endpoint = sagemaker.describe_endpoint(EndpointName="airflow-scorer")
    assert endpoint["EndpointStatus"] == "InService"
    job = sagemaker.describe_transform_job(TransformJobName="airflow-scorer-batch")
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    body = s3.get_object(Bucket=BUCKET, Key="hosting/output/rows.json.out")["Body"].read()
    assert [p["label"] for p in json.loads(body)] == [expected_label(row) for row in ROWS]
    invoked = runtime.client("sagemaker-runtime").invoke_endpoint(
        EndpointName="airflow-scorer", Body=json.dumps(ROWS[0]), ContentType="application/json"
    )
    assert json.loads(invoked["Body"].read())[0]["label"] == expected_label(ROWS[0])
