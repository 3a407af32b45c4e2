"""The local stack behind `make up`, `make down` and `make demo`.

Two services, each started in its own process group so that stopping a group stops every child
it spawned:

- the local SageMaker runtime (`python -m local_sagemaker serve`), and
- Airflow (what `airflow standalone` runs: scheduler, dag-processor, triggerer, api-server),
  pointed at the runtime through the `aws_default` connection. The components are started
  directly so that nothing listens beyond loopback: the api-server binds 127.0.0.1, and the
  scheduler's and triggerer's log servers (which `standalone` binds to every interface, and
  which a one-machine stack does not need) are not started.

What was started is recorded in `<run dir>/<service>.json` (pid, process-group id and start time),
so `down` stops exactly that and never a process that later reused the pid.

    python -m devtools.stack up | down | status
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import importlib.util
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil
import yaml

from demo.dataset import make_dataset
from local_sagemaker.credentials import KeyPair, resolve_key_pair

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
LOCAL_REGION = "us-east-1"
LOCAL_PROFILE = REPO_ROOT / "include" / "local.yaml"
DEMO_DIR = REPO_ROOT / ".demo"
# `airflow standalone`'s components, in one process group, every listener on 127.0.0.1.
AIRFLOW_COMPONENTS = (
    "{ airflow scheduler --skip-serve-logs & airflow triggerer --skip-serve-logs & "
    "airflow dag-processor & exec airflow api-server; }"
)
MIGRATE_FIRST = "airflow db migrate >/dev/null && "
REVISION = re.compile(r"""^(down_)?revision\s*=\s*(.+)$""", re.MULTILINE)


def newest_migration() -> str | None:
    """The installed Airflow's head revision, as alembic finds it (the one migration no other
    revises), read from its migration files without importing Airflow (which takes seconds)."""
    versions = Path(importlib.util.find_spec("airflow").origin).parent / "migrations" / "versions"
    revisions, revised = set(), set()
    for script in versions.glob("*.py"):
        for down, value in REVISION.findall(script.read_text()):
            (revised if down else revisions).update(re.findall(r"[0-9a-f]{12}", value))
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else None


def stack_database_revision(airflow_home: Path, env: dict[str, str]) -> str | None:
    """The revision of the stack's own SQLite database (`<home>/airflow.db`); None when it is
    missing, unmigrated, or when the environment or airflow.cfg names another database."""
    database = airflow_home / "airflow.db"
    config = configparser.ConfigParser(interpolation=None)
    config.read(airflow_home / "airflow.cfg")
    named = env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or config.get(
        "database", "sql_alchemy_conn", fallback=f"sqlite:///{database}"
    )
    if named != f"sqlite:///{database}" or not database.exists():
        return None
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        try:
            return db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        except (sqlite3.Error, TypeError):
            return None


def local_connection_uri(endpoint_url: str, key_pair: KeyPair) -> str:
    """`aws_default` for the local runtime: its key pair, one endpoint for every service."""
    return json.dumps({
        "conn_type": "aws",
        "login": key_pair.access_key_id,
        "password": key_pair.secret_access_key,
        "extra": {"region_name": LOCAL_REGION, "endpoint_url": endpoint_url},
    })  # fmt: skip


@dataclass
class Service:
    """One long-running process group, with its record and log in `run_dir`."""

    name: str
    command: list[str]
    health_url: str
    start_timeout: float
    run_dir: Path

    @property
    def record_path(self) -> Path:
        return self.run_dir / f"{self.name}.json"

    @property
    def log_path(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def running_process(self) -> psutil.Process | None:
        """The process `start` started, if it still runs (same pid and same start time)."""
        if not self.record_path.exists():
            return None
        record = json.loads(self.record_path.read_text())
        try:
            process = psutil.Process(record["pid"])
            if abs(process.create_time() - record["create_time"]) < 0.01:
                return process
        except psutil.NoSuchProcess:
            pass
        return None

    def start(self, env: dict[str, str]) -> None:
        process = self.launch(env)
        if process is not None:
            self.wait_until_healthy(process)

    def launch(self, env: dict[str, str]) -> subprocess.Popen | None:
        """Start the process group without waiting for it; None when it already runs."""
        if self.running_process():
            print(f"{self.name}: already running (log: {self.log_path})")
            return None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(
                self.command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        record = {"pid": process.pid, "pgid": process.pid,
                  "create_time": psutil.Process(process.pid).create_time()}  # fmt: skip
        self.record_path.write_text(json.dumps(record))
        return process

    def wait_until_healthy(self, process: subprocess.Popen) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.record_path.unlink(missing_ok=True)
                raise SystemExit(
                    f"{self.name} exited with {process.returncode}; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(self.health_url, timeout=2):
                    print(f"{self.name}: up ({self.health_url})")
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        self.stop()
        raise SystemExit(
            f"{self.name} not healthy after {self.start_timeout:.0f} s; see {self.log_path}"
        )

    def stop(self, grace: float = 15.0) -> None:
        process = self.running_process()
        if process is None:
            self.record_path.unlink(missing_ok=True)
            return
        pgid = json.loads(self.record_path.read_text())["pgid"]
        members = [process, *process.children(recursive=True)]
        os.killpg(pgid, signal.SIGTERM)
        _, alive = psutil.wait_procs(members, timeout=grace)
        for leftover in alive:
            leftover.kill()
        # Anything left in the group, such as grandchildren that were re-parented.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        self.record_path.unlink(missing_ok=True)
        print(f"{self.name}: stopped")


def start_together(services: list[tuple[Service, dict[str, str]]]) -> None:
    """Launch every service (each with its environment), then wait until each is healthy: the
    runtime's start-up overlaps Airflow's instead of preceding it."""
    launched = [(service, service.launch(env)) for service, env in services]
    try:
        for service, process in launched:
            if process is not None:
                service.wait_until_healthy(process)
    except BaseException:
        for service, process in launched:
            if process is not None:
                service.stop()
        raise


@dataclass
class Stack:
    """Where the local stack lives: ports and folders. The defaults are `make up`'s."""

    runtime_port: int = int(os.environ.get("LOCAL_SAGEMAKER_PORT", "4570"))
    airflow_port: int = int(os.environ.get("AIRFLOW_PORT", "8080"))
    airflow_home: Path = Path(os.environ.get("AIRFLOW_HOME", REPO_ROOT / ".airflow"))
    runtime_data_dir: Path = REPO_ROOT / ".local_sagemaker"
    run_dir: Path = REPO_ROOT / ".run"

    @property
    def settings_file(self) -> Path:
        """The pipeline settings Airflow reads: pipeline.yaml with the local profile merged in."""
        return self.run_dir / "pipeline.local.yaml"

    @property
    def runtime_url(self) -> str:
        return f"http://127.0.0.1:{self.runtime_port}"

    @property
    def airflow_url(self) -> str:
        return f"http://127.0.0.1:{self.airflow_port}"

    def key_pair(self) -> KeyPair:
        """The key pair `serve` uses: a fixed one from the environment, else the data dir's."""
        return resolve_key_pair(self.runtime_data_dir)

    def airflow_environment(self) -> dict[str, str]:
        """Environment for any `airflow` command of this project against the local runtime."""
        env = dict(os.environ)
        env.update({
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "devtools.airflow_sqlite.CONNECT_ARGS",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.airflow_port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.airflow_url}/execution/",
            "AIRFLOW_CONN_AWS_DEFAULT": local_connection_uri(self.runtime_url, self.key_pair()),
            "PIPELINE_SETTINGS_FILE": str(self.settings_file),
            # include/ and sagemaker_code/ are read by the DAG; the repo root makes them importable.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
            # Airflow's components call `airflow` from PATH: make it this environment's.
            "PATH": os.pathsep.join([str(VENV_BIN), env.get("PATH", "")]),
            "AWS_DEFAULT_REGION": LOCAL_REGION,
            # A freshly started api-server answered its first task call after 36 s on two busy
            # cores (the default timeout is 5 s): the task failed and waited a minute for its
            # retry. Airflow's advice under high load is a longer timeout.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        })  # fmt: skip
        return env

    def runtime(self) -> Service:
        return Service(
            name="local_sagemaker",
            command=[sys.executable, "-m", "local_sagemaker", "serve",
                     "--port", str(self.runtime_port), "--data-dir", str(self.runtime_data_dir)],
            health_url=f"{self.runtime_url}/_local/health",
            start_timeout=60,
            run_dir=self.run_dir,
        )  # fmt: skip

    def airflow(self) -> Service:
        # `airflow db migrate` takes 10-25 s even when there is nothing to migrate: only when the
        # database is not at the installed Airflow's newest migration does it run first.
        current = stack_database_revision(self.airflow_home, self.airflow_environment())
        migrate = "" if current and current == newest_migration() else MIGRATE_FIRST
        return Service(
            name="airflow",
            command=["bash", "-c", migrate + AIRFLOW_COMPONENTS],
            health_url=f"{self.airflow_url}/api/v2/monitor/health",
            start_timeout=240,
            run_dir=self.run_dir,
        )

    def admin_password(self) -> str:
        generated = self.airflow_home / "simple_auth_manager_passwords.json.generated"
        return json.loads(generated.read_text())["admin"]

    def write_local_settings(self) -> Path:
        """Generate the demo dataset (once) and the local settings file; return the dataset."""
        dataset = DEMO_DIR / "dataset"
        if not (dataset / "test").is_dir():
            make_dataset(dataset, num_classes=4, image_size=64)
            print(f"generated the demo dataset in {dataset}")
        # The pipeline's own settings code, from the package Airflow loads out of plugins/.
        sys.path.insert(0, str(REPO_ROOT / "plugins"))
        from sagemaker_lifecycle.settings import deep_merge, load_defaults

        profile = yaml.safe_load(LOCAL_PROFILE.read_text())
        settings = deep_merge(load_defaults(), profile)
        # The profile's paths are relative to the project root; Airflow's tasks run elsewhere.
        for key in ("source", "cache_dir"):
            settings["dataset"][key] = str(REPO_ROOT / profile["dataset"][key])
        self.run_dir.mkdir(parents=True, exist_ok=True)
        header = f"# Generated by devtools/stack.py from pipeline.yaml + {LOCAL_PROFILE.name}.\n"
        self.settings_file.write_text(header + yaml.safe_dump(settings, sort_keys=False))
        return dataset

    def up(self) -> None:
        self.write_local_settings()
        start_together([(self.runtime(), dict(os.environ)),
                        (self.airflow(), self.airflow_environment())])  # fmt: skip

    def down(self) -> None:
        # Airflow first: its tasks may still be talking to the runtime.
        self.airflow().stop()
        self.runtime().stop()


def print_credentials(stack: Stack) -> None:
    """The runtime's keys, as a user pastes them into a shell or an AWS CLI profile."""
    key_pair = stack.key_pair()
    print(f"  AWS_ACCESS_KEY_ID={key_pair.access_key_id}")
    print(f"  AWS_SECRET_ACCESS_KEY={key_pair.secret_access_key}")
    print(f"  or an AWS CLI profile: credential_process = {VENV_BIN / 'python'} -m local_sagemaker "
          f"credentials --data-dir {stack.runtime_data_dir}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description="Start or stop the local stack.")
    parser.add_argument("action", choices=["up", "down", "status"])
    action = parser.parse_args().action
    stack = Stack()
    if action == "up":
        stack.up()
        print(f"\nAirflow UI: {stack.airflow_url}  user: admin  password: {stack.admin_password()}")
        print(f"Local SageMaker runtime: {stack.runtime_url}  (logs in {stack.run_dir})")
        print_credentials(stack)
        print("Stop both with: make down")
    elif action == "down":
        stack.down()
    else:
        for service in (stack.runtime(), stack.airflow()):
            process = service.running_process()
            state = f"running (pid {process.pid})" if process else "not running"
            print(f"{service.name}: {state}; log: {service.log_path}")
        print_credentials(stack)


if __name__ == "__main__":
    main()
