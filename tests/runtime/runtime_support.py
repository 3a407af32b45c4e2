"""Helpers for the runtime core tests: a real runtime server process, boto3 clients for it, and
script-mode source dirs built from small training scripts."""

import atexit
import functools
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import botocore.session
from runtime_access import (  # noqa: F401 (the runtime tests' helpers, re-exported)
    RuntimeProcess,
    aws_connection,
    client_environment,
    free_port,
    signed_request,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
BUCKET = "runtime-tests"
ROLE_ARN = "arn:aws:iam::123456789012:role/LocalSageMakerRole"
PYTORCH_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-cpu-py311"
TERMINAL_STATUSES = ("Completed", "Failed", "Stopped")
AIRFLOW = REPO_ROOT / ".venvs" / "airflow" / "bin" / "airflow"
AIRFLOW_DAGS = Path(__file__).resolve().parent / "airflow_dags"


def sourcedir_archive(files: dict[str, str]) -> bytes:
    """A sourcedir.tar.gz holding ``files`` (name -> text)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def training_request(name: str, bucket: str, script: str, **overrides) -> dict:
    """A CreateTrainingJob request running ``script`` (Python source) in script mode, with a
    ``train`` channel at ``s3://<bucket>/data/train`` and output under ``s3://<bucket>/output``.

    The caller uploads the source dir with :func:`upload_script` first."""
    request = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": PYTORCH_IMAGE,
            "TrainingInputMode": "File",
            "MetricDefinitions": [
                {"Name": "valid_acc", "Regex": "valid_acc=([0-9.]+)"},
                {"Name": "train_loss", "Regex": "train_loss=([0-9.]+)"},
            ],
        },
        "RoleArn": ROLE_ARN,
        "HyperParameters": {
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": f'"s3://{bucket}/code/{name}/sourcedir.tar.gz"',
        },
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/data/train"}
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 120},
    }
    request.update(overrides)
    return request


def upload_script(s3, bucket: str, name: str, script: str) -> None:
    s3.put_object(
        Bucket=bucket,
        Key=f"code/{name}/sourcedir.tar.gz",
        Body=sourcedir_archive({"train.py": script}),
    )


def start_script_job(runtime, bucket: str, name: str, script: str, **overrides) -> dict:
    """Upload ``script`` as job ``name``'s source dir and create the job; returns its request."""
    upload_script(runtime.client("s3"), bucket, name, script)
    request = training_request(name, bucket, script, **overrides)
    runtime.client("sagemaker").create_training_job(**request)
    return request


def poll_until(
    name: str, describe, status_key: str, statuses, timeout: float, interval: float = 0.2
) -> dict:
    """Call ``describe()`` until ``response[status_key]`` is one of ``statuses``; returns it.

    ``name`` (the job's) only labels the TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        described = describe()
        if described[status_key] in statuses:
            return described
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} still {described[status_key]} after {timeout} s")
        time.sleep(interval)


def wait_for_status(sagemaker, name: str, statuses=TERMINAL_STATUSES, timeout=90) -> dict:
    """Poll DescribeTrainingJob until its status is one of ``statuses``; returns the response."""
    return poll_until(
        name, lambda: sagemaker.describe_training_job(TrainingJobName=name),
        "TrainingJobStatus", statuses, timeout,
    )  # fmt: skip


def wait_for_log_line(logs, job_name: str, text: str, timeout=30) -> list[str]:
    """Wait until a message containing ``text`` is in the job's log stream; returns all messages."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = job_log_messages(logs, job_name)
        if any(text in m for m in messages):
            return messages
        time.sleep(0.1)
    raise TimeoutError(f"no log line containing {text!r} for {job_name} within {timeout} s")


def job_log_messages(logs, job_name: str) -> list[str]:
    """Messages of the job's first log stream so far (none before the job's log group exists)."""
    try:
        streams = logs.describe_log_streams(
            logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{job_name}/"
        )["logStreams"]
    except logs.exceptions.ResourceNotFoundException:
        return []
    if not streams:
        return []
    events = logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs",
        logStreamName=streams[0]["logStreamName"],
        startFromHead=True,
    )["events"]
    return [e["message"] for e in events]


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def airflow_dags_test(
    runtime: RuntimeProcess, airflow_home: Path, dag_id: str, extra_env: dict[str, str]
) -> subprocess.CompletedProcess:
    """``airflow dags test <dag_id>`` on the DAGs in ``tests/runtime/airflow_dags`` with a fresh
    SQLite Airflow in ``airflow_home`` (a copy of :func:`migrated_airflow_database`) and
    ``aws_default`` pointing at ``runtime``.

    Returns the finished process (stdout/stderr captured as text) of ``dags test``."""
    connection = aws_connection(runtime.url)
    env = {
        **os.environ,
        **client_environment(runtime.url),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(AIRFLOW_DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection),
        **extra_env,
    }

    Path(airflow_home).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(migrated_airflow_database(), Path(airflow_home) / "airflow.db")
    return subprocess.run(
        [str(AIRFLOW), "dags", "test", dag_id], env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


@functools.cache
def migrated_airflow_database() -> Path:
    """A SQLite Airflow metadata DB migrated once per test session (``airflow db migrate`` takes
    10-30 s here); each Airflow test starts from a copy of it."""
    home = Path(tempfile.mkdtemp(prefix="airflow-template-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    migrated = subprocess.run(
        [str(AIRFLOW), "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    if migrated.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{migrated.stderr[-4000:]}")
    return home / "airflow.db"


# ---- the wire protocol as a strict client sees it ----

SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")
JSON_TYPES = {
    "structure": dict, "map": dict, "list": list, "string": str, "boolean": bool,
    "integer": int, "long": int, "double": (int, float), "float": (int, float),
    "timestamp": (int, float),
}  # fmt: skip


def shape_violations(shape, value, path="$") -> list[str]:
    """Where ``value`` (raw wire JSON) breaks ``shape``: unknown members, wrong JSON types
    (timestamps must be epoch numbers), missing required members, values outside an enum."""
    expected = JSON_TYPES.get(shape.type_name, object)
    if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
        return [f"{path}: {type(value).__name__} is not {shape.type_name}"]
    problems = []
    if shape.type_name == "structure":
        problems += [
            f"{path}.{m}: required, missing" for m in shape.required_members if m not in value
        ]
        for key, item in value.items():
            if key not in shape.members:
                problems.append(f"{path}.{key}: not a member of {shape.name}")
            else:
                problems += shape_violations(shape.members[key], item, f"{path}.{key}")
    elif shape.type_name == "list":
        for index, item in enumerate(value):
            problems += shape_violations(shape.member, item, f"{path}[{index}]")
    elif shape.type_name == "map":
        for key, item in value.items():
            problems += shape_violations(shape.value, item, f"{path}.{key}")
    elif getattr(shape, "enum", None) and value not in shape.enum:
        problems.append(f"{path}: {value!r} not in enum")
    return problems


def raw_call(runtime, target: str, body: dict) -> tuple[int, dict]:
    """POST one signed JSON 1.1 request; returns (status, parsed body) without a client's
    parsing in between."""
    request = signed_request(
        runtime.url,
        json.dumps(body).encode(),
        {"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
        service="logs" if target.startswith("Logs_") else "sagemaker",
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
