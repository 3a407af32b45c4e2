"""The SDK conformance suite's set-up: one runtime process, tiny data in its S3, and the
environment a notebook user sets to point the SageMaker Python SDK at it.

The SDK runs unpatched: the only things set are what a user sets (``AWS_ENDPOINT_URL``, the
runtime's keys, the region) and an SDK defaults file (``SAGEMAKER_USER_CONFIG_OVERRIDE``) that
turns the SDK's telemetry off, since it would post to an AWS URL.
"""

import os
import random
from pathlib import Path

import pytest
from runtime_access import RuntimeProcess, client_environment

BUCKET = "sdk-conformance"
ROLE_ARN = "arn:aws:iam::123456789012:role/LocalSageMakerRole"
SOURCE_DIR = Path(__file__).resolve().parent / "source"
TELEMETRY_OFF = """\
SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
"""


@pytest.fixture(scope="session")
def runtime(tmp_path_factory):
    server = RuntimeProcess(tmp_path_factory.mktemp("sdk-runtime") / "state").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sdk_environment(runtime, tmp_path_factory):
    """The user's environment for the SDK, set for the session and restored after it."""
    defaults = tmp_path_factory.mktemp("sdk-config") / "sagemaker-defaults.yaml"
    defaults.write_text(TELEMETRY_OFF)
    environment = {
        **client_environment(runtime.url),
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(defaults),
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
    }
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    yield environment
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def tiny_rows(count: int = 32) -> str:
    """``label,x1,x2`` rows of two separable classes."""
    generator = random.Random(0)
    rows = []
    for index in range(count):
        label = index % 2
        rows.append(
            f"{label},{label * 2 - 1 + generator.gauss(0, 0.3):.3f},{generator.random():.3f}"
        )
    return "\n".join(rows) + "\n"


@pytest.fixture(scope="session")
def train_data(runtime, sdk_environment) -> str:
    """``s3://BUCKET/data/train`` holding one tiny CSV."""
    s3 = runtime.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="data/train/rows.csv", Body=tiny_rows().encode())
    return f"s3://{BUCKET}/data/train"
