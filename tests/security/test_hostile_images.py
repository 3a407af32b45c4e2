"""Hostile pictures sent to a real endpoint serving the project's classifier: each gets a 4xx
naming what is wrong, the server stays up, and a normal picture still gets its answer."""

from __future__ import annotations

import io
import time

import pytest
from botocore.exceptions import ClientError
from hostile_support import BUCKET
from hosting_support import build_classifier_model_dir
from PIL import Image

from local_sagemaker.executor.archives import pack_directory

pytestmark = pytest.mark.e2e


def png(mode: str, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (120, 30, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def endpoint(runtime, tmp_path_factory):
    root = tmp_path_factory.mktemp("classifier")
    model_dir = build_classifier_model_dir(root / "model", ["001.Cat", "002.Dog"])
    archive = pack_directory(model_dir, root / "model.tar.gz")
    runtime.client("s3").upload_file(str(archive), BUCKET, "models/classifier/model.tar.gz")
    sagemaker = runtime.client("sagemaker")
    sagemaker.create_model(
        ModelName="classifier", ExecutionRoleArn="arn:aws:iam::123456789012:role/local",
        PrimaryContainer={"Image": "pytorch-inference:2.5-cpu-py311",
                          "ModelDataUrl": f"s3://{BUCKET}/models/classifier/model.tar.gz",
                          "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}},
    )  # fmt: skip
    sagemaker.create_endpoint_config(EndpointConfigName="classifier", ProductionVariants=[{
        "VariantName": "all", "ModelName": "classifier", "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 1}])  # fmt: skip
    sagemaker.create_endpoint(EndpointName="classifier", EndpointConfigName="classifier")
    deadline = time.monotonic() + 180
    while sagemaker.describe_endpoint(EndpointName="classifier")["EndpointStatus"] == "Creating":
        assert time.monotonic() < deadline, "the classifier endpoint did not come up"
        time.sleep(0.5)
    yield runtime.client("sagemaker-runtime")
    sagemaker.delete_endpoint(EndpointName="classifier")


HOSTILE_PICTURES = {
    "169 Mpx picture (13000x13000 PNG)": (lambda: png("L", (13000, 13000)), 413, "13000x13000"),
    "60 Mpx one-row picture": (lambda: png("1", (60_000_000, 1)), 413, "more than"),
    "truncated JPEG": (lambda: jpeg()[:40], 400, "not a readable picture"),
    "random bytes as image/jpeg": (lambda: b"\x89PNG not really" * 100, 400, "not a readable"),
}  # fmt: skip


@pytest.mark.parametrize("name", HOSTILE_PICTURES)
def test_a_hostile_picture_gets_a_4xx_and_the_endpoint_keeps_serving(endpoint, ledger, name):
    build, status, named = HOSTILE_PICTURES[name]
    body = build()
    with pytest.raises(ClientError) as raised:
        endpoint.invoke_endpoint(EndpointName="classifier", ContentType="image/png", Body=body)
    error = raised.value.response
    # As on AWS: the container's 4xx reaches the client as ModelError (424) carrying it.
    assert ledger.answered(f"endpoint: {name}", error["ResponseMetadata"]["HTTPStatusCode"]) == 424
    assert (error["Error"]["Code"], error["OriginalStatusCode"]) == ("ModelError", status)
    assert named in error["Error"]["Message"]
    answer = endpoint.invoke_endpoint(EndpointName="classifier", ContentType="image/jpeg",
                                      Accept="application/json", Body=jpeg())  # fmt: skip
    assert answer["Body"].read()
