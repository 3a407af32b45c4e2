"""The hostile-input suite: requests sent as an attacker would send them (curl without keys, a
browser page of another origin, crafted archives, hostile pictures), each counted.

At the end of the session the ledger prints how many hostile inputs were tried, how many got a
clean 4xx, how many a 5xx (must be 0), and the damage found: files outside the data dir, lost
objects and orphan processes (all must be 0). Every test also asserts its own part of that.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from runtime_access import RuntimeProcess

# The runtime tests' job helpers (start_script_job, wait_for_status, ...).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))

from hostile_support import BUCKET, LEDGER, PLANTED_BODY, PLANTED_KEY, HostileLedger


@pytest.fixture(scope="session")
def ledger() -> HostileLedger:
    return LEDGER


def pytest_terminal_summary(terminalreporter):
    if LEDGER.statuses or LEDGER.damage:
        terminalreporter.write_sep("=", "hostile-input ledger")
        terminalreporter.write_line(LEDGER.summary())


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    """A runtime holding a planted source dir, with a short request timeout for half-sent
    requests."""
    server = RuntimeProcess(tmp_path_factory.mktemp("security") / "state").start(
        {"LOCAL_SAGEMAKER_REQUEST_TIMEOUT_SECONDS": "2"}
    )
    s3 = server.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=PLANTED_KEY, Body=PLANTED_BODY)
    yield server
    server.stop()
