"""The UI tests import the plugin package as Airflow does: from plugins/."""

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGINS = REPO_ROOT / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))
# In-process Airflow (imported by the plugin's modules) keeps its home out of ~/airflow.
TEST_HOME = f"ui-tests-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
os.environ.setdefault("AIRFLOW_HOME", str(REPO_ROOT / ".airflow" / TEST_HOME))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
