"""The challenger on a live endpoint, through the pipeline's own request builders and hook on a
real runtime: it joins beside the champion at weight 0, answers only requests that name it, and
after the decision either takes the traffic and serves alone or is withdrawn. The project's first
model is tried alone on the run's trial endpoint instead, and the endpoint users call exists only
once it is Approved. At every step, untargeted requests to the endpoint users call are answered
by Approved versions only (the invariant of README "Champion and challenger on the endpoint")."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime

import pytest
from hosting_support import model_tarball
from runtime_access import aws_connection
from runtime_support import BUCKET, REPO_ROOT, ROLE_ARN

if str(REPO_ROOT / "plugins") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "plugins"))
os.environ.setdefault("AIRFLOW_HOME", str(REPO_ROOT / ".airflow" / "pipeline-tests"))
from sagemaker_lifecycle import request_builders as rb
from sagemaker_lifecycle.hooks import SageMakerLifecycleHook
from sagemaker_lifecycle.naming import run_names
from sagemaker_lifecycle.settings import load_settings

pytestmark = pytest.mark.e2e
FEATURES = [1.0, 0.0]
CALLS = 30  # untargeted requests per step: at weight 0 none may reach the challenger


@pytest.fixture
def hook(runtime, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(aws_connection(runtime.url)))
    return SageMakerLifecycleHook(aws_conn_id="aws_default")


def deploy_model(sagemaker, s3, name: str, version: str) -> None:
    key = f"challenger/{name}/model.tar.gz"
    s3.put_object(Bucket=BUCKET, Key=key, Body=model_tarball(version=version))
    container = {"Image": "pytorch-inference:2.5-cpu-py311", "ModelDataUrl": f"s3://{BUCKET}/{key}"}
    sagemaker.create_model(ModelName=name, ExecutionRoleArn=ROLE_ARN, PrimaryContainer=container)


def answered_by(runtime, endpoint: str, calls: int = CALLS, **target) -> set[str]:
    """The model versions that answered `calls` requests (untargeted unless `target` names one)."""
    client = runtime.client("sagemaker-runtime")
    versions = set()
    for _ in range(calls):
        response = client.invoke_endpoint(EndpointName=endpoint, Body=json.dumps(FEATURES),
                                          ContentType="application/json", **target)  # fmt: skip
        versions.add(json.loads(response["Body"].read())[0]["version"])
    return versions


def settings_of(project: str) -> dict:
    return load_settings({
        "project": {"name": project},
        "deployment": {"update": {"wait_seconds": 0}},
    })  # fmt: skip


def deploy(hook, deployment: dict) -> None:
    """EndpointOperator's steps, waiting here: the config, then the endpoint, until InService."""
    hook.ensure_endpoint_config(deployment["EndpointConfig"])
    hook.deploy_endpoint(deployment["Endpoint"], interval=1, timeout=300)


@pytest.mark.parametrize("approved", [True, False], ids=["approved", "rejected"])
def test_the_challenger_serves_untargeted_requests_only_once_approved(
    runtime, sagemaker, s3, hook, approved
):
    project = f"promo{'a' if approved else 'r'}"
    settings = settings_of(project)
    champion = run_names(project, "manual__champion", datetime(2026, 11, 1))
    names = run_names(project, "manual__challenger", datetime(2026, 11, 8))
    deploy_model(sagemaker, s3, champion.model, "champion")
    deploy_model(sagemaker, s3, names.model, "challenger")
    deploy(hook, {"EndpointConfig": rb.endpoint_config_request(settings, champion),
                  "Endpoint": rb.endpoint_request(settings, champion)})  # fmt: skip
    endpoint = names.endpoint
    trying = rb.challenger_deployment(settings, names, hook.serving_config(endpoint))
    assert trying["Endpoint"]["EndpointName"] == endpoint  # beside the champion
    deploy(hook, trying)
    tried_on = trying["EndpointConfig"]
    assert answered_by(runtime, endpoint) == {"champion"}
    assert answered_by(runtime, endpoint, calls=3, TargetVariant="Challenger") == {"challenger"}

    actions = rb.promotion_actions(settings, names, tried_on, approved=approved)
    if approved:
        assert hook.shift_traffic(actions["traffic"])
        sagemaker.get_waiter("endpoint_in_service").wait(
            EndpointName=endpoint, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
        assert answered_by(runtime, endpoint) == {"challenger"}
        assert not hook.shift_traffic(actions["traffic"])  # a retried task: nothing to do
    deploy(hook, actions["endpoint"])
    deleted = hook.retire_challenger(actions["retired"])
    assert answered_by(runtime, endpoint) == {"challenger" if approved else "champion"}
    described = sagemaker.describe_endpoint(EndpointName=endpoint)
    assert [v["VariantName"] for v in described["ProductionVariants"]] == ["AllTraffic"]
    with pytest.raises(sagemaker.exceptions.ClientError, match="Challenger is not deployed"):
        answered_by(runtime, endpoint, calls=1, TargetVariant="Challenger")
    # The challenger config goes; its model only when it was withdrawn.
    expected = [f"endpoint config {names.challenger_endpoint_config}"]
    assert deleted == expected + ([] if approved else [f"model {names.model}"])
    assert not hook.shift_traffic(  # the endpoint moved on from the challenger config
        rb.promotion_actions(settings, names, tried_on, approved=True)["traffic"]
    )
    sagemaker.delete_endpoint(EndpointName=endpoint)


@pytest.mark.parametrize("approved", [True, False], ids=["approved", "rejected"])
def test_the_first_model_is_tried_on_a_trial_endpoint_and_serves_users_only_once_approved(
    runtime, sagemaker, s3, hook, approved
):
    """No config with every weight 0 anywhere: the first model is its trial endpoint's only
    variant at weight 1, and the endpoint users call is created from the run's one-variant
    config once it is Approved; the trial endpoint goes either way."""
    project = f"first{'a' if approved else 'r'}"
    settings = settings_of(project)
    names = run_names(project, "manual__first", datetime(2026, 11, 1))
    deploy_model(sagemaker, s3, names.model, "first")
    trying = rb.challenger_deployment(settings, names, hook.serving_config(names.endpoint))
    deploy(hook, trying)
    trial = names.trial_endpoint
    assert trying["Endpoint"]["EndpointName"] == trial
    assert answered_by(runtime, trial, calls=3) == {"first"}  # untargeted: a normal endpoint
    assert answered_by(runtime, trial, calls=3, TargetVariant="Challenger") == {"first"}
    assert hook.endpoint_config_of(names.endpoint) is None  # no user can reach it

    tried_on = hook.serving_config(trial)  # DescribeEndpointConfig, as plan_promotion reads it
    actions = rb.promotion_actions(settings, names, tried_on, approved=approved)
    assert actions["traffic"] is None
    if approved:
        deploy(hook, actions["endpoint"])
    deleted = hook.retire_challenger(actions["retired"])
    assert deleted == [f"trial endpoint {trial}",
                       f"endpoint config {names.challenger_endpoint_config}",
                       *([] if approved else [f"model {names.model}"])]  # fmt: skip
    assert hook.endpoint_config_of(trial) is None
    if not approved:
        assert hook.endpoint_config_of(names.endpoint) is None  # never created
        return
    assert answered_by(runtime, names.endpoint) == {"first"}
    described = sagemaker.describe_endpoint(EndpointName=names.endpoint)
    assert described["EndpointConfigName"] == names.endpoint_config
    assert [v["VariantName"] for v in described["ProductionVariants"]] == ["AllTraffic"]
    assert "BlueGreenUpdatePolicy" in described["LastDeploymentConfig"]
    sagemaker.delete_endpoint(EndpointName=names.endpoint)
