"""Start-up overhead of a local training job: seconds from the CreateTrainingJob call to the
moment the training script's first line reaches CloudWatch Logs (target: < 2 s).

Starts ``python -m local_sagemaker serve`` on a free port with a fresh data dir, runs
``--runs`` script-mode jobs whose script prints one line at once, and prints each latency and
the median. The script runs in the image's Python (the container environment by default).

    .venvs/airflow/bin/python benchmarks/bench_runtime_startup.py [--runs 5]
"""

import argparse
import io
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import boto3

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from local_sagemaker.cli import wait_until_ready  # noqa: E402

BUCKET = "bench"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
SCRIPT = "print('first line', flush=True)\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sourcedir() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("train.py")
        info.size = len(SCRIPT)
        tar.addfile(info, io.BytesIO(SCRIPT.encode()))
    return buffer.getvalue()


def request(name: str) -> dict:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": "pytorch-training",
            "TrainingInputMode": "File",
        },
        "RoleArn": "arn:aws:iam::123456789012:role/LocalSageMakerRole",
        "HyperParameters": {
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": f'"s3://{BUCKET}/code/sourcedir.tar.gz"',
        },
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/data"}
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }


def first_line_latency(clients, name: str) -> float:
    """Seconds from create_training_job to the first log event's timestamp."""
    sagemaker, logs = clients
    created = time.time()
    sagemaker.create_training_job(**request(name))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{name}/")
        for stream in streams.get("logStreams", []):
            if "firstEventTimestamp" in stream:
                return stream["firstEventTimestamp"] / 1000 - created
        time.sleep(0.01)
    raise TimeoutError(f"{name}: no log line within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data_dir:
        server = subprocess.Popen(
            [sys.executable, "-m", "local_sagemaker", "serve", "--port", str(port),
             "--data-dir", data_dir],
            cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            if not wait_until_ready(url, timeout=60):
                raise SystemExit(f"the runtime did not start on {url}")
            session = boto3.Session(
                aws_access_key_id="testing", aws_secret_access_key="testing",
                region_name="us-east-1",
            )  # fmt: skip
            s3 = session.client("s3", endpoint_url=url)
            s3.create_bucket(Bucket=BUCKET)
            s3.put_object(Bucket=BUCKET, Key="code/sourcedir.tar.gz", Body=sourcedir())
            s3.put_object(Bucket=BUCKET, Key="data/one.txt", Body=b"1")
            logs = session.client("logs", endpoint_url=url)
            logs.create_log_group(logGroupName=LOG_GROUP)
            clients = (session.client("sagemaker", endpoint_url=url), logs)
            latencies = [first_line_latency(clients, f"bench-{n}") for n in range(args.runs)]
        finally:
            server.terminate()
            server.wait()
    for n, latency in enumerate(latencies):
        print(f"run {n}: {latency:.3f} s from CreateTrainingJob to the script's first line")
    print(f"median start-up overhead: {statistics.median(latencies):.3f} s (target < 2 s)")


if __name__ == "__main__":
    main()
