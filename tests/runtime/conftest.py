"""Fixtures for the runtime core tests: a runtime server per module, or one per xdist worker for
the modules that say they need no fresh one, and its clients.

A start and its stop cost 4-6 s on two loaded cores (2.3-4.2 s to answer, 1.2-1.5 s to stop).
A module sets ``SHARES_RUNTIME = True`` when its tests hold up on a runtime that other modules'
tests used before: every name it creates is its own, and it lists nothing it did not create.
"""

import pytest
from runtime_support import BUCKET, RuntimeProcess


def started_runtime(data_dir) -> RuntimeProcess:
    """A running ``python -m local_sagemaker serve`` with a bucket named ``BUCKET``."""
    server = RuntimeProcess(data_dir).start()
    server.client("s3").create_bucket(Bucket=BUCKET)
    server.client("s3").put_object(Bucket=BUCKET, Key="data/train/one.txt", Body=b"1")
    server.client("s3").put_object(Bucket=BUCKET, Key="data/train/sub/two.txt", Body=b"2")
    return server


@pytest.fixture(scope="session")
def shared_runtime(tmp_path_factory):
    """The worker's runtime for the modules with ``SHARES_RUNTIME = True``."""
    server = started_runtime(tmp_path_factory.mktemp("shared-runtime") / "state")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def runtime(request, tmp_path_factory):
    """The module's runtime: the worker's shared one, else one of its own."""
    if getattr(request.module, "SHARES_RUNTIME", False):
        yield request.getfixturevalue("shared_runtime")
        return
    server = started_runtime(tmp_path_factory.mktemp("runtime") / "state")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sagemaker(runtime):
    return runtime.client("sagemaker")


@pytest.fixture(scope="module")
def s3(runtime):
    return runtime.client("s3")


@pytest.fixture(scope="module")
def logs(runtime):
    return runtime.client("logs")
