"""Requests from someone without the runtime's keys, or with bad input: each gets AWS's own 4xx
and changes nothing."""

from __future__ import annotations

import datetime
import json
import socket
import time
from unittest import mock

import boto3
import botocore.auth
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from hostile_support import BUCKET, PLANTED_BODY, PLANTED_KEY, curl
from runtime_access import s3v4_client, signed_request

pytestmark = pytest.mark.e2e
SHELL_JOB = {
    "ProcessingJobName": "owned",
    "RoleArn": "arn:aws:iam::123456789012:role/x",
    "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                              "VolumeSizeInGB": 1}},
    "AppSpecification": {"ImageUri": "x", "ContainerEntrypoint": ["/bin/sh", "-c", "id"]},
}  # fmt: skip
JSON_HEADERS = ("-H", "Content-Type: application/x-amz-json-1.1")


def unsigned_json(runtime, target: str, body: dict, *headers: str) -> tuple[int, dict]:
    status, text = curl("-X", "POST", runtime.url, *JSON_HEADERS, "-H", f"X-Amz-Target: {target}",
                        *headers, "--data-binary", json.dumps(body))  # fmt: skip
    return status, json.loads(text)


def aws_code(error: ClientError) -> tuple[int, str]:
    return error.response["ResponseMetadata"]["HTTPStatusCode"], error.response["Error"]["Code"]


@pytest.fixture(autouse=True)
def nothing_changed(runtime, ledger):
    """After every test: no job was created and the planted source dir is intact."""
    yield
    sagemaker, s3 = runtime.client("sagemaker"), runtime.client("s3")
    assert sagemaker.list_processing_jobs()["ProcessingJobSummaries"] == []
    assert sagemaker.list_training_jobs()["TrainingJobSummaries"] == []
    body = s3.get_object(Bucket=BUCKET, Key=PLANTED_KEY)["Body"].read()
    ledger.found("lost objects", int(body != PLANTED_BODY))
    assert body == PLANTED_BODY


def test_unsigned_curl_gets_aws_errors_from_every_service(runtime, ledger):
    status, body = unsigned_json(runtime, "SageMaker.CreateProcessingJob", SHELL_JOB)
    assert (ledger.answered("unsigned CreateProcessingJob", status), body["__type"]) == (
        403, "MissingAuthenticationToken")  # fmt: skip
    status, body = unsigned_json(runtime, "Logs_20140328.DescribeLogGroups", {})
    assert ledger.answered("unsigned DescribeLogGroups", status) == 403
    status, text = curl("-X", "PUT", f"{runtime.url}/{BUCKET}/{PLANTED_KEY}", "--data", "evil")
    assert ledger.answered("unsigned S3 PutObject", status) == 403
    assert "<Code>AccessDenied</Code>" in text
    status, text = curl(f"{runtime.url}/{BUCKET}/{PLANTED_KEY}")
    assert (ledger.answered("unsigned S3 GetObject", status), "AccessDenied" in text) == (403, True)
    status, text = curl("-X", "POST", f"{runtime.url}/endpoints/any/invocations", "--data", "x")
    assert ledger.answered("unsigned InvokeEndpoint", status) == 403


def test_wrong_secret_unknown_key_and_skewed_clock_are_refused(runtime, ledger):
    key_pair = runtime.key_pair
    cases = {
        "wrong secret": ({"aws_secret_access_key": "not-the-secret"}, "InvalidSignatureException",
                         "SignatureDoesNotMatch"),
        "unknown key": ({"aws_access_key_id": "AKIAEXAMPLE0000000000"},
                        "UnrecognizedClientException", "InvalidAccessKeyId"),
    }  # fmt: skip
    for name, (override, sagemaker_code, s3_code) in cases.items():
        credentials = {"aws_access_key_id": key_pair.access_key_id,
                       "aws_secret_access_key": key_pair.secret_access_key, **override}  # fmt: skip
        session = boto3.Session(region_name="us-east-1", **credentials)
        config = Config(retries={"max_attempts": 1})
        with pytest.raises(ClientError) as raised:
            session.client(
                "sagemaker", endpoint_url=runtime.url, config=config
            ).create_processing_job(**SHELL_JOB)
        status, code = aws_code(raised.value)
        assert (ledger.answered(f"{name} CreateProcessingJob", status), code) == (
            403,
            sagemaker_code,
        )
        with pytest.raises(ClientError) as raised:
            session.client("s3", endpoint_url=runtime.url, config=config).put_object(
                Bucket=BUCKET, Key=PLANTED_KEY, Body=b"evil"
            )
        status, code = aws_code(raised.value)
        assert (ledger.answered(f"{name} PutObject", status), code) == (403, s3_code)
    an_hour_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=an_hour_ago):
        with pytest.raises(ClientError) as raised:
            runtime.client("sagemaker").create_processing_job(**SHELL_JOB)
        assert "Signature expired" in raised.value.response["Error"]["Message"]
        ledger.answered("skewed clock CreateProcessingJob", aws_code(raised.value)[0])
        with pytest.raises(ClientError) as raised:
            runtime.client("s3").put_object(Bucket=BUCKET, Key=PLANTED_KEY, Body=b"evil")
        status, code = aws_code(raised.value)
        assert (ledger.answered("skewed clock PutObject", status), code) == (
            403, "RequestTimeTooSkewed")  # fmt: skip


def test_presigned_urls_verify_and_expire(runtime, ledger):
    s3v4 = s3v4_client(runtime.url)
    params = {"Bucket": BUCKET, "Key": PLANTED_KEY}
    url = s3v4.generate_presigned_url("get_object", Params=params, ExpiresIn=1)
    assert curl(url) == (200, PLANTED_BODY.decode())
    status, _ = curl(url.replace(PLANTED_KEY.split("/")[-1], "other.tar.gz"))
    assert ledger.answered("presigned URL for another key", status) == 403
    put_url = s3v4.generate_presigned_url("put_object", Params=params, ExpiresIn=60)
    status, _ = curl("-X", "PUT", put_url.replace("X-Amz-Expires=60", "X-Amz-Expires=6000"),
                     "--data", "evil")  # fmt: skip
    assert ledger.answered("presigned PUT with a lengthened expiry", status) == 403
    time.sleep(2)
    status, text = curl(url)
    assert (ledger.answered("expired presigned URL", status), "Request has expired" in text) == (
        403, True)  # fmt: skip
    v2_url = runtime.client("s3").generate_presigned_url("get_object", Params=params)
    status, text = curl(v2_url)
    assert (ledger.answered("SigV2 presigned URL", status), "AWS4-HMAC-SHA256" in text) == (
        400, True)  # fmt: skip


def test_form_posts_need_a_policy_signed_with_the_runtime_key(runtime, ledger):
    target = f"{runtime.url}/{BUCKET}"
    fields = {"key": PLANTED_KEY}
    answer = requests.post(target, data=fields, files={"file": ("x", b"evil")}, timeout=10)
    assert ledger.answered("unsigned form POST", answer.status_code) == 403
    signed = s3v4_client(runtime.url).generate_presigned_post(BUCKET, "uploads/allowed.txt")
    for name, changed in {
        "form POST to another key": {"key": PLANTED_KEY},
        "form POST with a forged signature": {"x-amz-signature": "0" * 64},
        "form POST with an extra field": {"success_action_redirect": "http://evil.example"},
    }.items():
        answer = requests.post(target, data={**signed["fields"], **changed},
                               files={"file": ("x", b"evil")}, timeout=10)  # fmt: skip
        assert ledger.answered(name, answer.status_code) == 403, answer.text


def test_foreign_host_origin_and_preflight_are_refused(runtime, ledger):
    status, _ = curl("-H", "Host: attacker.example:80", f"{runtime.url}/_local/health")
    assert ledger.answered("DNS-rebinding Host header", status) == 403
    status, text = curl("-i", "-X", "OPTIONS", "-H", "Origin: http://attacker.example",
                        "-H", "Access-Control-Request-Method: POST", runtime.url)  # fmt: skip
    assert ledger.answered("CORS preflight", status) == 403
    assert "access-control-allow" not in text.lower()
    for name, header in {
        "signed request with a foreign Origin": {"Origin": "http://attacker.example"},
        "signed request from a cross-site fetch": {"Sec-Fetch-Site": "cross-site"},
        "signed request from a same-site page on another port": {"Sec-Fetch-Site": "same-site"},
    }.items():
        headers = {"X-Amz-Target": "SageMaker.CreateProcessingJob",
                   "Content-Type": "application/x-amz-json-1.1", **header}  # fmt: skip
        request = signed_request(runtime.url, json.dumps(SHELL_JOB).encode(), headers)
        assert ledger.answered(name, send(request)[0]) == 403


def send(request) -> tuple[int, dict]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def signed_json(runtime, target: str, body: bytes) -> tuple[int, dict]:
    headers = {"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"}
    return send(signed_request(runtime.url, body, headers))


def training_body(**changes) -> bytes:
    """A CreateTrainingJob body that is valid but for ``changes`` (None removes a member)."""
    body = {
        "TrainingJobName": "x", "RoleArn": "arn:aws:iam::123456789012:role/r",
        "AlgorithmSpecification": {"TrainingImage": "x", "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": "s3://b/o"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }  # fmt: skip
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def resources(count: int) -> dict:
    return {"InstanceType": "ml.m5.large", "InstanceCount": count, "VolumeSizeInGB": 1}


@pytest.mark.parametrize(
    ("name", "target", "body", "code", "named"),
    [
        ("invalid UTF-8", "SageMaker.ListTrainingJobs", b'{"NameContains": "\xff\xfe"}',
         "ValidationException", "UTF-8"),
        ("deeply nested JSON", "SageMaker.ListTrainingJobs",
         b'{"NameContains": ' + b"[" * 5000 + b"]" * 5000 + b"}", "ValidationException", "deeper"),
        ("nested 40 levels", "SageMaker.ListTrainingJobs",
         b'{"Tags": ' + b"[" * 40 + b"]" * 40 + b"}", "ValidationException", "deeper"),
        ("missing AlgorithmSpecification", "SageMaker.CreateTrainingJob",
         training_body(AlgorithmSpecification=None), "ValidationException",
         "'algorithmSpecification'"),
        ("missing ResourceConfig", "SageMaker.CreateTrainingJob",
         training_body(ResourceConfig=None), "ValidationException", "'resourceConfig'"),
        ("InstanceCount 0", "SageMaker.CreateTrainingJob",
         training_body(ResourceConfig=resources(0)), "ValidationException",
         "'resourceConfig.instanceCount'"),
        ("InstanceCount over the cap", "SageMaker.CreateTrainingJob",
         training_body(ResourceConfig=resources(50)), "ResourceLimitExceeded", "cap of 4"),
        ("CheckpointConfig.LocalPath with ..", "SageMaker.CreateTrainingJob",
         training_body(CheckpointConfig={"S3Uri": "s3://b/c", "LocalPath": "/opt/ml/../../etc"}),
         "ValidationException", "LocalPath"),
        ("pathological MetricDefinitions regex", "SageMaker.CreateTrainingJob",
         training_body(AlgorithmSpecification={
             "TrainingImage": "x", "TrainingInputMode": "File",
             "MetricDefinitions": [{"Name": "m", "Regex": "(a+)+$"}]}),
         "ValidationException", "nests an unbounded repeat"),
        ("garbage NextToken", "SageMaker.ListTrainingJobs", b'{"NextToken": "garbage"}',
         "ValidationException", "pagination token"),
        ("negative NextToken", "SageMaker.ListEndpoints", b'{"NextToken": "-5"}',
         "ValidationException", "pagination token"),
        ("ISO-string timestamp filter", "SageMaker.ListTrainingJobs",
         b'{"CreationTimeAfter": "2026-01-01T00:00:00Z"}', "ValidationException",
         "creationTimeAfter"),
        ("unknown X-Amz-Target", "DynamoDB_20120810.ListTables", b"{}",
         "UnknownOperationException", "DynamoDB_20120810.ListTables"),
    ],
)  # fmt: skip
def test_bad_api_inputs_get_a_clean_4xx(runtime, ledger, name, target, body, code, named):
    status, answer = signed_json(runtime, target, body)
    assert (ledger.answered(name, status), answer.get("__type")) == (400, code), answer
    assert named in answer["message"]


@pytest.mark.parametrize("group", [".", "..", "../..", "/aws/../.."])
def test_log_group_names_stay_inside_the_data_dir(runtime, ledger, group):
    before = set(runtime.data_dir.parent.iterdir())
    logs = runtime.client("logs")
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="..")
    logs.put_log_events(logGroupName=group, logStreamName="..",
                        logEvents=[{"timestamp": 1, "message": "x"}])  # fmt: skip
    escaped = set(runtime.data_dir.parent.iterdir()) - before
    assert ledger.found("files outside the data dir", len(escaped)) == 0
    names = [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]]
    assert group in names


def test_oversized_and_half_sent_requests(runtime, ledger):
    status, answer = signed_json(runtime, "SageMaker.ListTrainingJobs", b" " * (5 * 1024 * 1024))
    assert (ledger.answered("5 MiB SageMaker request", status), answer["__type"]) == (
        413, "RequestEntityTooLargeException")  # fmt: skip
    headers = {"Content-Type": "image/jpeg"}
    request = signed_request(runtime.url, b"x" * (6 * 1024 * 1024 + 1), headers,
                             path="/endpoints/any/invocations")  # fmt: skip
    assert ledger.answered("InvokeEndpoint body over 6 MB", send(request)[0]) == 413
    with socket.create_connection(("127.0.0.1", runtime.port), timeout=10) as half_sent:
        half_sent.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n{")
        started = time.monotonic()
        half_sent.recv(1024)  # the runtime drops the connection once its timeout passes
        assert time.monotonic() - started < 8
    ledger.answered("half-sent request (connection dropped)", 408)
    assert runtime.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []
