"""Endpoint updates through the pipeline's own code on the local runtime: v1 serves, a v2 whose
model fails every request replaces it, and the endpoint ends back on v1, answering.

- the deploy task (EndpointOperator, deferred to the provider's SageMakerTrigger under
  ``airflow dags test``) fails naming both configs when the rollback alarm rolled v2 back;
- without alarms, the smoke test's rollback brings v1 back.
"""

import json
import os
import sys
import threading

import pytest
from hosting_support import model_tarball
from runtime_access import aws_connection
from runtime_support import BUCKET, REPO_ROOT, ROLE_ARN, airflow_dags_test

# Airflow puts plugins/ on sys.path; the pipeline's package is imported the same way here, with
# in-process Airflow's config kept out of ~/airflow (as tests/pipeline/conftest.py does).
if str(REPO_ROOT / "plugins") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "plugins"))
os.environ.setdefault("AIRFLOW_HOME", str(REPO_ROOT / ".airflow" / "pipeline-tests"))
from sagemaker_lifecycle import tasks
from sagemaker_lifecycle.hooks import SageMakerLifecycleHook
from sagemaker_lifecycle.settings import load_settings

pytestmark = pytest.mark.e2e
FEATURES = [1.0, 0.0]


def deployment_requests(endpoint: str, version: str, deployment_config: dict | None = None):
    """The ModelOperator and EndpointOperator configs of `version`'s model on `endpoint`."""
    name = f"{endpoint}-{version}"
    model = {
        "ModelName": name,
        "ExecutionRoleArn": ROLE_ARN,
        "PrimaryContainer": {"Image": "pytorch-inference:2.5-cpu-py311",
                             "ModelDataUrl": f"s3://{BUCKET}/updates/{version}/model.tar.gz"},
    }  # fmt: skip
    variant = {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1,
               "InstanceType": "ml.m5.large"}  # fmt: skip
    endpoint_request = {"EndpointName": endpoint, "EndpointConfigName": name}
    if deployment_config:
        endpoint_request["DeploymentConfig"] = deployment_config
    return {
        "model": model,
        "endpoint": {
            "EndpointConfig": {"EndpointConfigName": name, "ProductionVariants": [variant]},
            "Endpoint": endpoint_request,
        },
    }


@pytest.fixture(scope="module")
def models(s3):
    s3.put_object(Bucket=BUCKET, Key="updates/v1/model.tar.gz", Body=model_tarball(version="v1"))
    s3.put_object(
        Bucket=BUCKET,
        Key="updates/v2/model.tar.gz",
        Body=model_tarball(version="v2", fail_requests="v2 cannot score"),
    )


class Traffic:
    """A client invoking the endpoint in a loop; `answers` holds (HTTP status, version or error
    code) of each request."""

    def __init__(self, runtime, endpoint: str):
        self.client, self.endpoint = runtime.client("sagemaker-runtime"), endpoint
        self.answers: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._invoke)

    def _invoke(self):
        while not self._stop.is_set():
            try:
                response = self.client.invoke_endpoint(
                    EndpointName=self.endpoint, Body=json.dumps(FEATURES),
                    ContentType="application/json",
                )  # fmt: skip
                self.answers.append((200, json.loads(response["Body"].read())[0]["version"]))
            except self.client.exceptions.ModelError:
                self.answers.append((424, "ModelError"))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def test_the_deploy_task_fails_naming_both_configs_when_the_alarm_rolled_v2_back(
    runtime, sagemaker, models, tmp_path
):
    def deploy(version: str, deployment_config: dict | None = None):
        requests = deployment_requests("guarded", version, deployment_config)
        environment = {
            "RUNTIME_ENDPOINT_UPDATE": json.dumps(requests),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        }
        return airflow_dags_test(
            runtime, tmp_path / f"airflow-{version}", "runtime_endpoint_update", environment
        )

    first = deploy("v1")
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    canary = {
        "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {
            "Type": "CANARY", "WaitIntervalInSeconds": 120,
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 20},
        }},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "guarded-5xx"}]},
    }  # fmt: skip
    with Traffic(runtime, "guarded") as traffic:
        second = deploy("v2", canary)
    output = second.stdout + second.stderr
    assert second.returncode != 0, output[-4000:]
    assert "DEFERRED" in output or "deferred" in output.lower()
    assert (
        "endpoint guarded is InService on config guarded-v1, not on guarded-v2 that this "
        "deployment asked for: SageMaker rolled the update back (Alarm guarded-5xx" in output
    )
    endpoint = sagemaker.describe_endpoint(EndpointName="guarded")
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == (
        "InService", "guarded-v1",
    )  # fmt: skip
    assert endpoint["LastDeploymentConfig"] == canary
    assert (424, "ModelError") in traffic.answers  # v2 took its canary share, and failed
    assert set(traffic.answers) <= {(200, "v1"), (424, "ModelError")}  # none dropped
    assert traffic.answers[-5:] == [(200, "v1")] * 5


def test_the_smoke_test_rolls_a_failing_v2_back_to_v1_without_alarms(
    runtime, sagemaker, s3, models, monkeypatch
):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(aws_connection(runtime.url)))
    settings = load_settings({
        "polling": {"interval_seconds": 1, "timeout_seconds": 120},
        "transform": {"content_type": "application/json"},  # what the test model reads
        # The smoke test names the challenger's variant: here v2's.
        "deployment": {"variant_name": "Champion", "challenger_variant_name": "AllTraffic",
                       "mode": "single_model"},  # the test model is one model, not a prefix
    })  # fmt: skip
    s3.put_object(Bucket=BUCKET, Key="updates/test/001.Cat/one.json", Body=json.dumps(FEATURES))
    dataset = {"channels": {"test": f"s3://{BUCKET}/updates/test/"}}
    hook = SageMakerLifecycleHook(aws_conn_id="aws_default")

    def deploy(version: str, retried: bool = False) -> dict:
        requests = deployment_requests("smoked", version)
        hook.ensure_model(requests["model"])
        hook.ensure_endpoint_config(requests["endpoint"]["EndpointConfig"])
        if retried:  # a task retried mid-update adopts it (UpdateEndpoint would be refused)
            assert hook.start_endpoint_deployment(requests["endpoint"]["Endpoint"])
            assert sagemaker.describe_endpoint(EndpointName="smoked")["EndpointStatus"] == (
                "Updating"
            )
        return hook.deploy_endpoint(requests["endpoint"]["Endpoint"], interval=1, timeout=120)

    deploy("v1")
    assert not hook.start_endpoint_deployment(  # already serving v1: nothing to do or wait for
        deployment_requests("smoked", "v1")["endpoint"]["Endpoint"]
    )
    # No alarm: v2 goes live.
    assert deploy("v2", retried=True)["EndpointConfigName"] == "smoked-v2"
    endpoint = {"EndpointName": "smoked", "EndpointConfigName": "smoked-v2",
                "PreviousEndpointConfigName": "smoked-v1"}  # fmt: skip
    # v2's own error (its predict_fn), then the rollback.
    rolled_back = (
        r"(?s)smoke test of smoked \(v2-model\) failed .*v2 cannot score.*rolled back to smoked-v1"
    )
    with pytest.raises(RuntimeError, match=rolled_back):
        tasks.smoke_test_endpoint.function(settings, dataset, endpoint, ["v2-model"])
    described = sagemaker.describe_endpoint(EndpointName="smoked")
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == (
        "InService", "smoked-v1",
    )  # fmt: skip
    answer = runtime.client("sagemaker-runtime").invoke_endpoint(
        EndpointName="smoked", Body=json.dumps(FEATURES), ContentType="application/json"
    )
    assert json.loads(answer["Body"].read())[0]["version"] == "v1"
