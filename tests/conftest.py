"""Project-wide test set-up: the repository root is importable, as for Airflow and the runtime.

`make test` runs the suite in parallel with pytest-xdist (`-n`, `--dist loadfile`): each worker is
its own process, so every session- or module-scoped fixture exists once per worker, and a module
runs whole on one worker (its module fixtures are never built twice). A new test that needs a
runtime therefore:

- asks for an existing fixture: `runtime` (tests/runtime, one per module), `local_runtime` and
  `airflow` (tests/pipeline, one per worker), or starts `runtime_access.RuntimeProcess(data_dir)`
  itself; never a fixed port (`runtime_access.free_port()`) or a shared path outside
  `tmp_path`/`tmp_path_factory` (per worker already);
- gets its clients and keys from `runtime_access` (client, client_environment, aws_connection);
- is marked `e2e` when it starts a server or a process (`pytestmark = pytest.mark.e2e`), so that
  `make test-fast` stays fast; `--strict-markers` refuses any other marker name;
- does not depend on another module's jobs, endpoints or Airflow runs: under xdist, and under
  `-k`, that module may run elsewhere or not at all.
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
