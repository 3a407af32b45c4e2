"""Fixtures for the runtime core tests: one runtime server per module, and its clients."""

import pytest
from runtime_support import BUCKET, RuntimeProcess


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    """A running ``python -m local_sagemaker serve`` with a bucket named ``BUCKET``."""
    server = RuntimeProcess(tmp_path_factory.mktemp("runtime") / "state").start()
    server.client("s3").create_bucket(Bucket=BUCKET)
    server.client("s3").put_object(Bucket=BUCKET, Key="data/train/one.txt", Body=b"1")
    server.client("s3").put_object(Bucket=BUCKET, Key="data/train/sub/two.txt", Body=b"2")
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
