"""Transform job life cycle on the backend: restart after a crash, model checks."""

from __future__ import annotations

import time

import pytest
from hosting_support import create_bucket, model_tarball, start_backend, wait_for
from runtime_support import RuntimeProcess, process_alive

from local_sagemaker.errors import ValidationException
from local_sagemaker.sagemaker.jobs import interruption_reason
from local_sagemaker.sagemaker.transform import LOG_GROUP, TransformJobs
from local_sagemaker.store import RecordStore

BUCKET = "batch"


def transform_request(name: str) -> dict:
    return {
        "TransformJobName": name,
        "ModelName": "scorer",
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/in/"}
            },
            "ContentType": "application/json",
        },
        "TransformOutput": {"S3OutputPath": f"s3://{BUCKET}/out/"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }


@pytest.mark.e2e
def test_kill_9_of_the_runtime_fails_the_job_and_its_server_is_killed_at_restart(tmp_path):
    state = tmp_path / "state"
    runtime = RuntimeProcess(state).start()
    s3, sagemaker = runtime.client("s3"), runtime.client("sagemaker")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="model.tar.gz", Body=model_tarball())
    for number in range(3):
        s3.put_object(Bucket=BUCKET, Key=f"in/{number}.json", Body=b'{"sleep": 5}')
    sagemaker.create_model(
        ModelName="scorer",
        PrimaryContainer={"Image": "local", "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz"},
    )
    sagemaker.create_transform_job(**transform_request("interrupted"))
    wait_for_transform_log(runtime.client("logs"), "interrupted", "Transforming ")
    [record] = RecordStore(state).list(TransformJobs.spec.kind)
    [server] = record["processes"]
    pid = server["pid"]
    runtime.kill_hard()
    assert process_alive(pid)  # orphaned until the next runtime starts
    restarted = RuntimeProcess(state).start()
    try:
        assert not process_alive(pid)
        job = restarted.client("sagemaker").describe_transform_job(TransformJobName="interrupted")
        assert (job["TransformJobStatus"], job["FailureReason"]) == (
            "Failed",
            interruption_reason("restarted"),
        )
    finally:
        restarted.stop()


def wait_for_transform_log(logs, job_name: str, text: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            streams = logs.describe_log_streams(
                logGroupName=LOG_GROUP, logStreamNamePrefix=f"{job_name}/"
            )["logStreams"]
        except logs.exceptions.ResourceNotFoundException:  # no job has logged yet
            streams = []
        if streams:
            events = logs.get_log_events(
                logGroupName=LOG_GROUP, logStreamName=streams[0]["logStreamName"]
            )["events"]
            if any(text in event["message"] for event in events):
                return
        time.sleep(0.1)
    raise AssertionError(f"no log line with {text!r} for {job_name} within {timeout_s} s")


def test_unknown_model_and_job_are_validation_errors(tmp_path):
    backend = start_backend(tmp_path / "state")
    try:
        with pytest.raises(
            ValidationException, match=r'Could not find model "arn:.*:model/scorer"'
        ):
            backend.transform.create_transform_job(transform_request("orphan"))
        with pytest.raises(ValidationException, match="Could not find transform job"):
            backend.transform.describe_transform_job({"TransformJobName": "missing"})
    finally:
        backend.shutdown()


def test_completed_job_reports_times(tmp_path):
    backend = start_backend(tmp_path / "state")
    try:
        create_bucket(backend.hosting.s3, BUCKET)
        backend.hosting.s3.write(BUCKET, "model.tar.gz", model_tarball())
        backend.hosting.s3.write(BUCKET, "in/rows.json", b"[[1.0, 0.0]]")
        backend.hosting.create_model(
            {
                "ModelName": "scorer",
                "PrimaryContainer": {"Image": "x", "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz"},
            }
        )
        backend.transform.create_transform_job(transform_request("quick"))
        job = wait_for(
            lambda: backend.transform.describe_transform_job({"TransformJobName": "quick"}),
            "TransformJobStatus",
            ("Completed", "Failed", "Stopped"),
        )
        assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
        assert job["CreationTime"] <= job["TransformStartTime"] <= job["TransformEndTime"]
        assert backend.hosting.s3.read(BUCKET, "out/rows.json.out").startswith(b'[{"label": "cat"')
        assert backend.transform.record("quick")["processes"] == []  # its server is gone
    finally:
        backend.shutdown()
