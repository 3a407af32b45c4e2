"""The one place that gives tests a local runtime and its credentials.

Every runtime a test starts runs as ``python -m local_sagemaker serve`` and generates its own
key pair in its data dir, as a user's runtime does; every client a test builds (boto3, the AWS
CLI's environment, an Airflow connection, a hand-signed raw request) gets that pair from here.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from local_sagemaker.cli import wait_until_ready
from local_sagemaker.credentials import (
    ACCESS_KEY_ENV,
    SECRET_KEY_ENV,
    KeyPair,
    resolve_key_pair,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
CLIENT_CONFIG = Config(retries={"max_attempts": 1}, read_timeout=30, connect_timeout=5)
# Runtime URL -> its key pair, for helpers that are given only a URL.
_KEY_PAIRS: dict[str, KeyPair] = {}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def key_pair_for(url: str) -> KeyPair:
    """The key pair of the runtime a test started at ``url``."""
    try:
        return _KEY_PAIRS[url.rstrip("/")]
    except KeyError:
        raise KeyError(f"no runtime started by the tests serves {url}") from None


def client_environment(url: str) -> dict[str, str]:
    """Environment that points AWS SDKs and the AWS CLI at the runtime, with its keys."""
    key_pair = key_pair_for(url)
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": key_pair.access_key_id,
        "AWS_SECRET_ACCESS_KEY": key_pair.secret_access_key,
        "AWS_DEFAULT_REGION": REGION,
    }


def aws_connection(url: str) -> dict:
    """An Airflow ``aws`` connection (as ``AIRFLOW_CONN_*`` JSON takes it) to the runtime."""
    key_pair = key_pair_for(url)
    return {
        "conn_type": "aws",
        "login": key_pair.access_key_id,
        "password": key_pair.secret_access_key,
        "extra": {"region_name": REGION, "endpoint_url": url},
    }


def client(url: str, service: str):
    """A boto3 client of ``service`` on the runtime at ``url``."""
    key_pair = key_pair_for(url)
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        config=CLIENT_CONFIG,
        aws_access_key_id=key_pair.access_key_id,
        aws_secret_access_key=key_pair.secret_access_key,
    )


def s3v4_client(url: str):
    """An S3 client of the runtime at ``url`` that presigns URLs and form POSTs with SigV4 (as
    browsers and curl get them), not the default SigV2 query strings."""
    key_pair = key_pair_for(url)
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name=REGION,
        config=Config(signature_version="s3v4"),
        aws_access_key_id=key_pair.access_key_id,
        aws_secret_access_key=key_pair.secret_access_key,
    )


def signed_request(
    url: str,
    body: bytes,
    headers: dict[str, str],
    method: str = "POST",
    path: str = "/",
    service: str = "sagemaker",
) -> urllib.request.Request:
    """A raw request to the runtime, SigV4-signed as botocore signs for ``service`` (the
    runtime routes by it, as AWS routes by endpoint)."""
    key_pair = key_pair_for(url)
    request = AWSRequest(method=method, url=url.rstrip("/") + path, data=body, headers=headers)
    credentials = Credentials(key_pair.access_key_id, key_pair.secret_access_key)
    SigV4Auth(credentials, service, REGION).add_auth(request)
    return urllib.request.Request(
        request.url, data=body, method=method, headers=dict(request.headers.items())
    )


@dataclass
class RuntimeProcess:
    """``python -m local_sagemaker serve`` as a child process on a free loopback port."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def key_pair(self) -> KeyPair:
        return key_pair_for(self.url)

    def start(self, extra_env: dict[str, str] | None = None) -> "RuntimeProcess":
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-runtime.log"
        env = {**os.environ, **(extra_env or {})}
        command = [sys.executable, "-m", "local_sagemaker", "serve",
                   "--port", str(self.port), "--data-dir", str(self.data_dir)]  # fmt: skip
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        # Bounded, not a sleep: a start-up takes seconds, more while xdist workers share the cores.
        if not wait_until_ready(self.url, timeout=90):
            self.process.kill()  # a runtime that never answered must not outlive the test
            self.process.wait()
            raise RuntimeError(f"runtime did not start; its log:\n{self.log_path.read_text()}")
        # The pair the runtime serves with: a fixed one from its environment, else the one it
        # generated in its data dir before it served (read as a user would).
        _KEY_PAIRS[self.url] = resolve_key_pair(
            self.data_dir, env.get(ACCESS_KEY_ENV), env.get(SECRET_KEY_ENV)
        )
        return self

    def kill_hard(self) -> None:
        """``kill -9``: no chance to clean up, as in a crash."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def client(self, service: str):
        return client(self.url, service)

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""


def credential_process_output(data_dir: Path) -> dict:
    """What ``python -m local_sagemaker credentials --data-dir DIR`` prints, parsed."""
    printed = subprocess.run(
        [sys.executable, "-m", "local_sagemaker", "credentials", "--data-dir", str(data_dir)],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(printed.stdout)
