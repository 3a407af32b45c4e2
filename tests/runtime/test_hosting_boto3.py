"""The hosting API and InvokeEndpoint through a real runtime process, seen by boto3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, WaiterError
from hosting_support import (
    FAST_WAITER,
    expected_label,
    model_tarball,
    running_runtime,
)
from runtime_support import client_environment

pytestmark = pytest.mark.e2e
AWS_CLI = Path(sys.executable).with_name("aws")
ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    root = tmp_path_factory.mktemp("hosting-boto3")
    with running_runtime(root / "state") as runtime:
        s3 = runtime.client("s3")
        s3.create_bucket(Bucket="artifacts")
        s3.put_object(Bucket="artifacts", Key="v1/model.tar.gz", Body=model_tarball(version="v1"))
        s3.put_object(Bucket="artifacts", Key="v2/model.tar.gz", Body=model_tarball(version="v2"))
        s3.put_object(
            Bucket="artifacts", Key="bad/model.tar.gz", Body=model_tarball(fail_to_load="no way")
        )
        clients = {
            name: runtime.client(name) for name in ("sagemaker", "sagemaker-runtime", "logs")
        }
        yield {**clients, "url": runtime.url}


def create_model_and_config(sagemaker, name: str, artifact: str) -> None:
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/local",
        PrimaryContainer={
            "Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.0-cpu-py310",
            "ModelDataUrl": f"s3://artifacts/{artifact}",
        },
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )


@pytest.fixture(scope="module")
def endpoint(clients):
    sagemaker = clients["sagemaker"]
    create_model_and_config(sagemaker, "classifier-v1", "v1/model.tar.gz")
    sagemaker.create_endpoint(EndpointName="classifier", EndpointConfigName="classifier-v1")
    sagemaker.get_waiter("endpoint_in_service").wait(
        EndpointName="classifier", WaiterConfig=FAST_WAITER
    )
    return "classifier"


def invoke(clients, endpoint: str, body, **extra):
    return clients["sagemaker-runtime"].invoke_endpoint(
        EndpointName=endpoint, Body=json.dumps(body), ContentType="application/json", **extra
    )


def test_invoke_returns_handler_output_and_variant(clients, endpoint):
    response = invoke(clients, endpoint, [[0.3, 0.8]], Accept="application/json")
    assert response["ContentType"] == "application/json"
    assert response["InvokedProductionVariant"] == "AllTraffic"
    prediction = json.loads(response["Body"].read())
    assert prediction[0]["label"] == expected_label([0.3, 0.8])
    described = clients["sagemaker"].describe_endpoint(EndpointName=endpoint)
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointArn"] == f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/classifier"


def test_handler_error_is_a_model_error_424(clients, endpoint):
    with pytest.raises(ClientError) as raised:
        invoke(clients, endpoint, {"raise": "bad tensor"})
    error = raised.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["Error"]["Code"] == "ModelError"
    assert error["OriginalStatusCode"] == 500
    assert error["OriginalMessage"].startswith("bad tensor\nTraceback")
    assert error["Error"]["Message"].startswith(
        'Received server error (500) from primary with message "bad tensor'
    )
    assert error["LogStreamArn"].endswith(":log-group:/aws/sagemaker/Endpoints/classifier")


def test_client_error_status_is_passed_on(clients, endpoint):
    with pytest.raises(ClientError) as raised:
        clients["sagemaker-runtime"].invoke_endpoint(
            EndpointName=endpoint, Body=b"hello", ContentType="text/plain"
        )
    assert raised.value.response["OriginalStatusCode"] == 400
    assert "Received client error (400) from primary" in str(raised.value)


def test_unknown_endpoint_is_a_validation_error(clients):
    with pytest.raises(ClientError) as raised:
        invoke(clients, "nobody", [1, 2])
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert raised.value.response["Error"]["Message"] == (
        f"Endpoint nobody of account {ACCOUNT} not found."
    )


def test_model_server_output_reaches_the_endpoint_log_stream(clients, endpoint):
    invoke(clients, endpoint, [1.0, 1.0])
    logs = clients["logs"]
    group = f"/aws/sagemaker/Endpoints/{endpoint}"
    streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix="AllTraffic/")
    stream = streams["logStreams"][0]["logStreamName"]
    assert stream.startswith("AllTraffic/i-")
    deadline = time.monotonic() + 10  # the server logs a request after answering it
    while True:
        events = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)
        messages = [event["message"] for event in events["events"]]
        if any("POST /invocations" in message for message in messages):
            break
        assert time.monotonic() < deadline, messages
        time.sleep(0.1)
    assert any("Model server for" in message for message in messages)


def test_failed_endpoint_reports_model_fn_error(clients):
    sagemaker = clients["sagemaker"]
    create_model_and_config(sagemaker, "broken", "bad/model.tar.gz")
    sagemaker.create_endpoint(EndpointName="broken", EndpointConfigName="broken")
    with pytest.raises(WaiterError):
        sagemaker.get_waiter("endpoint_in_service").wait(
            EndpointName="broken", WaiterConfig=FAST_WAITER
        )
    described = sagemaker.describe_endpoint(EndpointName="broken")
    assert described["EndpointStatus"] == "Failed"
    assert "RuntimeError: model.json asks model_fn to fail: no way" in described["FailureReason"]


def test_update_then_delete(clients, endpoint):
    sagemaker = clients["sagemaker"]
    # Its own endpoint (from the shared v1 config): this test deletes what it updates.
    sagemaker.create_endpoint(EndpointName="updatable", EndpointConfigName="classifier-v1")
    waiter = sagemaker.get_waiter("endpoint_in_service")
    waiter.wait(EndpointName="updatable", WaiterConfig=FAST_WAITER)
    create_model_and_config(sagemaker, "classifier-v2", "v2/model.tar.gz")
    sagemaker.update_endpoint(EndpointName="updatable", EndpointConfigName="classifier-v2")
    waiter.wait(EndpointName="updatable", WaiterConfig=FAST_WAITER)
    answer = invoke(clients, "updatable", [1.0, 0.0])["Body"].read()
    assert json.loads(answer)[0]["version"] == "v2"
    listed = sagemaker.list_endpoints(StatusEquals="InService", SortBy="Name")["Endpoints"]
    assert [e["EndpointName"] for e in listed] == ["updatable", endpoint]  # Descending
    sagemaker.delete_endpoint(EndpointName="updatable")
    sagemaker.get_waiter("endpoint_deleted").wait(
        EndpointName="updatable", WaiterConfig=FAST_WAITER
    )
    with pytest.raises(ClientError, match="Could not find endpoint"):
        sagemaker.delete_endpoint(EndpointName="updatable")


def test_describe_and_delete_model(clients):
    sagemaker = clients["sagemaker"]
    create_model_and_config(sagemaker, "short-lived", "v1/model.tar.gz")
    model = sagemaker.describe_model(ModelName="short-lived")
    assert model["PrimaryContainer"]["ModelDataUrl"] == "s3://artifacts/v1/model.tar.gz"
    config = sagemaker.describe_endpoint_config(EndpointConfigName="short-lived")
    assert config["ProductionVariants"][0]["ModelName"] == "short-lived"
    sagemaker.delete_endpoint_config(EndpointConfigName="short-lived")
    sagemaker.delete_model(ModelName="short-lived")
    with pytest.raises(ClientError) as raised:
        sagemaker.describe_model(ModelName="short-lived")
    assert raised.value.response["Error"]["Code"] == "ValidationException"


def test_aws_cli_describes_and_invokes(clients, endpoint, tmp_path):
    """The AWS CLI, a second strict client, parses the same responses."""
    environment = {**os.environ, **client_environment(clients["url"])}

    def aws(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(AWS_CLI), *args], env=environment, capture_output=True, text=True, timeout=60
        )

    described = aws("sagemaker", "describe-endpoint", "--endpoint-name", endpoint)
    assert described.returncode == 0, described.stderr
    assert json.loads(described.stdout)["EndpointStatus"] == "InService"
    body_file = tmp_path / "body.json"
    body_file.write_text(json.dumps([0.0, 5.0]))
    answer_file = tmp_path / "answer.json"
    invoked = aws(
        "sagemaker-runtime",
        "invoke-endpoint",
        "--endpoint-name",
        endpoint,
        "--content-type",
        "application/json",
        "--body",
        f"fileb://{body_file}",
        str(answer_file),
    )
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout)["InvokedProductionVariant"] == "AllTraffic"
    assert json.loads(answer_file.read_text())[0]["label"] == expected_label([0.0, 5.0])
