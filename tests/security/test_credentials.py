"""The runtime's keys: generated per data dir, readable by their owner only, handed to the AWS CLI
through ``credential_process``; a fixed pair and extra host names for containers."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_support import curl
from runtime_access import REPO_ROOT, RuntimeProcess, credential_process_output, free_port

from local_sagemaker.cli import wait_until_ready

pytestmark = pytest.mark.e2e
AWS_CLI = Path(sys.executable).with_name("aws")


def test_each_data_dir_gets_its_own_keys_readable_by_its_owner_only(tmp_path):
    first, second = (credential_process_output(tmp_path / name) for name in ("one", "two"))
    assert first["Version"] == 1
    assert first["AccessKeyId"] != second["AccessKeyId"]
    assert first["SecretAccessKey"] != second["SecretAccessKey"]
    assert credential_process_output(tmp_path / "one") == first  # stable once generated
    mode = stat.S_IMODE((tmp_path / "one" / "credentials.json").stat().st_mode)
    assert mode == 0o600


def test_the_aws_cli_signs_with_a_credential_process_profile(runtime, tmp_path):
    config = tmp_path / "aws-config"
    config.write_text(
        "[profile local-sagemaker]\nregion = us-east-1\n"
        f"endpoint_url = {runtime.url}\n"
        f"credential_process = {sys.executable} -m local_sagemaker credentials "
        f"--data-dir {runtime.data_dir}\n"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(config), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    listed = subprocess.run(
        [str(AWS_CLI), "--profile", "local-sagemaker", "sagemaker", "list-training-jobs"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert '"TrainingJobSummaries"' in listed.stdout
    without_keys = subprocess.run(
        [str(AWS_CLI), "--no-sign-request", "--endpoint-url", runtime.url, "--region",
         "us-east-1", "sagemaker", "list-training-jobs"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "MissingAuthenticationToken" in without_keys.stderr


def test_a_fixed_pair_and_allowed_hosts_for_containers(tmp_path, ledger):
    fixed = {"LOCAL_SAGEMAKER_ACCESS_KEY_ID": "LSIAFIXEDFORTESTS000",
             "LOCAL_SAGEMAKER_SECRET_ACCESS_KEY": "fixed-secret-for-tests",
             "LOCAL_SAGEMAKER_ALLOWED_HOSTS": "local-sagemaker,runtime.internal"}  # fmt: skip
    runtime = RuntimeProcess(tmp_path / "state").start(fixed)
    try:
        assert not (tmp_path / "state" / "credentials.json").exists()  # never written
        status, _ = curl("-H", f"Host: local-sagemaker:{runtime.port}",
                         f"{runtime.url}/_local/health")  # fmt: skip
        assert status == 200
        status, _ = curl("-H", f"Host: elsewhere:{runtime.port}", f"{runtime.url}/_local/health")
        assert ledger.answered("Host not in LOCAL_SAGEMAKER_ALLOWED_HOSTS", status) == 403
    finally:
        runtime.stop()


def test_half_a_fixed_pair_is_refused_at_start(tmp_path):
    port = free_port()
    started = subprocess.run(
        [sys.executable, "-m", "local_sagemaker", "serve", "--port", str(port),
         "--data-dir", str(tmp_path / "state"), "--access-key-id", "LSIAONLYHALF00000000"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert started.returncode == 2
    assert "needs both --access-key-id and --secret-access-key" in started.stderr
    assert not wait_until_ready(f"http://127.0.0.1:{port}", timeout=0.5)
