"""In-process Airflow for tests: the plugin package importable as Airflow imports it, and a
home of its own per pytest-xdist worker.

Airflow puts plugins/ on sys.path; the tests import the plugin package (`sagemaker_lifecycle`)
the same way. In-process Airflow (DagBag, operators, the plugin's models) keeps its config and
database out of ~/airflow, in one home per worker (PYTEST_XDIST_WORKER: gw0, gw1, ...) so that
no two workers share a SQLite database.
"""

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PLUGINS = REPO_ROOT / "plugins"


def use_in_process_airflow(suite: str) -> None:
    """Put plugins/ on sys.path and give this worker the home `.airflow/<suite>-tests-<worker>`
    (unless AIRFLOW_HOME is set). Call it in a conftest before anything imports Airflow."""
    if str(PLUGINS) not in sys.path:
        sys.path.insert(0, str(PLUGINS))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    os.environ.setdefault("AIRFLOW_HOME", str(REPO_ROOT / ".airflow" / f"{suite}-tests-{worker}"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
