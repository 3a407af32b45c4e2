"""Training jobs driven through boto3 against a real runtime process: lifecycle, container
contract, failures, stop, max runtime, names and listing."""

import io
import json
import shutil
import tarfile
import tempfile
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from runtime_support import (
    BUCKET,
    job_log_messages,
    process_alive,
    sourcedir_archive,
    start_script_job,
    training_request,
    upload_script,
    wait_for_log_line,
    wait_for_status,
)

pytestmark = pytest.mark.e2e

CONTRACT_SCRIPT = r"""
import json, os, sys
print("argv", json.dumps(sys.argv[1:]))
print("env", json.dumps({k: v for k, v in os.environ.items() if k.startswith("SM_")}))
train = os.environ["SM_CHANNEL_TRAIN"]
print("files", json.dumps(sorted(
    os.path.relpath(os.path.join(d, f), train) for d, _, fs in os.walk(train) for f in fs)))
for epoch in (1, 2, 3):
    print(f"#metrics epoch={epoch} train_loss={1.0 / epoch:.4f} train_acc=0.5 "
          f"valid_loss=0.9 valid_acc={0.25 * epoch:.4f} epoch_time=0.1 images_per_sec=10")
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.pt"), "w") as handle:
    handle.write("weights")
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "report.txt"), "w") as handle:
    handle.write("report")
print("warning on stderr", file=sys.stderr)
"""


def start_job(runtime, name, script, **overrides):
    return start_script_job(runtime, BUCKET, name, script, **overrides)


def test_completed_job_follows_the_container_contract(runtime, sagemaker, s3, logs):
    hyperparameters = {"lr": "0.01", "batch-size": "8", "backbone": '"simplecnn"', "x": "1"}
    request = training_request("contract", BUCKET, CONTRACT_SCRIPT)
    start_job(
        runtime,
        "contract",
        CONTRACT_SCRIPT,
        HyperParameters={**request["HyperParameters"], **hyperparameters},
    )
    described = wait_for_status(sagemaker, "contract")
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    assert described["SecondaryStatus"] == "Completed"
    assert [t["Status"] for t in described["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    assert described["TrainingJobArn"] == (
        "arn:aws:sagemaker:us-east-1:123456789012:training-job/contract"
    )
    # AWS always describes the output key, "" when none was given (SDK v2's attach reads it).
    assert described["OutputDataConfig"]["KmsKeyId"] == ""
    final = {m["MetricName"]: m["Value"] for m in described["FinalMetricDataList"]}
    assert final == {"valid_acc": 0.75, "train_loss": pytest.approx(0.3333)}

    messages = wait_for_log_line(logs, "contract", "warning on stderr")
    argv = json.loads(next(m for m in messages if m.startswith("argv "))[5:])
    assert argv == ["--backbone", "simplecnn", "--batch-size", "8", "--lr", "0.01", "-x", "1"]
    env = json.loads(next(m for m in messages if m.startswith("env "))[4:])
    assert env["SM_CHANNELS"] == '["train"]'
    assert env["SM_HPS"] == '{"backbone":"simplecnn","batch-size":8,"lr":0.01,"x":1}'
    assert env["SM_HP_BACKBONE"] == "simplecnn"
    assert env["SM_CURRENT_HOST"] == "algo-1" and env["SM_HOSTS"] == '["algo-1"]'
    assert env["SM_MODEL_DIR"].endswith("jobs/contract/algo-1/model")
    assert env["SM_USER_ENTRY_POINT"] == "train.py"
    files = json.loads(next(m for m in messages if m.startswith("files "))[6:])
    assert files == ["one.txt", "sub/two.txt"]

    artifact = described["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == f"s3://{BUCKET}/output/contract/output/model.tar.gz"
    body = s3.get_object(Bucket=BUCKET, Key="output/contract/output/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert tar.getnames() == ["model.pt"]
    assert s3.head_object(Bucket=BUCKET, Key="output/contract/output/output.tar.gz")


def test_failing_script_reports_algorithm_error_with_stderr(runtime, sagemaker):
    script = (
        'import sys\nprint("about to fail")\nraise SystemExit("dataset is empty: no classes")\n'
    )
    start_job(runtime, "fails", script)
    described = wait_for_status(sagemaker, "fails")
    assert described["TrainingJobStatus"] == "Failed"
    assert described["SecondaryStatus"] == "Failed"
    reason = described["FailureReason"]
    assert reason.startswith("AlgorithmError: ExecuteUserScriptError:\nExitCode 1\nErrorMessage ")
    assert "dataset is empty: no classes" in reason
    assert 'Command "' in reason and "train.py" in reason


def test_failure_file_written_by_the_script_wins(runtime, sagemaker):
    script = (
        "import os, sys\n"
        "open(os.path.join(os.environ['SM_OUTPUT_DIR'], 'failure'), 'w').write('Out of patience')\n"
        "sys.exit(3)\n"
    )
    start_job(runtime, "own-failure", script)
    described = wait_for_status(sagemaker, "own-failure")
    assert described["FailureReason"] == "AlgorithmError: Out of patience"


def test_stop_training_job_ends_the_process_group(runtime, sagemaker, s3, logs):
    script = (
        "import os, subprocess, sys, time\n"
        "open(os.path.join(os.environ['SM_MODEL_DIR'], 'partial.pt'), 'w').write('epoch 1')\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print('child', child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    start_job(runtime, "stopped", script)
    messages = wait_for_log_line(logs, "stopped", "child ")
    child_pid = int(next(m for m in messages if m.startswith("child ")).split()[1])
    sagemaker.stop_training_job(TrainingJobName="stopped")
    assert sagemaker.describe_training_job(TrainingJobName="stopped")["TrainingJobStatus"] in (
        "Stopping",
        "Stopped",
    )
    described = wait_for_status(sagemaker, "stopped")
    assert described["TrainingJobStatus"] == "Stopped"
    assert described["SecondaryStatus"] == "Stopped"
    assert not process_alive(child_pid), "the script's own child outlived StopTrainingJob"
    # As SageMaker does, what the stopped job saved is uploaded.
    assert s3.head_object(Bucket=BUCKET, Key="output/stopped/output/model.tar.gz")
    with pytest.raises(ClientError, match="training job is in status Stopped"):
        sagemaker.stop_training_job(TrainingJobName="stopped")


def test_job_ends_when_its_script_exits_even_if_it_left_children(runtime, sagemaker, logs):
    script = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print('orphan', child.pid, flush=True)\n"
    )
    start_job(runtime, "orphans", script)
    described = wait_for_status(sagemaker, "orphans", timeout=30)
    assert described["TrainingJobStatus"] == "Completed"
    orphan = int(wait_for_log_line(logs, "orphans", "orphan ")[0].split()[1])
    assert not process_alive(orphan), "a container's processes end with its main process"


def test_max_runtime_stops_the_job(runtime, sagemaker):
    script = "import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n"
    start_job(runtime, "too-long", script, StoppingCondition={"MaxRuntimeInSeconds": 2})
    described = wait_for_status(sagemaker, "too-long", timeout=30)
    assert described["TrainingJobStatus"] == "Stopped"
    assert described["SecondaryStatus"] == "MaxRuntimeExceeded"


def test_missing_program_fails_with_a_client_error(runtime, sagemaker):
    request = training_request("no-program", BUCKET, "")
    request["HyperParameters"] = {
        "sagemaker_program": '"missing.py"',
        "sagemaker_submit_directory": request["HyperParameters"]["sagemaker_submit_directory"],
    }
    upload_script(runtime.client("s3"), BUCKET, "no-program", "print('x')")
    sagemaker.create_training_job(**request)
    described = wait_for_status(sagemaker, "no-program")
    assert described["TrainingJobStatus"] == "Failed"
    assert (
        "sagemaker_program 'missing.py' is not in the source directory"
        in (described["FailureReason"])
    )


@pytest.mark.parametrize(
    ("requirements", "status"),
    [("smdebug==1.0.34\nnumpy<2  # as the image has it\n", "Completed"),
     ("left-pad==1.0\nnumpy>=99\n", "Failed")],
)  # fmt: skip
def test_requirements_txt_must_be_satisfied_by_the_container_environment(
    runtime, sagemaker, requirements, status
):
    name = f"requirements-{status.lower()}"
    upload = {"train.py": "print('ran')\n", "requirements.txt": requirements}
    runtime.client("s3").put_object(
        Bucket=BUCKET, Key=f"code/{name}/sourcedir.tar.gz", Body=sourcedir_archive(upload)
    )
    sagemaker.create_training_job(**training_request(name, BUCKET, ""))
    described = wait_for_status(sagemaker, name)
    assert described["TrainingJobStatus"] == status
    if status == "Failed":
        reason = described["FailureReason"]
        assert reason.startswith("ClientError: requirements.txt of the source dir is not satisfied")
        assert "left-pad==1.0 (not installed)" in reason
        assert "numpy>=99 (numpy 1." in reason and "is installed)" in reason


def test_container_entrypoint_runs_in_the_image_python(runtime, sagemaker, logs):
    request = training_request("entrypoint", BUCKET, "")
    del request["HyperParameters"]
    request["AlgorithmSpecification"]["ContainerEntrypoint"] = ["python3", "-c"]
    request["AlgorithmSpecification"]["ContainerArguments"] = [
        "import sys; print('entrypoint ran in', sys.prefix)"
    ]
    sagemaker.create_training_job(**request)
    assert wait_for_status(sagemaker, "entrypoint")["TrainingJobStatus"] == "Completed"
    [line] = wait_for_log_line(logs, "entrypoint", "entrypoint ran in")
    assert line.endswith(".venvs/container"), "the image's Python is the container environment"


def test_missing_channel_data_fails_naming_the_uri(runtime, sagemaker):
    channel = {
        "ChannelName": "train",
        "DataSource": {
            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/nothing/here"}
        },
    }
    start_job(runtime, "no-data", "print('x')", InputDataConfig=[channel])
    described = wait_for_status(sagemaker, "no-data")
    assert described["FailureReason"] == (
        f"ClientError: channel 'train': s3://{BUCKET}/nothing/here: no objects under this S3 URI"
    )


def test_duplicate_name_is_resource_in_use(runtime, sagemaker):
    start_job(runtime, "twice", "print('once')")
    with pytest.raises(ClientError) as raised:
        sagemaker.create_training_job(**training_request("twice", BUCKET, ""))
    assert raised.value.response["Error"]["Code"] == "ResourceInUse"
    assert raised.value.response["Error"]["Message"] == (
        "Training job names must be unique within an AWS account and region, and a training job "
        "with this name already exists "
        "(arn:aws:sagemaker:us-east-1:123456789012:training-job/twice)"
    )


def test_unknown_job_is_a_validation_exception(sagemaker):
    with pytest.raises(ClientError) as raised:
        sagemaker.describe_training_job(TrainingJobName="never-created")
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert raised.value.response["Error"]["Message"] == "Requested resource not found."


def test_invalid_name_gets_aws_validation_text(sagemaker):
    request = training_request("bad_name", BUCKET, "")
    with pytest.raises(ClientError) as raised:
        sagemaker.create_training_job(**request)
    assert raised.value.response["Error"]["Message"] == (
        "1 validation error detected: Value 'bad_name' at 'trainingJobName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: "
        "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
    )


def test_list_training_jobs_filters_and_pages(runtime, sagemaker):
    for name in ("listed-a", "listed-b", "listed-c"):
        start_job(runtime, name, "print('quick')")
    for name in ("listed-a", "listed-b", "listed-c"):
        wait_for_status(sagemaker, name)
    first = sagemaker.list_training_jobs(
        NameContains="listed-", SortBy="Name", SortOrder="Ascending", MaxResults=2
    )
    names = [s["TrainingJobName"] for s in first["TrainingJobSummaries"]]
    assert names == ["listed-a", "listed-b"]
    rest = sagemaker.list_training_jobs(
        NameContains="listed-", SortBy="Name", SortOrder="Ascending", NextToken=first["NextToken"]
    )
    assert [s["TrainingJobName"] for s in rest["TrainingJobSummaries"]] == ["listed-c"]
    assert "NextToken" not in rest
    completed = sagemaker.list_training_jobs(NameContains="listed-", StatusEquals="Failed")
    assert completed["TrainingJobSummaries"] == []


def test_two_instances_run_one_process_per_host(runtime, sagemaker, logs):
    script = (
        "import os\n"
        "print('host', os.environ['SM_CURRENT_HOST'], os.environ['SM_HOSTS'],"
        " os.environ['MASTER_ADDR'], os.environ['MASTER_PORT'], sorted(os.listdir("
        "os.environ['SM_CHANNEL_TRAIN'])))\n"
    )
    channel = {
        "ChannelName": "train",
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": f"s3://{BUCKET}/data/train",
                "S3DataDistributionType": "ShardedByS3Key",
            }
        },
    }
    start_job(
        runtime,
        "two-hosts",
        script,
        InputDataConfig=[channel],
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 2, "VolumeSizeInGB": 5},
    )
    assert wait_for_status(sagemaker, "two-hosts")["TrainingJobStatus"] == "Completed"
    streams = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix="two-hosts/"
    )["logStreams"]
    assert sorted(s["logStreamName"].rsplit("-", 1)[0] for s in streams) == [
        "two-hosts/algo-1",
        "two-hosts/algo-2",
    ]
    lines = [
        logs.get_log_events(
            logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=s["logStreamName"]
        )["events"][0]["message"]
        for s in streams
    ]
    ports = {line.split()[4] for line in lines}
    assert len(ports) == 1, "both hosts must share one rendezvous port"
    assert sorted(line.split()[1] for line in lines) == ["algo-1", "algo-2"]
    # ShardedByS3Key: the two files are split between the hosts.
    assert sorted(line.split(" ", 5)[5] for line in lines) == ["['one.txt']", "['sub']"]


def test_checkpoints_are_restored_and_synced(runtime, sagemaker, s3):
    script = (
        "import os\n"
        "path = '/'.join([os.environ['SAGEMAKER_BASE_DIR'], 'checkpoints', 'step.txt'])\n"
        "step = int(open(path).read()) if os.path.exists(path) else 0\n"
        "print('resumed from', step)\n"
        "open(path, 'w').write(str(step + 1))\n"
    )
    checkpoint = {"S3Uri": f"s3://{BUCKET}/checkpoints/resumable"}
    for run in ("resume-1", "resume-2"):
        start_job(runtime, run, script, CheckpointConfig=checkpoint)
        assert wait_for_status(sagemaker, run)["TrainingJobStatus"] == "Completed"
    saved = s3.get_object(Bucket=BUCKET, Key="checkpoints/resumable/step.txt")["Body"].read()
    assert saved == b"2"


def test_logs_stream_while_the_job_runs(runtime, sagemaker, logs):
    # The job holds until the test has looked (a file the test creates), not for a fixed time that
    # a loaded host could outlast before the test looks. The file is in a folder of /tmp that a
    # sandboxed job may read (pytest's own temp root is closed to it).
    release_dir = Path(tempfile.mkdtemp(prefix="live-logs-"))
    release_dir.chmod(0o755)
    release = release_dir / "release"
    script = (
        "import os, time\nprint('early line', flush=True)\n"
        f"while not os.path.exists({str(release)!r}):\n    time.sleep(0.05)\n"
        "print('late line')\n"
    )
    start_job(runtime, "live-logs", script)
    try:
        messages = wait_for_log_line(logs, "live-logs", "early line")
        assert not any("late line" in message for message in messages)
        assert (
            sagemaker.describe_training_job(TrainingJobName="live-logs")["TrainingJobStatus"]
            == "InProgress"
        )
    finally:
        release.touch()
    try:
        assert wait_for_status(sagemaker, "live-logs")["TrainingJobStatus"] == "Completed"
    finally:
        shutil.rmtree(release_dir)
    assert any("late line" in message for message in job_log_messages(logs, "live-logs"))
