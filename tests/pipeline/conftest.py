"""Fixtures of the pipeline tests: settings, a generated dataset, S3 in moto, and for the e2e
tests a local SageMaker runtime plus an Airflow home in which `airflow dags test` runs the DAG."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow_access import PLUGINS, REPO_ROOT, use_in_process_airflow

use_in_process_airflow("pipeline")

from runtime_access import RuntimeProcess, aws_connection, client_environment  # noqa: E402
from sagemaker_lifecycle.naming import run_names  # noqa: E402
from sagemaker_lifecycle.settings import in_region, load_settings  # noqa: E402

from demo.dataset import make_dataset  # noqa: E402

AIRFLOW_BIN = Path(sys.executable).parent / "airflow"
DAG_ID = "dog_breed_classifier"
# One `airflow dags test` of the whole pipeline: a generous bound, since load, not work, decides it.
DAG_RUN_TIMEOUT_S = 1200
# The region of the tests' AWS connection (moto and the local runtime).
CONNECTION_REGION = "us-east-1"
# For moto's in-process S3 only; the local runtime has its own keys (tests/runtime_access.py).
DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def image_uris(tmp_path_factory) -> dict:
    """The image URIs derived from the defaults. sagemaker-core takes 10-30 s to import on the
    loaded cores, so under pytest-xdist only the first worker to ask derives them: the others wait
    on the lock, then read its answer from the folder above every worker's basetemp (one per
    pytest run)."""
    from sagemaker_lifecycle.images import resolve_image_uris

    def derive() -> dict:
        return resolve_image_uris(in_region(load_settings(), CONNECTION_REGION))

    if "PYTEST_XDIST_WORKER" not in os.environ:
        return derive()
    shared = tmp_path_factory.getbasetemp().parent
    with (shared / "image_uris.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        answer = shared / "image_uris.json"
        if not answer.exists():
            answer.write_text(json.dumps(derive()))
        return json.loads(answer.read_text())


@pytest.fixture
def settings_with(image_uris):
    """Builds settings from overrides in the connection's region with the image URIs resolved,
    as resolve_settings does."""

    def build(*overrides) -> dict:
        settings = in_region(load_settings(*overrides), CONNECTION_REGION)
        settings["images"].update(image_uris)
        return settings

    return build


@pytest.fixture
def settings(settings_with) -> dict:
    return settings_with()


@pytest.fixture
def names():
    from datetime import datetime

    return run_names("dogbreed", "manual__2026-11-21T00:00:00+00:00", datetime(2026, 11, 21))


@pytest.fixture
def staged_dataset() -> dict:
    """What stage_dataset returns, for request builders."""
    base = "s3://dog-breed-classifier/datasets/0123456789abcdef/"
    return {
        "snapshot_id": "0123456789abcdef",
        "classes": ["001.Affenpinscher", "002.Afghan_hound"],
        "image_counts": {"train": 4, "valid": 2, "test": 2},
        "channels": {split: f"{base}{split}/" for split in ("train", "valid", "test")},
        "sourcedir_uri": "s3://dog-breed-classifier/code/abc/sourcedir.tar.gz",
        "code_uri": "s3://dog-breed-classifier/code/abc/files/",
        "reused_snapshot": False,
        "source": "/data",
    }


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """Two classes of 16x16 images: 4 train, 2 valid, 2 test each."""
    return make_dataset(
        tmp_path / "dataset", num_classes=2,
        images_per_class={"train": 4, "valid": 2, "test": 2}, image_size=16,
    )  # fmt: skip


@pytest.fixture
def s3(monkeypatch, moto_session) -> Iterator:
    """A boto3 S3 client on moto's in-process S3 (empty for each test)."""
    from moto import mock_aws

    for name, value in DUMMY_AWS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield moto_session.client("s3")


# ---- end to end: the local runtime and Airflow ------------------------------------------------


@pytest.fixture(scope="session")
def local_runtime(tmp_path_factory) -> Iterator[str]:
    """`python -m local_sagemaker serve` on a free port; yields its URL (its keys:
    `runtime_access.client_environment(url)` and `aws_connection(url)`)."""
    runtime = RuntimeProcess(tmp_path_factory.mktemp("local_sagemaker") / "state")
    try:
        yield runtime.start().url
    finally:
        runtime.stop()


class AirflowRunner:
    """Runs Airflow CLI commands in one AIRFLOW_HOME wired to the local runtime."""

    def __init__(self, home: Path, runtime_url: str):
        self.home = home
        # The deployment's own settings (a run's overrides may not name local paths).
        profile = home / "deployment-profile.yaml"
        profile.write_text(json.dumps({"dataset": {"cache_dir": str(home / "dataset-cache")}}))
        self.env = {
            **os.environ,
            **client_environment(runtime_url),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws_connection(runtime_url)),
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(PLUGINS)]),
            "PIPELINE_PROFILE": str(profile),
        }
        self.env.pop("AWS_ENDPOINT_URL", None)

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(AIRFLOW_BIN), *args], cwd=REPO_ROOT, env=self.env, capture_output=True,
            text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def dags_test(self, conf: dict, logical_date: str | None = None) -> subprocess.CompletedProcess:
        """`airflow dags test dog_breed_classifier [date] -c conf`; output in .stdout."""
        date = [logical_date] if logical_date else []
        return self.run("dags", "test", DAG_ID, *date, "-c", json.dumps(conf),
                        timeout=DAG_RUN_TIMEOUT_S)  # fmt: skip

    def task_states(self, run_id: str) -> dict[str, str]:
        """Task id -> state; a mapped task's instances as `<task id>[<map index>]`."""
        result = self.run("tasks", "states-for-dag-run", DAG_ID, run_id, "-o", "json")
        return {
            row["task_id"] + (f"[{row['map_index']}]" if row.get("map_index") not in ("", None,
                              "-1", -1) else ""): row["state"]
            for row in json.loads(result.stdout or "[]")
        }  # fmt: skip


@pytest.fixture(scope="session")
def airflow(tmp_path_factory, local_runtime) -> AirflowRunner:
    """An Airflow home with a migrated SQLite database, wired to the local runtime."""
    runner = AirflowRunner(tmp_path_factory.mktemp("airflow_home"), local_runtime)
    migrated = runner.run("db", "migrate", timeout=300)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    return runner


@pytest.fixture(scope="session")
def new_airflow_home(tmp_path_factory, local_runtime):
    """Builds another Airflow home (not yet migrated) wired to the local runtime, for tests that
    need deployment settings of their own."""
    return lambda name: AirflowRunner(tmp_path_factory.mktemp(name), local_runtime)


@pytest.fixture(scope="session")
def e2e_conf():
    """Builds DAG-run confs for fast local runs (see fast_run_conf)."""
    return fast_run_conf


def fast_run_conf(dataset: Path, **overrides) -> dict:
    """DAG-run conf for a fast local run: one candidate, a tiny CNN, two trials, one-second
    polling."""
    conf = {
        "dataset_source": str(dataset),
        "max_tuning_jobs": 2,
        "max_parallel_jobs": 1,
        "poll_interval_seconds": 1,
        "overrides": {
            "hyperparameters": {"backbone": "simplecnn", "epochs": 2, "image-size": 32,
                                "freeze": "full"},
            # One architecture keeps each run's cost that of one candidate (test_e2e.py runs two).
            "candidates": [{"name": "simplecnn", "hyperparameters": {}}],
            "tuning": {"categorical": {"batch-size": [8, 16]}},
            "rules": {"collection_overrides": {"save_interval": "2"}},
        },
    }  # fmt: skip
    conf["overrides"].update(overrides)
    return conf
