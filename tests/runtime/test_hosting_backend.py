"""Hosting operations on the backend over real services (store, moto S3, logs, model servers)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from hosting_support import create_bucket, expected_label, model_tarball, start_backend, wait_for
from runtime_support import process_alive
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from local_sagemaker.errors import ValidationException
from local_sagemaker.sagemaker.hosting import ENDPOINT_PROCESSES

pytestmark = pytest.mark.e2e  # starts real processes

BUCKET = "models"
ROLE = "arn:aws:iam::123456789012:role/local"


@pytest.fixture
def backend(tmp_path):
    backend = start_backend(tmp_path / "state")
    create_bucket(backend.hosting.s3, BUCKET)
    for version in ("v1", "v2"):
        backend.hosting.s3.write(BUCKET, f"{version}/model.tar.gz", model_tarball(version=version))
    backend.hosting.s3.write(
        BUCKET, "broken/model.tar.gz", model_tarball(fail_to_load="bad weights")
    )
    backend.hosting.s3.write(
        BUCKET, "failing/model.tar.gz", model_tarball(version="v2", fail_requests="bad v2")
    )
    yield backend
    backend.shutdown()


def deploy(backend, name: str, artifact: str, instances: int = 1) -> dict:
    backend.hosting.create_model(
        {
            "ModelName": name,
            "ExecutionRoleArn": ROLE,
            "PrimaryContainer": {"Image": "local", "ModelDataUrl": f"s3://{BUCKET}/{artifact}"},
        }
    )
    backend.hosting.create_endpoint_config(
        {
            "EndpointConfigName": name,
            "ProductionVariants": [
                {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": instances}
            ],
        }
    )
    backend.hosting.create_endpoint({"EndpointName": name, "EndpointConfigName": name})
    return wait_for(
        lambda: backend.hosting.describe_endpoint({"EndpointName": name}),
        "EndpointStatus",
        ("InService", "Failed"),
    )


def invoke(backend, name: str, payload) -> tuple[int, dict, bytes]:
    body = json.dumps(payload).encode()
    environ = EnvironBuilder(
        method="POST",
        path=f"/endpoints/{name}/invocations",
        data=body,
        headers={"Content-Type": "application/json"},
    ).get_environ()
    response = backend.hosting.invoke_endpoint(name, Request(environ))
    return response.status_code, dict(response.headers), response.get_data()


def test_endpoint_goes_in_service_and_answers(backend):
    endpoint = deploy(backend, "good", "v1/model.tar.gz")
    assert endpoint["EndpointStatus"] == "InService"
    variant = endpoint["ProductionVariants"][0]
    assert variant["VariantName"] == "AllTraffic"
    assert variant["DeployedImages"][0]["SpecifiedImage"] == "local"
    status, headers, body = invoke(backend, "good", [0.1, 0.9])
    assert status == 200
    assert headers["x-Amzn-Invoked-Production-Variant"] == "AllTraffic"
    assert json.loads(body)[0]["label"] == expected_label([0.1, 0.9])


def test_model_fn_error_fails_endpoint_with_reason(backend):
    endpoint = deploy(backend, "broken", "broken/model.tar.gz")
    assert endpoint["EndpointStatus"] == "Failed"
    assert "bad weights" in endpoint["FailureReason"]
    assert invoke(backend, "broken", [1, 2])[0] == 400


def test_duplicates_and_missing_resources_answer_sagemaker_texts(backend):
    deploy(backend, "dup", "v1/model.tar.gz")
    arn = "arn:aws:sagemaker:us-east-1:123456789012"
    with pytest.raises(ValidationException, match=f'existing model "{arn}:model/dup"'):
        backend.hosting.create_model({"ModelName": "dup", "PrimaryContainer": {"Image": "x"}})
    with pytest.raises(ValidationException, match="existing endpoint configuration"):
        backend.hosting.create_endpoint_config(
            {
                "EndpointConfigName": "dup",
                "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "dup"}],
            }
        )
    with pytest.raises(ValidationException, match=f'existing endpoint "{arn}:endpoint/dup"'):
        backend.hosting.create_endpoint({"EndpointName": "dup", "EndpointConfigName": "dup"})
    with pytest.raises(ValidationException, match=f'Could not find model "{arn}:model/nope"'):
        backend.hosting.create_endpoint_config(
            {
                "EndpointConfigName": "c2",
                "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "nope"}],
            }
        )
    with pytest.raises(ValidationException, match=f'Could not find endpoint "{arn}:endpoint/x"'):
        backend.hosting.delete_endpoint({"EndpointName": "x"})
    with pytest.raises(ValidationException, match="Could not find model data at s3://models/no"):
        backend.hosting.create_model(
            {"ModelName": "m", "PrimaryContainer": {"Image": "x", "ModelDataUrl": "s3://models/no"}}
        )


def test_lists_filter_sort_and_page(backend):
    for name in ("alpha", "beta", "gamma"):
        backend.hosting.create_model({"ModelName": name, "PrimaryContainer": {"Image": "x"}})
    first = backend.hosting.list_models(
        {"SortBy": "Name", "SortOrder": "Ascending", "MaxResults": 2}
    )
    assert [m["ModelName"] for m in first["Models"]] == ["alpha", "beta"]
    second = backend.hosting.list_models(
        {"SortBy": "Name", "SortOrder": "Ascending", "NextToken": first["NextToken"]}
    )
    assert [m["ModelName"] for m in second["Models"]] == ["gamma"]
    assert "NextToken" not in second
    assert [
        m["ModelName"] for m in backend.hosting.list_models({"NameContains": "ET"})["Models"]
    ] == ["beta"]


def add_config(backend, name: str, artifact: str) -> None:
    backend.hosting.create_model(
        {"ModelName": name, "PrimaryContainer": {"Image": "local", "ModelDataUrl": artifact}}
    )
    backend.hosting.create_endpoint_config(
        {
            "EndpointConfigName": name,
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": name}],
        }
    )


def test_update_swaps_config_without_dropping_requests(backend):
    deploy(backend, "live", "v1/model.tar.gz")
    add_config(backend, "live-v2", f"s3://{BUCKET}/v2/model.tar.gz")
    answers: list[tuple[int, str]] = []
    stop = threading.Event()

    def keep_invoking():
        while not stop.is_set():
            status, _, body = invoke(backend, "live", [1.0, 0.0])
            answers.append((status, json.loads(body)[0]["version"] if status == 200 else ""))

    client = threading.Thread(target=keep_invoking)
    client.start()
    backend.hosting.update_endpoint({"EndpointName": "live", "EndpointConfigName": "live-v2"})
    assert (
        backend.hosting.describe_endpoint({"EndpointName": "live"})["EndpointStatus"] == "Updating"
    )
    endpoint = wait_for(
        lambda: backend.hosting.describe_endpoint({"EndpointName": "live"}),
        "EndpointStatus",
        ("InService",),
    )
    # Answers from `in_service` on were asked after the swap (the one before may have been in
    # flight): the client goes on until it has three of them, however slow the host.
    in_service = len(answers) + 1
    deadline = time.monotonic() + 30
    while len(answers) < in_service + 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    client.join()
    assert endpoint["EndpointConfigName"] == "live-v2"
    assert {status for status, _ in answers} == {200}
    versions = [version for _, version in answers]
    assert versions[0] == "v1" and set(versions[in_service:]) == {"v2"}, versions
    assert versions == sorted(versions)  # never back to v1 once v2 answered


def test_failed_update_keeps_old_config_serving(backend):
    deploy(backend, "steady", "v1/model.tar.gz")
    add_config(backend, "steady-broken", f"s3://{BUCKET}/broken/model.tar.gz")
    backend.hosting.update_endpoint(
        {"EndpointName": "steady", "EndpointConfigName": "steady-broken"}
    )
    endpoint = wait_for(
        lambda: backend.hosting.describe_endpoint({"EndpointName": "steady"}),
        "EndpointStatus",
        ("InService", "Failed"),
    )
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == "steady"
    assert "bad weights" in endpoint["FailureReason"]
    assert invoke(backend, "steady", [1.0, 0.0])[0] == 200


def test_delete_stops_the_model_server(backend):
    deploy(backend, "gone", "v1/model.tar.gz")
    server = backend.hosting.endpoint_fleet.current("gone").variants[0].servers[0]
    backend.hosting.delete_endpoint({"EndpointName": "gone"})
    with pytest.raises(ValidationException):
        backend.hosting.describe_endpoint({"EndpointName": "gone"})
    status, headers, body = invoke(backend, "gone", [1, 2])
    assert (status, headers["x-amzn-ErrorType"]) == (400, "ValidationError")
    assert json.loads(body)["message"] == "Endpoint gone of account 123456789012 not found."
    deadline = time.monotonic() + 10
    while server.is_running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not server.is_running()


def test_restart_kills_leftover_servers_and_relaunches_endpoints(tmp_path):
    first = start_backend(tmp_path / "state")
    create_bucket(first.hosting.s3, BUCKET)
    first.hosting.s3.write(BUCKET, "v1/model.tar.gz", model_tarball())
    deploy(first, "durable", "v1/model.tar.gz")
    old_server = first.hosting.endpoint_fleet.current("durable").variants[0].servers[0]
    # No shutdown: the first runtime "dies" with its model server still running.
    second = start_backend(tmp_path / "state")
    try:
        assert not old_server.is_running()
        endpoint = wait_for(
            lambda: second.hosting.describe_endpoint({"EndpointName": "durable"}),
            "EndpointStatus",
            ("InService", "Failed"),
        )
        assert endpoint["EndpointStatus"] == "InService"
        assert invoke(second, "durable", [0.0, 1.0])[0] == 200
    finally:
        second.shutdown()


def test_shutdown_during_a_deployment_leaves_no_model_server(tmp_path):
    backend = start_backend(tmp_path / "state")
    create_bucket(backend.hosting.s3, BUCKET)
    backend.hosting.s3.write(BUCKET, "slow/model.tar.gz", model_tarball(load_seconds=30))
    add_config(backend, "slow", f"s3://{BUCKET}/slow/model.tar.gz")
    backend.hosting.create_endpoint({"EndpointName": "slow", "EndpointConfigName": "slow"})
    deadline = time.monotonic() + 20
    while not backend.hosting.store.list(ENDPOINT_PROCESSES) and time.monotonic() < deadline:
        time.sleep(0.05)
    [record] = backend.hosting.store.list(ENDPOINT_PROCESSES)
    pid = record["Processes"][0]["pid"]
    assert process_alive(pid)
    backend.shutdown()
    assert not process_alive(pid)
    assert backend.hosting.store.list(ENDPOINT_PROCESSES) == []


def test_dead_model_server_answers_internal_failure(backend):
    deploy(backend, "crashy", "v1/model.tar.gz")
    backend.hosting.endpoint_fleet.current("crashy").variants[0].servers[0].stop()
    status, headers, body = invoke(backend, "crashy", [1.0, 0.0])
    assert (status, headers["x-amzn-ErrorType"]) == (500, "InternalFailure")
    assert "/aws/sagemaker/Endpoints/crashy" in json.loads(body)["message"]


def test_each_instance_is_a_model_server_with_its_own_log_stream(backend):
    endpoint = deploy(backend, "pair", "v1/model.tar.gz", instances=2)
    assert endpoint["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    servers = backend.hosting.endpoint_fleet.current("pair").variants[0].servers
    assert len({server.port for server in servers}) == 2
    for _ in range(10):
        assert invoke(backend, "pair", [0.5, 0.5])[0] == 200
    group = {"logGroupName": "/aws/sagemaker/Endpoints/pair"}
    deadline = time.monotonic() + 10
    while len(backend.hosting.logs.describe_log_streams(group)["logStreams"]) < 2:
        assert time.monotonic() < deadline, "expected one log stream per instance"
        time.sleep(0.05)
    streams = backend.hosting.logs.describe_log_streams(group)["logStreams"]
    assert all(s["logStreamName"].startswith("AllTraffic/i-0") for s in streams)


def blue_green(kind: str, wait_seconds: int, step_percent: int = 20, alarms=()) -> dict:
    """A DeploymentConfig as the pipeline's request builder writes it."""
    routing = {"Type": kind, "WaitIntervalInSeconds": wait_seconds}
    size = {"Type": "CAPACITY_PERCENT", "Value": step_percent}
    if kind == "CANARY":
        routing["CanarySize"] = size
    if kind == "LINEAR":
        routing["LinearStepSize"] = size
    config = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing}}
    if alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in alarms]}
    return config


def update_under_traffic(backend, name: str, artifact: str, deployment_config: dict):
    """Deploy v1 as `name`, update it to `artifact` with `deployment_config` while a client keeps
    invoking and a watcher keeps describing; returns (answers as (HTTP status, version or
    error code), every EndpointStatus seen in order, the final DescribeEndpoint)."""
    deploy(backend, name, "v1/model.tar.gz")
    add_config(backend, f"{name}-v2", f"s3://{BUCKET}/{artifact}")
    answers: list[tuple[int, str]] = []
    statuses: list[str] = []
    stop = threading.Event()

    def keep_invoking():
        while not stop.is_set():
            status, headers, body = invoke(backend, name, [1.0, 0.0])
            answers.append(
                (status, json.loads(body)[0]["version"] if status == 200
                 else headers["x-amzn-ErrorType"])
            )  # fmt: skip

    def keep_describing():
        while not stop.is_set():
            status = backend.hosting.describe_endpoint({"EndpointName": name})["EndpointStatus"]
            if not statuses or statuses[-1] != status:
                statuses.append(status)
            time.sleep(0.005)

    threads = [threading.Thread(target=keep_invoking), threading.Thread(target=keep_describing)]
    for thread in threads:
        thread.start()
    try:
        backend.hosting.update_endpoint(
            {"EndpointName": name, "EndpointConfigName": f"{name}-v2",
             "DeploymentConfig": deployment_config}
        )  # fmt: skip
        time.sleep(0.1)
        endpoint = wait_for(
            lambda: backend.hosting.describe_endpoint({"EndpointName": name}),
            "EndpointStatus",
            ("InService", "Failed"),
        )
        settled = len(answers)
        while len(answers) < settled + 20:  # traffic after the update, on what now serves
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return answers, statuses, endpoint


def test_canary_update_sends_the_canary_share_to_the_new_fleet(backend):
    answers, statuses, endpoint = update_under_traffic(
        backend, "canary", "v2/model.tar.gz", blue_green("CANARY", wait_seconds=8)
    )
    versions = [version for _, version in answers]
    # The canary's baking period: from the new fleet's first answer to the old one's last.
    baking = versions[versions.index("v2") : len(versions) - versions[::-1].index("v1")]
    share = baking.count("v2") / len(baking)
    print(f"canary share: {share:.3f} of {len(baking)} invocations (asked: 0.200)")
    assert len(baking) >= 200
    assert abs(share - 0.20) <= 0.05
    assert {status for status, _ in answers} == {200}
    assert endpoint["EndpointConfigName"] == "canary-v2"
    assert endpoint["LastDeploymentConfig"] == blue_green("CANARY", wait_seconds=8)
    assert "PendingDeploymentSummary" not in endpoint
    assert statuses[-2:] == ["Updating", "InService"]


UPDATE_KINDS = [
    ("ALL_AT_ONCE", {}),
    ("CANARY", {"step_percent": 30}),
    ("LINEAR", {"step_percent": 50}),
]


@pytest.mark.parametrize(("kind", "sizes"), UPDATE_KINDS)
def test_good_update_of_each_kind_ends_on_the_new_model_dropping_nothing(backend, kind, sizes):
    config = blue_green(kind, wait_seconds=2, alarms=["endpoint-5xx"], **sizes)
    answers, statuses, endpoint = update_under_traffic(backend, "good", "v2/model.tar.gz", config)
    assert {status for status, _ in answers} == {200}  # nothing dropped, nothing failed
    assert endpoint["EndpointConfigName"] == "good-v2"
    assert "FailureReason" not in endpoint
    assert [version for _, version in answers[-20:]] == ["v2"] * 20
    assert statuses[-2:] == ["Updating", "InService"]


@pytest.mark.parametrize(("kind", "sizes"), UPDATE_KINDS)
def test_failing_new_model_is_rolled_back_by_the_alarm(backend, kind, sizes):
    config = blue_green(kind, wait_seconds=30, alarms=["endpoint-5xx"], **sizes)
    started = time.monotonic()
    answers, statuses, endpoint = update_under_traffic(backend, "bad", "failing/model.tar.gz",
                                                       config)  # fmt: skip
    assert time.monotonic() - started < 30  # the alarm, not the end of baking, ended it
    # Every request was answered: by v1, or by the new model's own error (ModelError).
    assert {answer for answer in answers if answer != (200, "v1")} <= {(424, "ModelError")}
    assert (424, "ModelError") in answers
    assert answers[-20:] == [(200, "v1")] * 20
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == "bad"
    assert "endpoint-5xx" in endpoint["FailureReason"]
    assert "PendingDeploymentSummary" not in endpoint
    assert statuses[-3:] == ["Updating", "RollingBack", "InService"]


def test_without_alarms_a_failing_model_stays_deployed(backend):
    """No alarm, no automatic rollback: what the pipeline's smoke test is for."""
    answers, _, endpoint = update_under_traffic(
        backend, "unwatched", "failing/model.tar.gz", blue_green("ALL_AT_ONCE", wait_seconds=1)
    )
    assert endpoint["EndpointConfigName"] == "unwatched-v2"
    assert answers[-1] == (424, "ModelError")


def test_rolling_update_policy_is_refused_with_a_clear_message(backend):
    deploy(backend, "rolling", "v1/model.tar.gz")
    add_config(backend, "rolling-v2", f"s3://{BUCKET}/v2/model.tar.gz")
    rolling = {"RollingUpdatePolicy": {
        "MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1}, "WaitIntervalInSeconds": 0,
    }}  # fmt: skip
    with pytest.raises(ValidationException, match="RollingUpdatePolicy is not supported"):
        backend.hosting.update_endpoint(
            {"EndpointName": "rolling", "EndpointConfigName": "rolling-v2",
             "DeploymentConfig": rolling}
        )  # fmt: skip
    endpoint = backend.hosting.describe_endpoint({"EndpointName": "rolling"})
    assert endpoint["EndpointStatus"] == "InService"


def test_weights_and_multi_model_servers_are_handled_across_a_restart(tmp_path):
    first = start_backend(tmp_path / "state")
    create_bucket(first.hosting.s3, BUCKET)
    first.hosting.s3.write(BUCKET, "v1/model.tar.gz", model_tarball())
    first.hosting.s3.write(BUCKET, "many/a.tar.gz", model_tarball(version="a"))
    for name, container in (
        ("single", {"Image": "local", "ModelDataUrl": f"s3://{BUCKET}/v1/model.tar.gz"}),
        ("multi", {"Image": "local", "Mode": "MultiModel", "ModelDataUrl": f"s3://{BUCKET}/many/"}),
    ):
        first.hosting.create_model({"ModelName": name, "PrimaryContainer": container})
    first.hosting.create_endpoint_config({
        "EndpointConfigName": "mixed",
        "ProductionVariants": [
            {"VariantName": "single", "ModelName": "single", "InitialVariantWeight": 1.0},
            {"VariantName": "multi", "ModelName": "multi", "InitialVariantWeight": 1.0},
        ],
    })  # fmt: skip
    first.hosting.create_endpoint({"EndpointName": "mixed", "EndpointConfigName": "mixed"})
    describe = lambda backend: backend.hosting.describe_endpoint({"EndpointName": "mixed"})  # noqa: E731
    wait_for(lambda: describe(first), "EndpointStatus", ("InService",))
    first.hosting.update_endpoint_weights_and_capacities({
        "EndpointName": "mixed",
        "DesiredWeightsAndCapacities": [{"VariantName": "single", "DesiredWeight": 0.0}],
    })  # fmt: skip
    wait_for(lambda: describe(first), "EndpointStatus", ("InService",))
    multi = first.hosting.endpoint_fleet.current("mixed").variants[1]
    with multi.cache_for("a.tar.gz").serving("a.tar.gz") as loaded_server:
        pass
    # No shutdown: the first runtime "dies" with a lazily loaded model server still running.
    second = start_backend(tmp_path / "state")
    try:
        assert not loaded_server.is_running()
        endpoint = wait_for(lambda: describe(second), "EndpointStatus", ("InService", "Failed"))
        weights = {v["VariantName"]: v["CurrentWeight"] for v in endpoint["ProductionVariants"]}
        assert weights == {"single": 0.0, "multi": 1.0}
        live = second.hosting.endpoint_fleet.current("mixed").variants
        assert [variant.weight for variant in live] == [0.0, 1.0]
        assert endpoint["ProductionVariants"][1]["MultiModelStatus"]["LoadedModels"] == []
    finally:
        second.shutdown()
