"""Project-wide test set-up: the repository root is importable, as for Airflow and the runtime.

`make test` runs the suite in parallel with pytest-xdist (`-n`, `--dist loadfile`): each worker is
its own process, so every session- or module-scoped fixture exists once per worker, and a module
runs whole on one worker (its module fixtures are never built twice). A new test that needs a
runtime therefore:

- asks for an existing fixture: `runtime` (tests/runtime: one per module, or the worker's one
  for a module with `SHARES_RUNTIME = True`, see tests/runtime/conftest.py), `local_runtime` and
  `airflow` (tests/pipeline, one per worker), or starts `runtime_access.RuntimeProcess(data_dir)`
  itself; never a fixed port (`runtime_access.free_port()`) or a shared path outside
  `tmp_path`/`tmp_path_factory` (per worker already);
- gets its clients and keys from `runtime_access` (client, client_environment, aws_connection);
- is marked `e2e` when it starts a server or a process (`pytestmark = pytest.mark.e2e`), so that
  `make test-fast` stays fast (a test that asks for one of SERVER_FIXTURES or PROCESS_FIXTURES
  below is marked so here); `--strict-markers` refuses any other marker name;
- does not depend on another module's jobs, endpoints or Airflow runs: under xdist, and under
  `-k`, that module may run elsewhere or not at all.
"""

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# The modules that take longest, longest first: each starts a whole Airflow stack or makes several
# full DAG runs (minutes each). `--dist loadfile` hands modules to workers in collection order,
# after xdist's default reorder by number of tests, which put these modules of 1-10 tests last:
# in CI the backfill's were among the very last tests to run, a tail of minutes. The Makefile turns
# that reorder off (`--no-loadscope-reorder`); this order starts these first, on both workers.
LONGEST_MODULES = (
    "tests/pipeline/test_backfill_e2e.py",  # a stack, two staging runs, a backfill of three
    "tests/pipeline/test_e2e.py",  # four full DAG runs
    "tests/ui/test_ui_e2e.py",  # a stack, a full run, a browser
    "tests/pipeline/test_deferred_jobs_e2e.py",  # a stack and a full run
)


# Fixtures that start a server (the local runtime, an Airflow home wired to one) or a process (a
# training job's train.py, for the model the container tests explain or serve): a test that asks
# for one is an end-to-end test whether or not its module says so. The explanation job's tests
# took 2 of `make test-fast`'s 5 container-side minutes training their model before this said so.
SERVER_FIXTURES = {"runtime", "local_runtime", "airflow", "new_airflow_home"}
PROCESS_FIXTURES = {"model_archive", "trained_model_dir", "finished_job"}


@pytest.fixture(scope="session")
def moto_session():
    """One boto3 session for the clients of moto's in-process AWS (`mock_aws`), kept for the
    worker. A client of a fresh session loads botocore's service models again (0.4-1.2 s at load
    8), and each `mock_aws()` start replaces boto3's default session, so `boto3.client` inside a
    mock paid that once per test. Made after moto's import, which adds moto's stubber to every
    later session; the stubber answers only while a mock is active, and each mock starts empty."""
    import boto3
    from moto import mock_aws  # noqa: F401  (importing moto registers its stubber)

    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(session, config, items):
    """Marks e2e every test that asks for a SERVER_FIXTURES or PROCESS_FIXTURES fixture, then
    runs modules in this order: LONGEST_MODULES, every other module with an e2e test, then the
    rest (fast ones fill the workers' last minutes). A module's tests stay together and in their
    order, so its module fixtures are built once."""
    missing = [path for path in LONGEST_MODULES if not (REPO_ROOT / path).is_file()]
    if missing:
        raise pytest.UsageError(f"tests/conftest.py LONGEST_MODULES names no module at {missing}")
    for item in items:
        if (SERVER_FIXTURES | PROCESS_FIXTURES) & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)
    modules_with_e2e = {item.path for item in items if item.get_closest_marker("e2e")}

    def rank(item) -> tuple[int, int]:
        path = item.path.relative_to(REPO_ROOT).as_posix()
        if path in LONGEST_MODULES:
            return (0, LONGEST_MODULES.index(path))
        return (1, 0) if item.path in modules_with_e2e else (2, 0)

    items.sort(key=rank)
