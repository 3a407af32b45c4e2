"""The local stack behind `make up`, `make down` and `make demo`.

Two services, each started in its own process group so that stopping a group stops every child
it spawned (`airflow standalone` starts a scheduler, api-server, dag-processor and triggerer that
outlive a plain SIGTERM to their parent):

- the local SageMaker runtime (`python -m local_sagemaker serve`), and
- Airflow standalone, pointed at the runtime through the `aws_default` connection.

What was started is recorded in `.run/<service>.json` (pid, process-group id and start time), so
`down` stops exactly that and never a process that later reused the pid.

    python -m devtools.stack up | down | status
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = REPO_ROOT / ".run"
VENV_BIN = Path(sys.executable).parent
RUNTIME_PORT = int(os.environ.get("LOCAL_SAGEMAKER_PORT", "4570"))
AIRFLOW_PORT = int(os.environ.get("AIRFLOW_PORT", "8080"))
AIRFLOW_HOME = Path(os.environ.get("AIRFLOW_HOME", REPO_ROOT / ".airflow"))
LOCAL_REGION = "us-east-1"


def runtime_url(port: int = RUNTIME_PORT) -> str:
    return f"http://127.0.0.1:{port}"


def local_connection_uri(endpoint_url: str) -> str:
    """`aws_default` for the local runtime: dummy credentials, one endpoint for every service."""
    return json.dumps({
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"region_name": LOCAL_REGION, "endpoint_url": endpoint_url},
    })  # fmt: skip


def airflow_environment(
    endpoint_url: str, airflow_home: Path = AIRFLOW_HOME, api_port: int = AIRFLOW_PORT
) -> dict[str, str]:
    """Environment for any `airflow` command of this project against the local runtime."""
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{api_port}/execution/",
        "AIRFLOW_CONN_AWS_DEFAULT": local_connection_uri(endpoint_url),
        # `include/` and `sagemaker_code/` are read by the DAG; the repo root makes them importable.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
        # standalone calls `airflow` from PATH: make it this environment's.
        "PATH": os.pathsep.join([str(VENV_BIN), env.get("PATH", "")]),
        "AWS_DEFAULT_REGION": LOCAL_REGION,
    })  # fmt: skip
    return env


@dataclass
class Service:
    name: str
    command: list[str]
    health_url: str
    start_timeout: float

    @property
    def record_path(self) -> Path:
        return RUN_DIR / f"{self.name}.json"

    @property
    def log_path(self) -> Path:
        return RUN_DIR / f"{self.name}.log"

    def running_process(self) -> psutil.Process | None:
        """The process `up` started, if it still runs (same pid and same start time)."""
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
        if self.running_process():
            print(f"{self.name}: already running (see {self.log_path})")
            return
        RUN_DIR.mkdir(exist_ok=True)
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(
                self.command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        record = {"pid": process.pid, "pgid": process.pid,
                  "create_time": psutil.Process(process.pid).create_time()}  # fmt: skip
        self.record_path.write_text(json.dumps(record))
        self.wait_until_healthy(process)

    def wait_until_healthy(self, process: subprocess.Popen) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
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


def runtime_service(port: int = RUNTIME_PORT) -> Service:
    return Service(
        name="local_sagemaker",
        command=[sys.executable, "-m", "local_sagemaker", "serve", "--port", str(port),
                 "--data-dir", str(REPO_ROOT / ".local_sagemaker")],
        health_url=f"{runtime_url(port)}/_local/health",
        start_timeout=60,
    )  # fmt: skip


def airflow_service(port: int = AIRFLOW_PORT) -> Service:
    return Service(
        name="airflow",
        command=[str(VENV_BIN / "airflow"), "standalone"],
        health_url=f"http://127.0.0.1:{port}/api/v2/monitor/health",
        start_timeout=180,
    )


def admin_password(airflow_home: Path = AIRFLOW_HOME) -> str:
    generated = airflow_home / "simple_auth_manager_passwords.json.generated"
    return json.loads(generated.read_text())["admin"]


def up() -> None:
    runtime_service().start(dict(os.environ))
    env = airflow_environment(runtime_url())
    airflow_service().start(env)
    print(f"\nAirflow UI: http://127.0.0.1:{AIRFLOW_PORT}")
    print(f"  user: admin  password: {admin_password()}")
    print(f"Local SageMaker runtime: {runtime_url()}  (logs in {RUN_DIR})")
    print("Stop both with: make down")


def down() -> None:
    # Airflow first: its tasks may still be talking to the runtime.
    airflow_service().stop()
    runtime_service().stop()


def status() -> None:
    for service in (runtime_service(), airflow_service()):
        process = service.running_process()
        state = f"running (pid {process.pid})" if process else "not running"
        print(f"{service.name}: {state}; log {service.log_path}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Start or stop the local stack.")
    parser.add_argument("action", choices=["up", "down", "status"])
    {"up": up, "down": down, "status": status}[parser.parse_args().action]()


if __name__ == "__main__":
    main()
