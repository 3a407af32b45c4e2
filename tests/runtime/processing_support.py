"""Helpers for the processing-job tests: requests running small scripts, and status polling."""

import time

from runtime_support import PYTORCH_IMAGE, ROLE_ARN, TERMINAL_STATUSES, poll_until

CODE_PATH = "/opt/ml/processing/input/code"
LOG_GROUP = "/aws/sagemaker/ProcessingJobs"


def processing_request(name: str, bucket: str, arguments=(), **overrides) -> dict:
    """A CreateProcessingJob request running ``s3://<bucket>/processing-code/<name>/script.py``
    (upload it with :func:`upload_processing_script`) with ``arguments``."""
    request = {
        "ProcessingJobName": name,
        "RoleArn": ROLE_ARN,
        "AppSpecification": {
            "ImageUri": PYTORCH_IMAGE,
            "ContainerEntrypoint": ["python3", f"{CODE_PATH}/script.py"],
        },
        "ProcessingInputs": [
            {
                "InputName": "code",
                "S3Input": {
                    "S3Uri": f"s3://{bucket}/processing-code/{name}",
                    "LocalPath": CODE_PATH,
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            }
        ],
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 5,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 120},
    }
    if arguments:  # the API refuses an empty ContainerArguments list
        request["AppSpecification"]["ContainerArguments"] = list(arguments)
    request.update(overrides)
    return request


def upload_processing_script(s3, bucket: str, name: str, script: str) -> None:
    s3.put_object(Bucket=bucket, Key=f"processing-code/{name}/script.py", Body=script.encode())


def wait_for_processing(sagemaker, name: str, statuses=TERMINAL_STATUSES, timeout=90) -> dict:
    """Poll DescribeProcessingJob until its status is one of ``statuses``; returns it."""
    return poll_until(
        name, lambda: sagemaker.describe_processing_job(ProcessingJobName=name),
        "ProcessingJobStatus", statuses, timeout,
    )  # fmt: skip


def processing_log_messages(logs, name: str) -> tuple[str, list[str]]:
    """The job's log stream name and its messages so far (no stream yet: ``("", [])``)."""
    try:
        streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{name}/")
    except logs.exceptions.ResourceNotFoundException:
        return "", []
    if not streams["logStreams"]:
        return "", []
    stream = streams["logStreams"][0]["logStreamName"]
    events = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream, startFromHead=True)
    return stream, [event["message"] for event in events["events"]]


def wait_for_processing_line(logs, name: str, text: str, timeout=30) -> list[str]:
    """Wait until the job logged a line containing ``text``; returns its messages."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = processing_log_messages(logs, name)[1]
        if any(text in message for message in messages):
            return messages
        time.sleep(0.1)
    raise TimeoutError(f"{name} logged no line containing {text!r} within {timeout} s")
