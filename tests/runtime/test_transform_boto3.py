"""Transform jobs through a real runtime process, seen by boto3."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError, WaiterError
from hosting_support import FAST_WAITER, expected_label, model_tarball, running_runtime

pytestmark = pytest.mark.e2e
ROWS = [[1.0, 0.0], [0.0, 2.0], [-1.0, -4.0]]


def jsonl(rows) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    root = tmp_path_factory.mktemp("transform-boto3")
    with running_runtime(root / "state") as runtime:
        s3, sagemaker = runtime.client("s3"), runtime.client("sagemaker")
        s3.create_bucket(Bucket="data")
        s3.put_object(Bucket="data", Key="model/model.tar.gz", Body=model_tarball())
        sagemaker.create_model(
            ModelName="scorer",
            ExecutionRoleArn="arn:aws:iam::123456789012:role/local",
            PrimaryContainer={"Image": "local", "ModelDataUrl": "s3://data/model/model.tar.gz"},
        )
        yield {"s3": s3, "sagemaker": sagemaker, "logs": runtime.client("logs")}


def start_job(sagemaker, name: str, input_prefix: str, **extra) -> dict:
    sagemaker.create_transform_job(
        TransformJobName=name,
        ModelName="scorer",
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_prefix}},
            "ContentType": "application/jsonlines",
            "SplitType": "Line",
        },
        TransformOutput={
            "S3OutputPath": f"s3://data/output/{name}",
            "Accept": "application/jsonlines",
            "AssembleWith": "Line",
        },
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        **extra,
    )
    return sagemaker


def wait_for_job(sagemaker, name: str) -> dict:
    sagemaker.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName=name, WaiterConfig=FAST_WAITER
    )
    return sagemaker.describe_transform_job(TransformJobName=name)


def read_labels(s3, key: str) -> list[str]:
    body = s3.get_object(Bucket="data", Key=key)["Body"].read()
    return [json.loads(line)["label"] for line in body.splitlines()]


@pytest.fixture(scope="module")
def valid_job(clients) -> dict:
    """The job score-valid over two objects, one in a subfolder, run once for the module's tests
    (each asks for it, so that each runs alone too: under -k or on any xdist worker)."""
    s3, sagemaker = clients["s3"], clients["sagemaker"]
    s3.put_object(Bucket="data", Key="valid/a.jsonl", Body=jsonl(ROWS))
    s3.put_object(Bucket="data", Key="valid/sub/b.jsonl", Body=jsonl(ROWS[::-1]))
    start_job(sagemaker, "score-valid", "s3://data/valid/", MaxConcurrentTransforms=2)
    return wait_for_job(sagemaker, "score-valid")


def test_every_object_gets_an_out_file_with_subfolders_kept(clients, valid_job):
    s3, sagemaker, job = clients["s3"], clients["sagemaker"], valid_job
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert job["TransformOutput"]["S3OutputPath"] == "s3://data/output/score-valid"
    assert job["TransformStartTime"] <= job["TransformEndTime"]
    expected = [expected_label(row) for row in ROWS]
    assert read_labels(s3, "output/score-valid/a.jsonl.out") == expected
    assert read_labels(s3, "output/score-valid/sub/b.jsonl.out") == expected[::-1]
    summaries = sagemaker.list_transform_jobs(NameContains="score-valid")["TransformJobSummaries"]
    assert [s["TransformJobStatus"] for s in summaries] == ["Completed"]


def test_failed_objects_are_listed_and_others_still_written(clients):
    s3, sagemaker = clients["s3"], clients["sagemaker"]
    s3.put_object(Bucket="data", Key="mixed/good.jsonl", Body=jsonl(ROWS))
    s3.put_object(Bucket="data", Key="mixed/bad.jsonl", Body=b'{"raise": "corrupt row"}\n')
    start_job(sagemaker, "score-mixed", "s3://data/mixed/", BatchStrategy="SingleRecord")
    job = wait_for_job_failed(sagemaker, "score-mixed")
    assert job["TransformJobStatus"] == "Failed"
    assert "1 of 2 input objects failed" in job["FailureReason"]
    assert "mixed/bad.jsonl: The model answered 500: corrupt row" in job["FailureReason"]
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket="data", Prefix="output/score-mixed/")["Contents"]
    ]
    assert keys == ["output/score-mixed/good.jsonl.out"]


def wait_for_job_failed(sagemaker, name: str) -> dict:
    """The completed-or-stopped waiter raises on Failed; poll Describe until it is terminal."""
    with pytest.raises(WaiterError, match="Failed"):
        wait_for_job(sagemaker, name)
    return sagemaker.describe_transform_job(TransformJobName=name)


def test_stop_transform_job_ends_stopped(clients):
    s3, sagemaker = clients["s3"], clients["sagemaker"]
    for number in range(6):
        s3.put_object(Bucket="data", Key=f"slow/{number}.jsonl", Body=b'{"sleep": 0.5}\n')
    start_job(sagemaker, "score-slow", "s3://data/slow/")
    wait_until_objects_written(s3, "output/score-slow/", 1)
    sagemaker.stop_transform_job(TransformJobName="score-slow")
    job = wait_for_job(sagemaker, "score-slow")
    assert job["TransformJobStatus"] == "Stopped"
    with pytest.raises(ClientError, match="in status Stopped"):
        sagemaker.stop_transform_job(TransformJobName="score-slow")


def wait_until_objects_written(s3, prefix: str, count: int) -> None:
    for _ in range(100):
        if s3.list_objects_v2(Bucket="data", Prefix=prefix).get("KeyCount", 0) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} objects under {prefix}")


def test_job_log_stream_and_errors(clients, valid_job):
    sagemaker, logs = clients["sagemaker"], clients["logs"]
    streams = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TransformJobs", logStreamNamePrefix="score-valid/"
    )["logStreams"]
    assert len(streams) == 1 and streams[0]["logStreamName"].startswith("score-valid/i-")
    with pytest.raises(ClientError) as raised:
        start_job(sagemaker, "score-valid", "s3://data/valid/")
    assert raised.value.response["Error"]["Code"] == "ResourceInUse"
    with pytest.raises(ClientError, match="SplitType RecordIO is not supported"):
        sagemaker.create_transform_job(
            TransformJobName="recordio",
            ModelName="scorer",
            TransformInput={
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/v/"}},
                "SplitType": "RecordIO",
            },
            TransformOutput={"S3OutputPath": "s3://data/out"},
            TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        )
