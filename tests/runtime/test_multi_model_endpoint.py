"""Multi-model endpoints through a real runtime process, seen by boto3: models under one S3
prefix load on first invocation, unload least-recently-used under the memory budget, can be
added while the endpoint serves, and fail with SageMaker's errors naming the TargetModel."""

from __future__ import annotations

import json
import threading
import time

import pytest
from botocore.exceptions import ClientError
from hosting_support import FAST_WAITER, model_tarball, multi_model_status, running_runtime

pytestmark = pytest.mark.e2e
ROLE = "arn:aws:iam::123456789012:role/local"
BALLAST_MB = 60
# Room for two loaded models (each ~BALLAST_MB plus an interpreter), not for three.
BUDGET_MB = 2 * BALLAST_MB + 60


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    budget = {"LOCAL_SAGEMAKER_MULTI_MODEL_MEMORY_MB": str(BUDGET_MB)}
    with running_runtime(tmp_path_factory.mktemp("mme") / "state", budget) as runtime:
        s3, sagemaker = runtime.client("s3"), runtime.client("sagemaker")
        s3.create_bucket(Bucket="artifacts")
        for name in ("a", "b", "c"):
            s3.put_object(
                Bucket="artifacts",
                Key=f"models/{name}.tar.gz",
                Body=model_tarball(version=name, ballast_mb=BALLAST_MB),
            )
        s3.put_object(
            Bucket="artifacts",
            Key="models/broken.tar.gz",
            Body=model_tarball(fail_to_load="weights do not match"),
        )
        s3.put_object(Bucket="artifacts", Key="single/model.tar.gz", Body=model_tarball())
        yield {
            "s3": s3,
            "sagemaker": sagemaker,
            "runtime": runtime.client("sagemaker-runtime"),
            "cloudwatch": runtime.client("cloudwatch"),
        }


def deploy(sagemaker, name: str, container: dict) -> str:
    sagemaker.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer=container)
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": name}],
    )
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST_WAITER)
    return name


@pytest.fixture(scope="module")
def endpoint(clients):
    container = {"Image": "local", "Mode": "MultiModel", "ModelDataUrl": "s3://artifacts/models/"}
    return deploy(clients["sagemaker"], "multi", container)


def invoke(clients, endpoint: str, target_model: str) -> str:
    response = clients["runtime"].invoke_endpoint(
        EndpointName=endpoint,
        TargetModel=target_model,
        Body=json.dumps([1.0, 0.0]),
        ContentType="application/json",
    )
    return json.loads(response["Body"].read())[0]["version"]


def status(clients, endpoint: str) -> dict:
    return multi_model_status(clients["sagemaker"], endpoint)


def error_of(call, **arguments) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call(**arguments)
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


def test_models_load_on_first_invocation_and_are_reused(clients, endpoint):
    assert status(clients, endpoint)["LoadedModels"] == []
    started = time.monotonic()
    assert invoke(clients, endpoint, "a.tar.gz") == "a"
    first = time.monotonic() - started
    started = time.monotonic()
    assert invoke(clients, endpoint, "a.tar.gz") == "a"
    warm = time.monotonic() - started
    described = status(clients, endpoint)
    assert described["LoadedModels"] == ["a.tar.gz"]
    assert described["LoadCountsByModel"] == {"a.tar.gz": 1}
    assert described["ModelCacheHitCount"] >= 1
    assert warm < first  # the second request found the model loaded


def test_least_recently_used_model_is_unloaded_under_the_budget(clients, endpoint):
    for name in ("a", "b", "a", "c"):  # b is now the least recently used of three
        assert invoke(clients, endpoint, f"{name}.tar.gz") == name
    described = status(clients, endpoint)
    assert described["LoadedModels"] == ["a.tar.gz", "c.tar.gz"]
    assert described["ModelUnloadCount"] >= 1
    assert invoke(clients, endpoint, "b.tar.gz") == "b"  # loads again, nothing dropped
    assert status(clients, endpoint)["LoadCountsByModel"]["b.tar.gz"] == 2


def test_concurrent_first_requests_load_a_model_once(clients, endpoint):
    clients["s3"].put_object(
        Bucket="artifacts", Key="models/d.tar.gz", Body=model_tarball(version="d", load_seconds=1)
    )
    answers = []
    threads = [
        threading.Thread(target=lambda: answers.append(invoke(clients, endpoint, "d.tar.gz")))
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == ["d"] * 6  # d was put under the prefix while the endpoint served
    assert status(clients, endpoint)["LoadCountsByModel"]["d.tar.gz"] == 1


def test_a_missing_target_model_is_a_validation_error_naming_it(clients, endpoint):
    code, message = error_of(
        invoke, clients=clients, endpoint=endpoint, target_model="absent.tar.gz"
    )
    assert code == "ValidationError"
    assert "key: models/absent.tar.gz" in message and "TargetModel absent.tar.gz" in message


def test_a_model_that_fails_to_load_is_a_model_error_naming_it(clients, endpoint):
    with pytest.raises(ClientError) as raised:
        invoke(clients, endpoint, "broken.tar.gz")
    error = raised.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["Error"]["Code"] == "ModelError"
    assert "Model broken.tar.gz failed to load" in error["Error"]["Message"]
    assert "weights do not match" in error["OriginalMessage"]
    assert invoke(clients, endpoint, "a.tar.gz") == "a"  # the others keep serving


def test_target_model_headers_are_checked_against_the_endpoint_mode(clients, endpoint):
    code, message = error_of(
        clients["runtime"].invoke_endpoint, EndpointName=endpoint, Body=b"[1, 0]",
        ContentType="application/json",
    )  # fmt: skip
    assert code == "ValidationError"
    assert message.startswith("Request ") and message.endswith("is missing a target model header.")
    single = deploy(
        clients["sagemaker"],
        "single",
        {"Image": "local", "ModelDataUrl": "s3://artifacts/single/model.tar.gz"},
    )
    assert error_of(invoke, clients=clients, endpoint=single, target_model="a.tar.gz") == (
        "ValidationError",
        "Endpoint single is not a multi-model endpoint and does not support target model header.",
    )


def test_load_counts_and_cache_hits_reach_cloudwatch(clients, endpoint):
    invoke(clients, endpoint, "a.tar.gz")
    now = time.time()

    def statistics(metric: str) -> dict:
        (point,) = clients["cloudwatch"].get_metric_statistics(
            Namespace="AWS/SageMaker",
            MetricName=metric,
            Dimensions=[
                {"Name": "EndpointName", "Value": endpoint},
                {"Name": "VariantName", "Value": "AllTraffic"},
            ],
            StartTime=now - 3600,
            EndTime=now + 60,
            Period=3600 * 2,
            Statistics=["SampleCount", "Sum", "Maximum"],
        )["Datapoints"]
        return point

    described = status(clients, endpoint)
    # One LoadedModelCount point per load or unload; a ModelCacheHit point per request.
    assert statistics("ModelLoadingTime")["SampleCount"] == described["ModelLoadCount"]
    assert statistics("ModelCacheHit")["Sum"] == described["ModelCacheHitCount"]
    assert statistics("LoadedModelCount")["Maximum"] >= 2
