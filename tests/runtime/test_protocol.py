"""The wire protocols as strict clients see them: raw JSON against botocore's output shapes, the
AWS CLI, CloudWatch Logs pagination, unknown operations, and the health route."""

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError
from runtime_support import (
    BUCKET,
    SAGEMAKER,
    client_environment,
    raw_call,
    shape_violations,
    signed_request,
    training_request,
    upload_script,
    wait_for_status,
)

pytestmark = pytest.mark.e2e
SHARES_RUNTIME = True  # names of its own; lists only those (tests/runtime/conftest.py)
LOGS = botocore.session.get_session().get_service_model("logs")
AWS_CLI = Path(__file__).resolve().parents[2] / ".venvs" / "airflow" / "bin" / "aws"


@pytest.fixture(scope="module")
def finished_job(runtime, sagemaker):
    script = (
        "import sys\nprint('#metrics epoch=1 valid_acc=0.5000')\nprint('oops', file=sys.stderr)\n"
    )
    upload_script(runtime.client("s3"), BUCKET, "protocol-job", script)
    sagemaker.create_training_job(**training_request("protocol-job", BUCKET, script))
    wait_for_status(sagemaker, "protocol-job")
    return "protocol-job"


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        ("DescribeTrainingJob", {"TrainingJobName": "protocol-job"}),
        ("ListTrainingJobs", {}),
    ],
)
def test_sagemaker_responses_fit_the_output_shape(runtime, finished_job, operation, body):
    status, response = raw_call(runtime, f"SageMaker.{operation}", body)
    assert status == 200
    assert shape_violations(SAGEMAKER.operation_model(operation).output_shape, response) == []


def test_logs_responses_fit_the_output_shape(runtime, finished_job):
    group = "/aws/sagemaker/TrainingJobs"
    status, streams = raw_call(
        runtime,
        "Logs_20140328.DescribeLogStreams",
        {"logGroupName": group, "logStreamNamePrefix": "protocol-job/"},
    )
    assert status == 200
    assert shape_violations(LOGS.operation_model("DescribeLogStreams").output_shape, streams) == []
    name = streams["logStreams"][0]["logStreamName"]
    status, events = raw_call(
        runtime, "Logs_20140328.GetLogEvents", {"logGroupName": group, "logStreamName": name}
    )
    assert shape_violations(LOGS.operation_model("GetLogEvents").output_shape, events) == []


def test_sagemaker_core_resources_parse_training_jobs(runtime, finished_job, monkeypatch):
    """sagemaker-core's pydantic resources are the strictest client of the SageMaker API."""
    from sagemaker.core import resources  # slow to import: only in this test

    for name, value in client_environment(runtime.url).items():
        monkeypatch.setenv(name, value)
    session = boto3.Session()
    job = resources.TrainingJob.get(
        training_job_name=finished_job, session=session, region="us-east-1"
    )
    assert job.training_job_status == "Completed"
    assert job.model_artifacts.s3_model_artifacts.endswith(f"{finished_job}/output/model.tar.gz")
    assert [t.status for t in job.secondary_status_transitions][-1] == "Completed"
    listed = [
        j.training_job_name
        for j in resources.TrainingJob.get_all(session=session, region="us-east-1")
    ]
    assert finished_job in listed


def test_unknown_operations_are_named(runtime):
    status, body = raw_call(runtime, "SageMaker.MakeCoffee", {})
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    assert body["message"] == "MakeCoffee is not an operation of the SageMaker API"
    status, body = raw_call(runtime, "SageMaker.CreateCluster", {})
    assert body["message"] == (
        "CreateCluster is part of the SageMaker API but the local SageMaker runtime does not "
        "implement it"
    )


def test_body_that_is_not_json_is_a_serialization_error(runtime):
    request = signed_request(
        runtime.url, b"{not json", {"X-Amz-Target": "SageMaker.ListTrainingJobs"}
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request)
    assert json.loads(raised.value.read())["__type"] == "SerializationException"


def test_log_events_pagination_returns_the_same_token_when_caught_up(runtime):
    logs = runtime.client("logs")
    logs.create_log_group(logGroupName="/paging")
    logs.create_log_stream(logGroupName="/paging", logStreamName="s")
    logs.put_log_events(
        logGroupName="/paging",
        logStreamName="s",
        logEvents=[{"timestamp": 1000 + n, "message": f"line {n}"} for n in range(5)],
    )
    first = logs.get_log_events(
        logGroupName="/paging", logStreamName="s", startFromHead=True, limit=3
    )
    assert [e["message"] for e in first["events"]] == ["line 0", "line 1", "line 2"]
    second = logs.get_log_events(
        logGroupName="/paging", logStreamName="s", nextToken=first["nextForwardToken"]
    )
    assert [e["message"] for e in second["events"]] == ["line 3", "line 4"]
    caught_up = logs.get_log_events(
        logGroupName="/paging", logStreamName="s", nextToken=second["nextForwardToken"]
    )
    assert caught_up["events"] == []
    assert caught_up["nextForwardToken"] == second["nextForwardToken"]
    back = logs.get_log_events(
        logGroupName="/paging", logStreamName="s", nextToken=second["nextBackwardToken"], limit=2
    )
    assert [e["message"] for e in back["events"]] == ["line 1", "line 2"]
    tail = logs.get_log_events(logGroupName="/paging", logStreamName="s", limit=2)
    assert [e["message"] for e in tail["events"]] == ["line 3", "line 4"]
    filtered = logs.filter_log_events(logGroupName="/paging", filterPattern="line 3")
    assert [e["message"] for e in filtered["events"]] == ["line 3"]


def test_logs_errors_are_aws_shaped(runtime):
    logs = runtime.client("logs")
    with pytest.raises(ClientError) as raised:
        logs.get_log_events(logGroupName="/nothing", logStreamName="s")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
    logs.create_log_group(logGroupName="/twice")
    with pytest.raises(ClientError) as raised:
        logs.create_log_group(logGroupName="/twice")
    assert raised.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"


def test_aws_cli_reads_the_runtime(runtime, finished_job):
    env = {**os.environ, **client_environment(runtime.url)}

    def aws(*args):
        result = subprocess.run(
            [str(AWS_CLI), *args], env=env, capture_output=True, text=True, timeout=60, check=True
        )
        return result.stdout

    described = json.loads(
        aws("sagemaker", "describe-training-job", "--training-job-name", finished_job)
    )
    assert described["TrainingJobStatus"] == "Completed"
    assert f"{finished_job}/output/model.tar.gz" in aws(
        "s3", "ls", "--recursive", f"s3://{BUCKET}/output/"
    )
    stream = json.loads(
        aws(
            "logs",
            "describe-log-streams",
            "--log-group-name",
            "/aws/sagemaker/TrainingJobs",
            "--log-stream-name-prefix",
            f"{finished_job}/",
        )
    )["logStreams"][0]["logStreamName"]
    events = json.loads(
        aws(
            "logs",
            "get-log-events",
            "--log-group-name",
            "/aws/sagemaker/TrainingJobs",
            "--log-stream-name",
            stream,
        )
    )
    # stdout and stderr are separate pipes: their relative order is not defined.
    assert sorted(e["message"] for e in events["events"]) == [
        "#metrics epoch=1 valid_acc=0.5000",
        "oops",
    ]


def test_health_route_lists_the_families(runtime):
    with urllib.request.urlopen(f"{runtime.url}/_local/health") as response:
        health = json.loads(response.read())
    assert health["status"] == "ok"
    assert health["families"][0] == "training"


def test_an_object_key_over_1024_bytes_is_refused_as_s3_does(runtime):
    s3 = runtime.client("s3")
    longest = "too-long/" + "é" * 507 + "x"  # 1024 bytes of UTF-8: S3's limit
    s3.put_object(Bucket=BUCKET, Key=longest, Body=b"fits")
    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket=BUCKET, Key=longest + "x", Body=b"too long")
    assert raised.value.response["Error"]["Code"] == "KeyTooLongError"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as raised:
        s3.create_multipart_upload(Bucket=BUCKET, Key=longest + "x")
    assert raised.value.response["Error"]["Code"] == "KeyTooLongError"
    assert s3.get_object(Bucket=BUCKET, Key=longest)["Body"].read() == b"fits"
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="too-long/")["Contents"]
    assert [entry["Key"] for entry in listed] == [longest]
