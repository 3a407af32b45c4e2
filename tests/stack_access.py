"""The stack of `make up` for tests that drive Airflow's UI, API or scheduler (the runtime's
keys reach it as they reach `make up`: through the data dir, see :mod:`runtime_access`)."""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from runtime_access import free_port

from devtools.stack import Stack


@contextlib.contextmanager
def running_stack(home: Path) -> Iterator[Stack]:
    """The stack of `make up` (the runtime and Airflow's components) on free ports, with its
    folders under ``home``. Its scheduler makes no scheduled run: a test unpauses the DAG to
    trigger or backfill its own runs, and this week's run would otherwise start too and hold the
    DAG (max_active_runs=1). The tails of the components' logs are printed on the way out."""
    stack = Stack(runtime_port=free_port(), airflow_port=free_port(),
                  airflow_home=home / "airflow", runtime_data_dir=home / "runtime",
                  run_dir=home / "run")  # fmt: skip
    previous = os.environ.get("AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE")
    os.environ["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] = "False"
    try:
        stack.up()
        yield stack
    finally:
        stack.down()
        if previous is None:
            os.environ.pop("AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE")
        else:
            os.environ["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] = previous
        for log in sorted(stack.run_dir.glob("*.log")):
            print(f"---- {log.name} (tail) ----\n{log_tail(log)}")


def log_tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""
