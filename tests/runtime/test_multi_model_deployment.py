"""deployment.mode multi_model on a real runtime, through the pipeline's own request builders,
staging and hook: the candidates that passed, staged under the run's prefix, are tried as one
MultiModel challenger variant at weight 0 beside a single-model champion; every candidate answers
its TargetModel; the promotion moves the traffic to that variant, then the endpoint serves it
alone; an archive put under the prefix later is served without an endpoint update; a request
without TargetModel gets SageMaker's error. A multi-model rollback serves the version's archive
under its candidate's TargetModel."""

from __future__ import annotations

import io
import json
import os
import sys
from datetime import datetime

import pytest
from botocore.exceptions import ClientError
from hosting_support import build_classifier_model_dir, model_tarball
from PIL import Image
from runtime_access import aws_connection
from runtime_support import BUCKET, REPO_ROOT, ROLE_ARN, RuntimeProcess

from local_sagemaker.executor.archives import pack_directory

if str(REPO_ROOT / "plugins") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "plugins"))
os.environ.setdefault("AIRFLOW_HOME", str(REPO_ROOT / ".airflow" / "pipeline-tests"))
from sagemaker_lifecycle import multi_model
from sagemaker_lifecycle import request_builders as rb
from sagemaker_lifecycle.hooks import SageMakerLifecycleHook
from sagemaker_lifecycle.naming import run_names
from sagemaker_lifecycle.settings import load_settings

pytestmark = pytest.mark.e2e
PORT = 9410  # this module's runtime (the multi-model helper's range: 9410-9419)
IMAGE = "pytorch-inference:2.5-cpu-py311"
FEATURES = [1.0, 0.0]
CALLS = 20
CANDIDATES = ("resnet50", "mobilenet_v2")


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    server = RuntimeProcess(tmp_path_factory.mktemp("mme-deployment") / "state", port=PORT)
    server.start()
    server.client("s3").create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


@pytest.fixture
def hook(runtime, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(aws_connection(runtime.url)))
    return SageMakerLifecycleHook(aws_conn_id="aws_default")


def settings_of(project: str) -> dict:
    return load_settings({
        "project": {"name": project},
        "aws": {"bucket": BUCKET, "role_arn": ROLE_ARN, "region": "us-east-1"},
        "images": {"inference": IMAGE},
        "deployment": {"update": {"wait_seconds": 0}},
    })  # fmt: skip


def trained_archive(s3, job: str, version: str) -> str:
    """A training job's model.tar.gz, where SageMaker writes it."""
    key = f"jobs/{job}/output/model.tar.gz"
    s3.put_object(Bucket=BUCKET, Key=key, Body=model_tarball(version=version))
    return f"s3://{BUCKET}/{key}"


def invoke(runtime, endpoint: str, **target) -> tuple[str, str]:
    """(the model version that answered, the variant that did)."""
    response = runtime.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=endpoint, Body=json.dumps(FEATURES), ContentType="application/json", **target
    )
    version = json.loads(response["Body"].read())[0]["version"]
    return version, response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-invoked-production-variant"]


def error_of(runtime, endpoint: str, **target) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        invoke(runtime, endpoint, **target)
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


def deploy(hook, deployment: dict) -> None:
    """EndpointOperator's steps, waiting here: the config, then the endpoint, until InService."""
    hook.ensure_endpoint_config(deployment["EndpointConfig"])
    hook.deploy_endpoint(deployment["Endpoint"], interval=1, timeout=300)


def test_the_candidates_are_tried_and_promoted_as_one_multi_model_variant(runtime, hook):
    s3, sagemaker = runtime.client("s3"), runtime.client("sagemaker")
    settings = settings_of("mme")
    champion = run_names("mme", "manual__champion", datetime(2026, 11, 1))
    names = run_names("mme", "manual__candidates", datetime(2026, 12, 2))
    # The champion of an earlier single_model run serves users.
    champion_archive = trained_archive(s3, champion.training_job, "champion")
    hook.ensure_model(rb.model_request(settings, champion, champion_archive))
    deploy(hook, {"EndpointConfig": rb.endpoint_config_request(settings, champion),
                  "Endpoint": rb.endpoint_request(settings, champion)})  # fmt: skip
    endpoint = names.endpoint

    archives = {c: trained_archive(s3, f"{names.training_job}-{i}", c)
                for i, c in enumerate(CANDIDATES)}  # fmt: skip
    prefix = rb.multi_model_prefix(settings, names)
    multi_model.stage_for_deployment(s3, settings, names, archives)
    hook.ensure_model(rb.deployed_model_request(settings, names, archives["resnet50"]))
    trying = rb.challenger_deployment(settings, names, hook.serving_config(endpoint))
    weights = {v["VariantName"]: v["InitialVariantWeight"]
               for v in trying["EndpointConfig"]["ProductionVariants"]}  # fmt: skip
    assert weights == {"AllTraffic": 1.0, "Challenger": 0.0}
    deploy(hook, trying)
    for _ in range(CALLS):
        assert invoke(runtime, endpoint) == ("champion", "AllTraffic")
    for candidate in CANDIDATES:  # the smoke test's request, for each candidate
        target = {"TargetVariant": "Challenger", **rb.invocation_target(settings, candidate)}
        assert invoke(runtime, endpoint, **target) == (candidate, "Challenger")

    actions = rb.promotion_actions(settings, names, trying["EndpointConfig"], approved=True)
    assert hook.shift_traffic(actions["traffic"])
    sagemaker.get_waiter("endpoint_in_service").wait(
        EndpointName=endpoint, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    for _ in range(CALLS):  # every request that names a candidate now reaches the MME variant
        assert invoke(runtime, endpoint, TargetModel="mobilenet_v2.tar.gz") == (
            "mobilenet_v2", "Challenger"
        )  # fmt: skip
    deploy(hook, actions["endpoint"])
    hook.retire_challenger(actions["retired"])
    described = sagemaker.describe_endpoint(EndpointName=endpoint)
    assert described["EndpointConfigName"] == names.endpoint_config
    (variant,) = sagemaker.describe_endpoint_config(
        EndpointConfigName=names.endpoint_config
    )["ProductionVariants"]  # fmt: skip
    assert (variant["VariantName"], variant["ModelName"]) == ("AllTraffic", names.model)
    for candidate in CANDIDATES:
        assert invoke(runtime, endpoint, TargetModel=rb.target_model(candidate)) == (
            candidate, "AllTraffic"
        )  # fmt: skip

    # A candidate staged while the endpoint serves answers on its first request.
    later = {"vit_b_16": trained_archive(s3, f"{names.training_job}-2", "vit_b_16")}
    multi_model.stage_archives(s3, later, prefix)
    assert invoke(runtime, endpoint, TargetModel="vit_b_16.tar.gz") == ("vit_b_16", "AllTraffic")
    code, message = error_of(runtime, endpoint)
    assert code == "ValidationError" and message.endswith("is missing a target model header.")
    code, message = error_of(runtime, endpoint, TargetModel="densenet.tar.gz")
    assert code == "ValidationError" and "TargetModel densenet.tar.gz" in message
    sagemaker.delete_endpoint(EndpointName=endpoint)


def test_a_multi_model_rollback_keeps_its_candidates_target_model_working(runtime, hook):
    s3, sagemaker = runtime.client("s3"), runtime.client("sagemaker")
    settings = settings_of("mmeroll")
    group = rb.model_package_group(settings)
    sagemaker.create_model_package_group(ModelPackageGroupName=group)
    trained = run_names("mmeroll", "manual__trained", datetime(2026, 11, 1))
    archive = trained_archive(s3, trained.training_job, "mobilenet_v2")
    training = {"TrainingJobName": trained.training_job, "ModelArtifact": archive}
    dataset = {"snapshot_id": "0123456789abcdef"}
    request = rb.model_version_request(
        settings, trained, dataset, {"TuningJobName": trained.tuning_job}, training,
        {"decision": "deploy", "outcomes": []}, candidate="mobilenet_v2",
    )  # fmt: skip
    arn = sagemaker.create_model_package(**request)["ModelPackageArn"]
    version = sagemaker.describe_model_package(ModelPackageName=arn)

    rollback = run_names("mmeroll", "manual__rollback", datetime(2026, 12, 2))
    staged = multi_model.stage_for_rollback(s3, settings, rollback, version)
    assert staged == [f"{rb.rollback_prefix(settings, rollback)}mobilenet_v2.tar.gz"]
    hook.ensure_model(rb.rollback_model_request(settings, rollback, version))
    deploy(hook, {"EndpointConfig": rb.endpoint_config_request(settings, rollback),
                  "Endpoint": rb.endpoint_request(settings, rollback)})  # fmt: skip
    endpoint = rollback.endpoint
    assert invoke(runtime, endpoint, TargetModel="mobilenet_v2.tar.gz") == (
        "mobilenet_v2", "AllTraffic"
    )  # fmt: skip
    code, message = error_of(runtime, endpoint, TargetModel="resnet50.tar.gz")
    assert code == "ValidationError" and "TargetModel resnet50.tar.gz" in message
    sagemaker.delete_endpoint(EndpointName=endpoint)


def test_an_archive_over_the_multipart_threshold_is_staged_whole(runtime):
    """A trained resnet50's archive (about 90 MB) is over boto3's 8 MiB multipart threshold, so
    its managed copy goes through UploadPartCopy on the runtime's S3."""
    s3 = runtime.client("s3")
    large = os.urandom(9 * 1024 * 1024)
    s3.put_object(Bucket=BUCKET, Key="jobs/large/output/model.tar.gz", Body=large)
    archives = {"resnet50": f"s3://{BUCKET}/jobs/large/output/model.tar.gz"}
    prefix = f"s3://{BUCKET}/models/large/"
    assert multi_model.stage_archives(s3, archives, prefix) == [f"{prefix}resnet50.tar.gz"]
    copy = s3.get_object(Bucket=BUCKET, Key="models/large/resnet50.tar.gz")
    assert "-" in copy["ETag"]  # a multipart copy's ETag
    assert copy["Body"].read() == large


def test_the_projects_own_classifiers_answer_their_target_models(runtime, hook, tmp_path):
    """sagemaker_code's handlers in the container the pipeline's builders make (no
    SAGEMAKER_SUBMIT_DIRECTORY: each model's own code/ is used), one archive per candidate, each
    answering with its own classes."""
    s3 = runtime.client("s3")
    settings = settings_of("mmecls")
    names = run_names("mmecls", "manual__classifiers", datetime(2026, 12, 2))
    classes = {"resnet50": ["001.Akita", "002.Beagle"], "mobilenet_v2": ["003.Collie", "004.Dingo"]}
    archives = {}
    for candidate, class_names in classes.items():
        model_dir = build_classifier_model_dir(tmp_path / candidate, class_names)
        archive = pack_directory(model_dir, tmp_path / f"{candidate}.tar.gz")
        key = f"jobs/{names.training_job}-{candidate}/output/model.tar.gz"
        s3.upload_file(str(archive), BUCKET, key)
        archives[candidate] = f"s3://{BUCKET}/{key}"
    multi_model.stage_for_deployment(s3, settings, names, archives)
    hook.ensure_model(rb.multi_model_request(settings, names))
    deploy(hook, {"EndpointConfig": rb.endpoint_config_request(settings, names),
                  "Endpoint": rb.endpoint_request(settings, names)})  # fmt: skip
    picture = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 120, 40)).save(picture, format="JPEG")
    body = picture.getvalue()
    for candidate, class_names in classes.items():
        response = runtime.client("sagemaker-runtime").invoke_endpoint(
            EndpointName=names.endpoint, Body=body, ContentType="image/jpeg",
            **rb.invocation_target(settings, candidate),
        )  # fmt: skip
        predictions = json.loads(response["Body"].read())["predictions"]
        assert {p["label"] for p in predictions} == set(class_names)
    runtime.client("sagemaker").delete_endpoint(EndpointName=names.endpoint)
