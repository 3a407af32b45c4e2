"""Production variants with weights, seen by boto3 through a real runtime process: traffic
splits by CurrentWeight, TargetVariant picks one, UpdateEndpointWeightsAndCapacities moves the
split (Updating, then InService) and refuses what SageMaker refuses."""

from __future__ import annotations

import collections
import json

import pytest
from botocore.exceptions import ClientError
from hosting_support import FAST_WAITER, model_tarball, running_runtime

pytestmark = pytest.mark.e2e
ROLE = "arn:aws:iam::123456789012:role/local"
CALLS = 1000  # at 75/25 the share's standard error is 1.4 %: +-5 % is 3.6 of them


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    with running_runtime(tmp_path_factory.mktemp("weights") / "state") as runtime:
        s3, sagemaker = runtime.client("s3"), runtime.client("sagemaker")
        s3.create_bucket(Bucket="artifacts")
        for version in ("champion", "challenger"):
            s3.put_object(
                Bucket="artifacts",
                Key=f"{version}/model.tar.gz",
                Body=model_tarball(version=version),
            )
            sagemaker.create_model(
                ModelName=version,
                ExecutionRoleArn=ROLE,
                PrimaryContainer={
                    "Image": "local",
                    "ModelDataUrl": f"s3://artifacts/{version}/model.tar.gz",
                },
            )
        yield sagemaker, runtime.client("sagemaker-runtime")


@pytest.fixture(scope="module")
def endpoint(clients):
    """Champion at weight 3, challenger at weight 1."""
    sagemaker, _ = clients
    sagemaker.create_endpoint_config(
        EndpointConfigName="split",
        ProductionVariants=[
            {"VariantName": "champion", "ModelName": "champion", "InitialVariantWeight": 3.0},
            {"VariantName": "challenger", "ModelName": "challenger", "InitialVariantWeight": 1.0},
        ],
    )
    sagemaker.create_endpoint(EndpointName="split", EndpointConfigName="split")
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="split", WaiterConfig=FAST_WAITER)
    return "split"


def invoke(runtime, endpoint: str, **extra) -> tuple[str, str]:
    """(the variant the response header names, the model version that answered)."""
    response = runtime.invoke_endpoint(
        EndpointName=endpoint, Body=json.dumps([1.0, 0.0]), ContentType="application/json", **extra
    )
    return response["InvokedProductionVariant"], json.loads(response["Body"].read())[0]["version"]


def shares(runtime, endpoint: str, calls: int = CALLS) -> dict[str, float]:
    counts = collections.Counter()
    for _ in range(calls):
        variant, version = invoke(runtime, endpoint)
        assert variant == version  # the header names the variant that really answered
        counts[variant] += 1
    return {name: count / calls for name, count in counts.items()}


def set_weights(sagemaker, endpoint: str, **weights: float) -> None:
    sagemaker.update_endpoint_weights_and_capacities(
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[
            {"VariantName": name, "DesiredWeight": weight} for name, weight in weights.items()
        ],
    )
    sagemaker.get_waiter("endpoint_in_service").wait(
        EndpointName=endpoint, WaiterConfig=FAST_WAITER
    )


def test_traffic_splits_as_the_weights_say(clients, endpoint):
    _, runtime = clients
    split = shares(runtime, endpoint)
    assert split["champion"] == pytest.approx(0.75, abs=0.05)
    assert split["challenger"] == pytest.approx(0.25, abs=0.05)


def test_describe_shows_weights_and_instance_counts(clients, endpoint):
    sagemaker, _ = clients
    variants = {
        v["VariantName"]: v for v in sagemaker.describe_endpoint(EndpointName=endpoint)[
            "ProductionVariants"]
    }  # fmt: skip
    assert variants["champion"]["CurrentWeight"] == variants["champion"]["DesiredWeight"] == 3.0
    assert variants["challenger"]["CurrentWeight"] == 1.0
    assert variants["champion"]["CurrentInstanceCount"] == 1
    assert variants["champion"]["DesiredInstanceCount"] == 1


def test_target_variant_reaches_a_variant_of_weight_zero(clients, endpoint):
    sagemaker, runtime = clients
    set_weights(sagemaker, endpoint, champion=1.0, challenger=0.0)
    assert set(shares(runtime, endpoint, calls=200)) == {
        "champion"
    }  # weight 0: no untargeted traffic
    for _ in range(5):
        assert invoke(runtime, endpoint, TargetVariant="challenger") == ("challenger",) * 2


def test_weight_change_moves_the_traffic_and_is_described(clients, endpoint):
    sagemaker, runtime = clients
    sagemaker.update_endpoint_weights_and_capacities(
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[
            {"VariantName": "champion", "DesiredWeight": 1.0},
            {"VariantName": "challenger", "DesiredWeight": 1.0},
        ],
    )
    statuses = {sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointStatus"]}
    sagemaker.get_waiter("endpoint_in_service").wait(
        EndpointName=endpoint, WaiterConfig=FAST_WAITER
    )
    assert statuses <= {"Updating", "InService"}
    variants = sagemaker.describe_endpoint(EndpointName=endpoint)["ProductionVariants"]
    assert {v["VariantName"]: v["CurrentWeight"] for v in variants} == {
        "champion": 1.0,
        "challenger": 1.0,
    }
    split = shares(runtime, endpoint)
    assert split["challenger"] == pytest.approx(0.5, abs=0.05)


def error_of(call, **arguments) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call(**arguments)
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


def test_weight_updates_refuse_what_sagemaker_refuses(clients, endpoint):
    sagemaker, _ = clients
    update = sagemaker.update_endpoint_weights_and_capacities
    assert error_of(
        update,
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[{"VariantName": "nobody", "DesiredWeight": 1.0}],
    ) == (
        "ValidationException",
        'The variant name(s) "nobody" is/are not present within endpoint configuration "split".',
    )
    assert error_of(
        update,
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[
            {"VariantName": "champion", "DesiredWeight": 1.0},
            {"VariantName": "champion", "DesiredWeight": 2.0},
        ],
    ) == ("ValidationException", 'The variant name "champion" was non-unique within the request.')
    code, message = error_of(
        update,
        EndpointName="missing",
        DesiredWeightsAndCapacities=[{"VariantName": "champion", "DesiredWeight": 1.0}],
    )
    assert (code, message) == (
        "ValidationException",
        'Could not find endpoint "arn:aws:sagemaker:us-east-1:123456789012:endpoint/missing".',
    )
    code, message = error_of(
        update,
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[{"VariantName": "champion"}],
    )
    assert "give DesiredWeight, DesiredInstanceCount or both" in message


def test_untargeted_request_to_all_zero_weights_names_the_way_out(clients, endpoint):
    sagemaker, runtime = clients
    set_weights(sagemaker, endpoint, champion=0.0, challenger=0.0)
    try:
        code, message = error_of(
            runtime.invoke_endpoint, EndpointName=endpoint, Body=b"[1, 0]",
            ContentType="application/json",
        )  # fmt: skip
        assert code == "ValidationError" and "has weight 0" in message
    finally:
        set_weights(sagemaker, endpoint, champion=1.0, challenger=1.0)


def test_champion_challenger_promotion_sequence(clients):
    """The promotion the pipeline runs: champion alone; UpdateEndpoint to champion (weight 1)
    beside challenger (weight 0); UpdateEndpointWeightsAndCapacities to swap the weights;
    UpdateEndpoint to the challenger alone. Users never see the challenger before the swap."""
    sagemaker, runtime = clients
    configs = {
        "champion-only": [("champion", 1.0)],
        "champion-and-challenger": [("champion", 1.0), ("challenger", 0.0)],
        "challenger-only": [("challenger", 1.0)],
    }
    for config, variants in configs.items():
        sagemaker.create_endpoint_config(
            EndpointConfigName=config,
            ProductionVariants=[
                {"VariantName": name, "ModelName": name, "InitialVariantWeight": weight}
                for name, weight in variants
            ],
        )
    waiter = sagemaker.get_waiter("endpoint_in_service")
    sagemaker.create_endpoint(EndpointName="promote", EndpointConfigName="champion-only")
    waiter.wait(EndpointName="promote", WaiterConfig=FAST_WAITER)
    sagemaker.update_endpoint(EndpointName="promote", EndpointConfigName="champion-and-challenger")
    waiter.wait(EndpointName="promote", WaiterConfig=FAST_WAITER)
    assert set(shares(runtime, "promote", calls=100)) == {"champion"}
    assert invoke(runtime, "promote", TargetVariant="challenger") == ("challenger",) * 2
    set_weights(sagemaker, "promote", champion=0.0, challenger=1.0)
    assert set(shares(runtime, "promote", calls=100)) == {"challenger"}
    sagemaker.update_endpoint(EndpointName="promote", EndpointConfigName="challenger-only")
    waiter.wait(EndpointName="promote", WaiterConfig=FAST_WAITER)
    described = sagemaker.describe_endpoint(EndpointName="promote")
    assert described["EndpointConfigName"] == "challenger-only"
    assert [(v["VariantName"], v["CurrentWeight"]) for v in described["ProductionVariants"]] == [
        ("challenger", 1.0)
    ]
    assert set(shares(runtime, "promote", calls=50)) == {"challenger"}
