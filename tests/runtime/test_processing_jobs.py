"""Processing jobs in a real runtime process, driven with boto3 as a client would: statuses,
inputs and outputs in S3, logs, failure reasons, stops, limits, validation and a restart."""

import json
import re

import pytest
from processing_support import (
    processing_log_messages,
    processing_request,
    upload_processing_script,
    wait_for_processing,
    wait_for_processing_line,
)
from runtime_support import (
    BUCKET,
    SAGEMAKER,
    RuntimeProcess,
    process_alive,
    raw_call,
    shape_violations,
)

pytestmark = pytest.mark.e2e  # starts real processes

# Reads every file of its input folder, writes their total size to the output folder, and leaves
# an exit message: each path reaches it as a container path, in an argument or the environment.
WORD_COUNT_SCRIPT = """
import argparse, os, pathlib
parser = argparse.ArgumentParser()
parser.add_argument("--input")
parser.add_argument("--output")
args = parser.parse_args()
files = sorted(p for p in pathlib.Path(args.input).rglob("*") if p.is_file())
total = sum(len(p.read_bytes()) for p in files)
print(f"read {len(files)} files, {total} bytes", flush=True)
pathlib.Path(args.output, "summary", "total.txt").parent.mkdir(parents=True)
pathlib.Path(args.output, "summary", "total.txt").write_text(f"{os.environ['GREETING']} {total}")
pathlib.Path(os.environ["MESSAGE_FILE"]).write_text("counted " + str(total))
"""

FAILING_SCRIPT = """
import sys
print("about to fail", flush=True)
print("ValueError: the input is corrupt", file=sys.stderr)
sys.exit(3)
"""

SLEEPING_SCRIPT = """
import os, time
print(f"sleeping pid={os.getpid()}", flush=True)
time.sleep(600)
"""


def started_pid(logs, name: str) -> int:
    messages = wait_for_processing_line(logs, name, "sleeping pid=")
    return int(next(m for m in messages if "sleeping pid=" in m).split("=")[1])


def test_a_job_reads_its_inputs_and_uploads_its_outputs(runtime, sagemaker, s3, logs):
    name = "proc-word-count"
    upload_processing_script(s3, BUCKET, name, WORD_COUNT_SCRIPT)
    request = processing_request(
        name,
        BUCKET,
        ["--input", "/opt/ml/processing/input/data", "--output=/opt/ml/processing/output/counts"],
        Environment={"GREETING": "total", "MESSAGE_FILE": "/opt/ml/output/message"},
    )
    request["ProcessingInputs"].append(
        {
            "InputName": "data",
            "S3Input": {
                "S3Uri": f"s3://{BUCKET}/data/train",
                "LocalPath": "/opt/ml/processing/input/data",
                "S3DataType": "S3Prefix",
            },
        }
    )
    request["ProcessingOutputConfig"] = {
        "Outputs": [
            {
                "OutputName": "counts",
                "S3Output": {
                    "S3Uri": f"s3://{BUCKET}/processed/{name}",
                    "LocalPath": "/opt/ml/processing/output/counts",
                    "S3UploadMode": "EndOfJob",
                },
            }
        ]
    }
    arn = sagemaker.create_processing_job(**request)["ProcessingJobArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{name}"

    described = wait_for_processing(sagemaker, name)
    assert described["ProcessingJobStatus"] == "Completed", described.get("FailureReason")
    assert described["ExitMessage"] == "counted 2"
    assert described["ProcessingInputs"] == request["ProcessingInputs"]
    assert described["Environment"] == request["Environment"]  # as sent, not rewritten
    assert described["ProcessingStartTime"] <= described["ProcessingEndTime"]
    output = s3.get_object(Bucket=BUCKET, Key=f"processed/{name}/summary/total.txt")
    assert output["Body"].read() == b"total 2"

    stream, messages = processing_log_messages(logs, name)
    assert re.fullmatch(rf"{name}/algo-1-\d{{10}}", stream)
    assert "read 2 files, 2 bytes" in messages
    # The job's tree is gone once its outputs are in S3.
    assert not (runtime.data_dir / "processing-jobs" / name).exists()

    # On the wire the description fits botocore's output shape exactly.
    code, raw = raw_call(runtime, "SageMaker.DescribeProcessingJob", {"ProcessingJobName": name})
    assert code == 200
    describe_shape = SAGEMAKER.operation_model("DescribeProcessingJob").output_shape
    assert shape_violations(describe_shape, raw) == []


def test_a_failing_job_reports_its_exit_code_and_stderr(runtime, sagemaker, s3, logs):
    name = "proc-failing"
    upload_processing_script(s3, BUCKET, name, FAILING_SCRIPT)
    request = processing_request(name, BUCKET)
    request["ProcessingOutputConfig"] = {
        "Outputs": [
            {
                "OutputName": "never",
                "S3Output": {
                    "S3Uri": f"s3://{BUCKET}/processed/{name}",
                    "LocalPath": "/opt/ml/processing/output",
                    "S3UploadMode": "EndOfJob",
                },
            }
        ]
    }
    sagemaker.create_processing_job(**request)
    described = wait_for_processing(sagemaker, name)
    assert described["ProcessingJobStatus"] == "Failed"
    assert described["FailureReason"] == (
        "AlgorithmError: the processing container exited with code 3. Last lines of its stderr:\n"
        "ValueError: the input is corrupt"
    )
    assert "ExitMessage" not in described
    assert "about to fail" in processing_log_messages(logs, name)[1]
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"processed/{name}/")
    assert listed["KeyCount"] == 0


def test_a_missing_input_fails_the_job_with_a_client_error(runtime, sagemaker, s3):
    name = "proc-missing-input"
    upload_processing_script(s3, BUCKET, name, "print('never runs')\n")
    request = processing_request(name, BUCKET)
    request["ProcessingInputs"][0]["S3Input"]["S3Uri"] = f"s3://{BUCKET}/absent/"
    sagemaker.create_processing_job(**request)
    described = wait_for_processing(sagemaker, name)
    assert described["ProcessingJobStatus"] == "Failed"
    assert described["FailureReason"] == (
        f"ClientError: ProcessingInput 'code': s3://{BUCKET}/absent/: no objects under this S3 URI"
    )


def test_stopping_a_job_ends_its_process_group(runtime, sagemaker, s3, logs):
    name = "proc-stopped"
    upload_processing_script(s3, BUCKET, name, SLEEPING_SCRIPT)
    sagemaker.create_processing_job(**processing_request(name, BUCKET))
    pid = started_pid(logs, name)

    sagemaker.stop_processing_job(ProcessingJobName=name)
    status = sagemaker.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"]
    assert status in ("Stopping", "Stopped")
    assert wait_for_processing(sagemaker, name)["ProcessingJobStatus"] == "Stopped"
    assert not process_alive(pid)
    with pytest.raises(sagemaker.exceptions.ClientError) as refused:
        sagemaker.stop_processing_job(ProcessingJobName=name)
    assert refused.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "The request was rejected because the processing job is in status Stopped.",
    }


def test_a_job_past_its_max_runtime_is_stopped_and_fails(runtime, sagemaker, s3, logs):
    name = "proc-too-long"
    upload_processing_script(s3, BUCKET, name, SLEEPING_SCRIPT)
    request = processing_request(name, BUCKET, StoppingCondition={"MaxRuntimeInSeconds": 1})
    sagemaker.create_processing_job(**request)
    pid = started_pid(logs, name)
    described = wait_for_processing(sagemaker, name, timeout=30)
    assert described["ProcessingJobStatus"] == "Failed"
    assert described["FailureReason"] == (
        "ClientError: the job ran past StoppingCondition.MaxRuntimeInSeconds (1 s) and was stopped"
    )
    assert not process_alive(pid)


def client_error(call, **request) -> dict:
    with pytest.raises(Exception) as raised:
        call(**request)
    return raised.value.response["Error"]


def test_invalid_requests_are_refused_with_sagemaker_errors(runtime, sagemaker, s3):
    bad_name = client_error(
        sagemaker.create_processing_job, **processing_request("bad_name", BUCKET)
    )
    assert bad_name == {
        "Code": "ValidationException",
        "Message": "1 validation error detected: Value 'bad_name' at 'processingJobName' failed "
        "to satisfy constraint: Member must satisfy regular expression pattern: "
        "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
    }
    outside = processing_request("proc-outside", BUCKET)
    outside["ProcessingInputs"][0]["S3Input"]["LocalPath"] = "/opt/ml/input/../../etc"
    assert client_error(sagemaker.create_processing_job, **outside)["Message"] == (
        "ProcessingInputs.1.S3Input.LocalPath '/opt/ml/input/../../etc' must be an absolute "
        "path under /opt/ml/processing/."
    )
    pipe = processing_request("proc-pipe", BUCKET)
    pipe["ProcessingInputs"][0]["S3Input"]["S3InputMode"] = "Pipe"
    assert client_error(sagemaker.create_processing_job, **pipe)["Message"] == (
        "ProcessingInputs.1.S3Input.S3InputMode Pipe (use File) is not supported by the local "
        "SageMaker runtime."
    )
    twice = processing_request("proc-twice", BUCKET)
    twice["ProcessingInputs"].append(twice["ProcessingInputs"][0])
    assert client_error(sagemaker.create_processing_job, **twice)["Message"] == (
        "ProcessingInputs InputName must be unique; repeated: code."
    )
    unknown = client_error(sagemaker.describe_processing_job, ProcessingJobName="proc-unknown")
    assert unknown == {"Code": "ValidationException", "Message": "Requested resource not found."}
    assert client_error(sagemaker.stop_processing_job, ProcessingJobName="proc-unknown") == unknown

    name = "proc-duplicate"
    upload_processing_script(s3, BUCKET, name, "print('once')\n")
    sagemaker.create_processing_job(**processing_request(name, BUCKET))
    duplicate = client_error(sagemaker.create_processing_job, **processing_request(name, BUCKET))
    assert duplicate == {
        "Code": "ResourceInUse",
        "Message": "Job name must be unique within an AWS account and region, and a job with this "
        f"name already exists (arn:aws:sagemaker:us-east-1:123456789012:processing-job/{name})",
    }
    assert wait_for_processing(sagemaker, name)["ProcessingJobStatus"] == "Completed"


def test_list_filters_sorts_and_pages(runtime, sagemaker, s3):
    names = [f"proc-listed-{n}" for n in range(3)]
    for name in names:
        upload_processing_script(s3, BUCKET, name, "print('listed')\n")
        sagemaker.create_processing_job(**processing_request(name, BUCKET))
    for name in names:
        wait_for_processing(sagemaker, name)

    first = sagemaker.list_processing_jobs(
        NameContains="LISTED", SortBy="Name", SortOrder="Ascending", MaxResults=2
    )
    assert [s["ProcessingJobName"] for s in first["ProcessingJobSummaries"]] == names[:2]
    rest = sagemaker.list_processing_jobs(
        NameContains="listed",
        SortBy="Name",
        SortOrder="Ascending",
        MaxResults=2,
        NextToken=first["NextToken"],
    )
    assert [s["ProcessingJobName"] for s in rest["ProcessingJobSummaries"]] == names[2:]
    assert "NextToken" not in rest
    summary = rest["ProcessingJobSummaries"][0]
    assert set(summary) == {
        "ProcessingJobName",
        "ProcessingJobArn",
        "CreationTime",
        "ProcessingEndTime",
        "LastModifiedTime",
        "ProcessingJobStatus",
    }
    failed = sagemaker.list_processing_jobs(StatusEquals="Failed")["ProcessingJobSummaries"]
    assert names[0] not in [s["ProcessingJobName"] for s in failed]


def test_jobs_cut_off_by_a_crash_or_a_shutdown_fail_and_their_processes_die(tmp_path):
    """Also: an image without a local Python fails its job with a ClientError naming it."""
    missing_python = json.dumps({"*/no-python:*": str(tmp_path / "no" / "python")})
    runtime = RuntimeProcess(tmp_path / "state")
    runtime.start({"LOCAL_SAGEMAKER_IMAGE_PYTHONS": missing_python})
    try:
        s3 = runtime.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        for name in ("proc-crashed", "proc-shut-down", "proc-no-python"):
            upload_processing_script(s3, BUCKET, name, SLEEPING_SCRIPT)
        no_python = processing_request("proc-no-python", BUCKET)
        no_python["AppSpecification"]["ImageUri"] = "123456789012.dkr.ecr.aws/no-python:1"
        runtime.client("sagemaker").create_processing_job(**no_python)
        described = wait_for_processing(runtime.client("sagemaker"), "proc-no-python")
        assert described["FailureReason"] == (
            "ClientError: no Python for image '123456789012.dkr.ecr.aws/no-python:1': "
            f"{tmp_path}/no/python does not exist (set LOCAL_SAGEMAKER_CONTAINER_PYTHON or "
            "LOCAL_SAGEMAKER_IMAGE_PYTHONS)"
        )

        for name, end_runtime, reason in (
            ("proc-crashed", runtime.kill_hard, "restarted"),
            ("proc-shut-down", runtime.stop, "was shut down"),
        ):
            runtime.client("sagemaker").create_processing_job(**processing_request(name, BUCKET))
            pid = started_pid(runtime.client("logs"), name)
            end_runtime()
            runtime.start()
            described = runtime.client("sagemaker").describe_processing_job(ProcessingJobName=name)
            assert described["ProcessingJobStatus"] == "Failed"
            assert described["FailureReason"] == (
                f"InternalServerError: the local SageMaker runtime {reason} while the job was "
                "running"
            )
            assert not process_alive(pid)
            # What the job logged before is still there.
            assert "sleeping pid=" in processing_log_messages(runtime.client("logs"), name)[1][0]
    finally:
        runtime.stop()
