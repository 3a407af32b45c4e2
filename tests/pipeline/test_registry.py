"""The Model Registry in the pipeline: the promotion decision's whole matrix, what a version
records, the settings' checks, and, against the local runtime, registration through the
provider's operator (idempotent on retry) and the promotion's approval status changes."""

from __future__ import annotations

import json

import botocore.session
import pytest
from botocore.validate import validate_parameters
from runtime_access import aws_connection, client
from sagemaker_lifecycle import registry
from sagemaker_lifecycle import request_builders as rb
from sagemaker_lifecycle.registry import Outcome, PromotionPolicy, decide_promotion
from sagemaker_lifecycle.settings import SettingsError

SERVICE = botocore.session.get_session().get_service_model("sagemaker")
SNAPSHOT, OTHER_SNAPSHOT = "0123456789abcdef", "fedcba9876543210"
REJECT = PromotionPolicy(metric="accuracy", tolerance=0.01, min_metric=0.5, when_worse="reject")
ASK = PromotionPolicy(metric="accuracy", tolerance=0.01, min_metric=0.5, when_worse="ask")
VERDICT = {
    "decision": "approve",
    "outcomes": [{"rule": "Overfit", "status": "IssuesFound", "details": "", "policy": "approve",
                  "kind": "debugger"},
                 {"rule": "VanishingGradient", "status": "NoIssuesFound", "details": "",
                  "policy": "block", "kind": "debugger"}],
    "reasons": [],
}  # fmt: skip
TUNING = {"TuningJobName": "dogbreed-tune-261121-abcd1234"}
TRAINING = {
    "TrainingJobName": "dogbreed-train-261121-abcd1234",
    "ModelArtifact": "s3://dog-breed-classifier/jobs/x/output/model.tar.gz",
}


def report(accuracy: float) -> dict:
    return {"accuracy": accuracy, "top_2_accuracy": 1.0, "macro_f1": accuracy - 0.05}


def champion_on(snapshot: str, accuracy: float) -> dict:
    return registry.scores_of(registry.score_metadata(snapshot, report(accuracy)))


# ---- the decision matrix ---------------------------------------------------------------------


def test_the_first_model_becomes_the_champion_when_it_passes_the_minimum():
    decision = decide_promotion(report(0.7), None, SNAPSHOT, REJECT)
    assert decision.outcome == Outcome.APPROVE and decision.approval_status == "Approved"
    assert "first model" in decision.reason


@pytest.mark.parametrize(("policy", "outcome"), [(REJECT, Outcome.REJECT), (ASK, Outcome.ASK)])
def test_a_first_model_below_the_minimum_follows_the_policy(policy, outcome):
    decision = decide_promotion(report(0.4), None, SNAPSHOT, policy)
    assert decision.outcome == outcome and "below registry.min_metric 0.5" in decision.reason
    assert decision.approval_status == "PendingManualApproval"


def test_a_better_challenger_is_approved():
    decision = decide_promotion(report(0.8), champion_on(SNAPSHOT, 0.7), SNAPSHOT, REJECT)
    assert (decision.outcome, decision.champion) == (Outcome.APPROVE, 0.7)
    assert "0.8000 against the champion's 0.7000" in decision.reason


def test_an_equal_challenger_within_the_tolerance_is_approved():
    decision = decide_promotion(report(0.695), champion_on(SNAPSHOT, 0.7), SNAPSHOT, REJECT)
    assert decision.outcome == Outcome.APPROVE and "within registry.tolerance" in decision.reason


@pytest.mark.parametrize(("policy", "outcome"), [(REJECT, Outcome.REJECT), (ASK, Outcome.ASK)])
def test_a_worse_challenger_follows_the_policy(policy, outcome):
    decision = decide_promotion(report(0.6), champion_on(SNAPSHOT, 0.7), SNAPSHOT, policy)
    assert decision.outcome == outcome and decision.approval_status == "PendingManualApproval"
    assert "worse by more than registry.tolerance 0.01" in decision.reason


def test_a_champion_scored_on_another_snapshot_must_be_scored_on_this_one_first():
    decision = decide_promotion(report(0.9), champion_on(OTHER_SNAPSHOT, 0.7), SNAPSHOT, REJECT)
    assert decision.outcome == Outcome.SCORE_CHAMPION and SNAPSHOT in decision.reason


@pytest.mark.parametrize(("answer", "status"), [("Approve", "Approved"), ("Reject", "Rejected")])
def test_a_person_approves_or_rejects_a_worse_challenger(answer, status):
    decision = decide_promotion(report(0.6), champion_on(SNAPSHOT, 0.7), SNAPSHOT, ASK)
    assert registry.person_answered(decision, answer, "ada") == (
        status, f"{answer} by ada: {decision.reason}"
    )  # fmt: skip


def test_the_decision_travels_through_xcom_unchanged():
    decision = decide_promotion(report(0.6), champion_on(SNAPSHOT, 0.7), SNAPSHOT, ASK)
    as_json = json.loads(json.dumps(decision.as_dict()))
    assert registry.PromotionDecision.from_dict(as_json) == decision


def test_top_k_accuracy_is_read_under_the_reports_own_name():
    assert registry.report_metric(report(0.5), "top_k_accuracy") == 1.0


# ---- what a version records ------------------------------------------------------------------


def test_the_version_request_is_valid_and_carries_provenance_and_real_content_types(
    settings, names, staged_dataset
):
    request = rb.model_version_request(settings, names, staged_dataset, TUNING, TRAINING, VERDICT)
    validate_parameters(request, SERVICE.operation_model("CreateModelPackage").input_shape)
    assert request["ModelPackageGroupName"] == "dogbreed-models"
    specification = request["InferenceSpecification"]
    assert specification["Containers"] == [
        rb.model_request(settings, names, TRAINING["ModelArtifact"])["PrimaryContainer"]
    ]
    assert "text/csv" not in specification["SupportedContentTypes"]
    assert {"image/jpeg", "application/x-image"} <= set(specification["SupportedContentTypes"])
    report_uri = request["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    assert report_uri == f"{rb.evaluation_report_prefix(settings, names)}report.json"
    assert request["CustomerMetadataProperties"] == {
        "snapshot_id": SNAPSHOT,
        "tuning_job": TUNING["TuningJobName"],
        "training_job": TRAINING["TrainingJobName"],
        "gate_decision": "approve",
        "rule:Overfit": "IssuesFound",
        "rule:VanishingGradient": "NoIssuesFound",
    }


def test_the_champions_model_and_transform_requests_are_valid(settings, names, staged_dataset):
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/dogbreed-models/1"
    model = rb.model_from_version_request(settings, names.champion_model, arn)
    validate_parameters(model, SERVICE.operation_model("CreateModel").input_shape)
    transform = rb.transform_job_request(settings, names, staged_dataset,
                                         model=model["ModelName"],
                                         job_name=names.champion_transform_job)  # fmt: skip
    validate_parameters(transform, SERVICE.operation_model("CreateTransformJob").input_shape)
    assert transform["TransformJobName"].startswith(names.transform_job)  # clean-up finds it
    assert names.champion_transform_job in transform["TransformOutput"]["S3OutputPath"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"metric": "recall"}, r"registry\.metric is 'recall'; expected one of accuracy"),
        ({"when_worse": "ask-me"}, r"registry\.when_worse is 'ask-me'; expected one of reject"),
        ({"tolerance": 2}, r"registry\.tolerance must be a number from 0 to 1"),
        ({"min_metric": "high"}, r"registry\.min_metric must be a number from 0 to 1"),
        ({"group": "bad_group"}, r"registry\.group must be null or a SageMaker name"),
        ({"approval": {"default": "Maybe"}}, r"registry\.approval\.default is 'Maybe'"),
    ],
)
def test_bad_registry_settings_are_refused_by_name(settings_with, override, message):
    with pytest.raises(SettingsError, match=message):
        settings_with({"registry": override})


# ---- the challenger on the endpoint -----------------------------------------------------------

CHAMPION_MODEL = "dogbreed-model-261114-0000aaaa"


def serving_config(model: str = CHAMPION_MODEL) -> dict:
    """DescribeEndpointConfig of a champion's config, as the pipeline deployed it."""
    return {
        "EndpointConfigName": "dogbreed-epc-261114-0000aaaa",
        "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": model,
                                "InitialInstanceCount": 1, "InstanceType": "ml.m5.large",
                                "InitialVariantWeight": 1.0}],
    }  # fmt: skip


def test_the_challenger_joins_beside_the_champion_with_weight_zero(settings, names):
    deployment = rb.challenger_deployment(settings, names, serving_config())
    request = deployment["EndpointConfig"]
    validate_parameters(request, SERVICE.operation_model("CreateEndpointConfig").input_shape)
    variants = {v["VariantName"]: v for v in request["ProductionVariants"]}
    assert variants["AllTraffic"] == serving_config()["ProductionVariants"][0]
    assert variants["Challenger"]["ModelName"] == names.model
    assert variants["Challenger"]["InitialVariantWeight"] == 0.0
    assert request["EndpointConfigName"] == names.challenger_endpoint_config
    endpoint = deployment["Endpoint"]
    validate_parameters(endpoint, SERVICE.operation_model("UpdateEndpoint").input_shape)
    assert endpoint == rb.endpoint_request(settings, names, names.challenger_endpoint_config)
    assert endpoint["EndpointName"] == names.endpoint


def test_the_first_model_is_tried_alone_at_weight_one_on_the_runs_trial_endpoint(settings, names):
    deployment = rb.challenger_deployment(settings, names, None)
    config, endpoint = deployment["EndpointConfig"], deployment["Endpoint"]
    validate_parameters(config, SERVICE.operation_model("CreateEndpointConfig").input_shape)
    validate_parameters(endpoint, SERVICE.operation_model("CreateEndpoint").input_shape)
    [variant] = config["ProductionVariants"]
    assert (variant["VariantName"], variant["ModelName"], variant["InitialVariantWeight"]) == (
        "Challenger", names.model, 1.0)  # fmt: skip
    assert endpoint["EndpointName"] == names.trial_endpoint != names.endpoint
    assert endpoint["EndpointConfigName"] == names.challenger_endpoint_config


def test_an_endpoint_without_the_champions_variant_is_refused_by_name(settings, names):
    foreign = {**serving_config(), "ProductionVariants": [
        {**serving_config()["ProductionVariants"][0], "VariantName": "Blue"}]}  # fmt: skip
    with pytest.raises(ValueError, match=r"has no variant 'AllTraffic' \(deployment\.variant_name"):
        rb.challenger_endpoint_config_request(settings, names, foreign)


def test_an_approved_challenger_takes_the_traffic_then_serves_alone(settings, names):
    tried_on = rb.challenger_endpoint_config_request(settings, names, serving_config())
    actions = rb.promotion_actions(settings, names, tried_on, approved=True)
    traffic = actions["traffic"]
    validate_parameters(
        traffic, SERVICE.operation_model("UpdateEndpointWeightsAndCapacities").input_shape
    )
    weights = {c["VariantName"]: c["DesiredWeight"] for c in traffic["DesiredWeightsAndCapacities"]}
    assert weights == {"AllTraffic": 0.0, "Challenger": 1.0}
    config = actions["endpoint"]["EndpointConfig"]
    validate_parameters(config, SERVICE.operation_model("CreateEndpointConfig").input_shape)
    assert config["EndpointConfigName"] == names.endpoint_config
    [variant] = config["ProductionVariants"]
    assert (variant["VariantName"], variant["ModelName"], variant["InitialVariantWeight"]) == (
        "AllTraffic", names.model, 1.0)  # fmt: skip
    assert actions["endpoint"]["Endpoint"]["EndpointConfigName"] == names.endpoint_config
    assert actions["retired"] == {"EndpointName": names.endpoint,
                                  "EndpointConfigName": names.challenger_endpoint_config,
                                  "ModelName": names.model,
                                  "TrialEndpointName": None}  # fmt: skip


def test_a_rejected_challenger_is_withdrawn_and_the_champion_serves_alone_again(settings, names):
    tried_on = rb.challenger_endpoint_config_request(settings, names, serving_config())
    actions = rb.promotion_actions(settings, names, tried_on, approved=False)
    assert actions["traffic"] is None
    [variant] = actions["endpoint"]["EndpointConfig"]["ProductionVariants"]
    assert variant == serving_config()["ProductionVariants"][0]


def test_an_approved_first_model_creates_the_endpoint_users_call_and_retires_its_trial(
    settings, names
):
    tried_on = rb.challenger_endpoint_config_request(settings, names, None)
    actions = rb.promotion_actions(settings, names, tried_on, approved=True)
    assert actions["traffic"] is None  # no weights to move: it was alone on its trial endpoint
    config, endpoint = actions["endpoint"]["EndpointConfig"], actions["endpoint"]["Endpoint"]
    assert config == rb.endpoint_config_request(settings, names)  # AllTraffic, weight 1
    validate_parameters(endpoint, SERVICE.operation_model("CreateEndpoint").input_shape)
    assert endpoint == rb.endpoint_request(settings, names)  # blue/green DeploymentConfig kept
    assert endpoint["EndpointName"] == names.endpoint
    assert actions["retired"] == {"EndpointName": names.endpoint,
                                  "EndpointConfigName": names.challenger_endpoint_config,
                                  "ModelName": names.model,
                                  "TrialEndpointName": names.trial_endpoint}  # fmt: skip


def test_a_first_model_not_approved_leaves_no_endpoint_behind(settings, names):
    tried_on = rb.challenger_endpoint_config_request(settings, names, None)
    actions = rb.promotion_actions(settings, names, tried_on, approved=False)
    assert actions["traffic"] is None and actions["endpoint"] is None
    assert actions["retired"]["TrialEndpointName"] == names.trial_endpoint
    assert actions["retired"]["ModelName"] == names.model


def untargeted_models(variants: list[dict], weights: dict | None = None) -> set[str]:
    """The models an untargeted InvokeEndpoint can reach: those of variants with weight > 0."""
    weights = weights or {v["VariantName"]: v["InitialVariantWeight"] for v in variants}
    return {v["ModelName"] for v in variants if weights[v["VariantName"]] > 0}


@pytest.mark.parametrize("champion", [True, False], ids=["champion", "first-model"])
@pytest.mark.parametrize("approved", [True, False], ids=["approved", "not-approved"])
def test_the_endpoint_never_routes_untargeted_traffic_to_an_unapproved_version(
    settings, names, champion, approved
):
    """Every state the endpoint users call passes through, from the challenger's arrival to the
    settled config: untargeted requests reach Approved versions' models only, and some model
    answers them. The champion's is Approved; the challenger's is unapproved until the
    decision, and then as decided. No config of the pipeline's has every weight at 0."""
    deployment = rb.challenger_deployment(settings, names, serving_config() if champion else None)
    tried_on = deployment["EndpointConfig"]
    variants = tried_on["ProductionVariants"]
    assert untargeted_models(variants)  # never every weight 0, on any endpoint
    approved_models = {CHAMPION_MODEL}
    if champion:  # tried on the endpoint users call: smoke test, batch transform
        assert deployment["Endpoint"]["EndpointName"] == names.endpoint
        assert untargeted_models(variants) <= approved_models
    else:  # tried on the trial endpoint: the endpoint users call does not exist yet
        assert deployment["Endpoint"]["EndpointName"] == names.trial_endpoint
    actions = rb.promotion_actions(settings, names, tried_on, approved=approved)
    if approved:
        approved_models.add(names.model)
    if actions["traffic"]:
        assert actions["traffic"]["EndpointName"] == names.endpoint
        weights = {c["VariantName"]: c["DesiredWeight"]
                   for c in actions["traffic"]["DesiredWeightsAndCapacities"]}  # fmt: skip
        assert untargeted_models(variants, weights) <= approved_models
        assert untargeted_models(variants, weights)  # someone serves
    assert (approved and champion) or not actions["traffic"]
    if actions["endpoint"]:
        assert actions["endpoint"]["Endpoint"]["EndpointName"] == names.endpoint
        settled = actions["endpoint"]["EndpointConfig"]["ProductionVariants"]
        assert untargeted_models(settled) <= approved_models and untargeted_models(settled)
        assert [v["VariantName"] for v in settled] == ["AllTraffic"]  # the challenger's is gone
    else:
        assert not champion and not approved  # the endpoint users call is never created
    assert (actions["retired"]["TrialEndpointName"] is None) == champion


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"challenger_variant_name": "AllTraffic"}, r"the challenger's variant must have its own"),
        (
            {"variant_name": "all_traffic"},
            r"deployment\.variant_name: 'all_traffic' is not a valid",
        ),
    ],
)
def test_bad_variant_names_are_refused_by_name(settings_with, override, message):
    with pytest.raises(SettingsError, match=message):
        settings_with({"deployment": override})


# ---- against the local runtime ---------------------------------------------------------------


@pytest.fixture
def runtime_connection(local_runtime, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(aws_connection(local_runtime)))
    return client(local_runtime, "sagemaker")


@pytest.fixture
def model_artifact(local_runtime) -> None:
    """TRAINING's model.tar.gz in the runtime's S3 (CreateModel checks that it exists)."""
    s3 = client(local_runtime, "s3")
    bucket, _, key = TRAINING["ModelArtifact"].removeprefix("s3://").partition("/")
    if bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=b"model.tar.gz")


def _register(registration: dict, task_id: str = "register_model") -> dict:
    from sagemaker_lifecycle.operators.registry import RegisterModelVersionOperator

    operator = RegisterModelVersionOperator(task_id=task_id, registration=registration)
    return operator.execute(context={})


@pytest.mark.e2e
def test_the_providers_operator_registers_once_per_training_job(
    runtime_connection, settings_with, names, staged_dataset
):
    settings = settings_with({"registry": {"group": "registration-test"}})
    request = rb.model_version_request(settings, names, staged_dataset, TUNING, TRAINING, VERDICT)
    first = _register(request)
    assert first["ModelPackageVersion"] == 1
    assert _register(request) == first  # a retried or cleared task: no second version
    other = {**TRAINING, "TrainingJobName": "dogbreed-train-261128-ffff0000"}
    second = _register(
        rb.model_version_request(settings, names, staged_dataset, TUNING, other, VERDICT)
    )
    assert second["ModelPackageVersion"] == 2
    sagemaker = runtime_connection
    versions = sagemaker.list_model_packages(ModelPackageGroupName="registration-test")
    assert len(versions["ModelPackageSummaryList"]) == 2
    described = sagemaker.describe_model_package(ModelPackageName=first["ModelPackageArn"])
    assert described["InferenceSpecification"] == request["InferenceSpecification"]
    assert described["ModelMetrics"] == request["ModelMetrics"]
    assert described["ModelApprovalStatus"] == "PendingManualApproval"


@pytest.mark.e2e
def test_the_champion_is_the_newest_approved_version_and_scores_are_kept(
    runtime_connection, settings_with, names, staged_dataset
):
    from sagemaker_lifecycle.hooks import SageMakerLifecycleHook

    settings = settings_with({"registry": {"group": "champion-test"}})
    hook = SageMakerLifecycleHook(aws_conn_id="aws_default")
    arns = []
    for number in range(3):
        training = {**TRAINING, "TrainingJobName": f"dogbreed-train-26112{number}-abcd1234"}
        request = rb.model_version_request(settings, names, staged_dataset, TUNING, training,
                                           VERDICT)  # fmt: skip
        arns.append(_register(request)["ModelPackageArn"])
    assert hook.champion_version("champion-test", exclude_arn=arns[2]) is None
    hook.update_model_version(arns[0], status="Approved", reason="first model")
    hook.update_model_version(arns[1], metadata=registry.score_metadata(SNAPSHOT, report(0.7)),
                              status="Approved", reason="better")  # fmt: skip
    champion = hook.champion_version("champion-test", exclude_arn=arns[2])
    assert champion["ModelPackageArn"] == arns[1]
    assert registry.scores_of(champion["CustomerMetadataProperties"]) == {
        SNAPSHOT: {"accuracy": 0.7, "macro_f1": 0.65, "top_k_accuracy": 1.0}
    }
    assert champion["ApprovalDescription"] == "better"


@pytest.mark.e2e
def test_a_champion_scored_on_another_snapshot_gets_a_model_and_a_transform_here_first(
    runtime_connection, model_artifact, settings_with, names, staged_dataset, monkeypatch
):
    """The tasks around the champion's scoring, against the runtime (the transform between them
    is the ordinary TransformJobOperator)."""
    from sagemaker_lifecycle import tasks
    from sagemaker_lifecycle.hooks import SageMakerLifecycleHook

    monkeypatch.setattr(tasks, "current_run_names", lambda settings: names)
    settings = settings_with({"registry": {"group": "rescoring-test"}})
    hook = SageMakerLifecycleHook(aws_conn_id="aws_default")
    champion = _register(rb.model_version_request(
        settings, names, {**staged_dataset, "snapshot_id": OTHER_SNAPSHOT}, TUNING,
        {**TRAINING, "TrainingJobName": "dogbreed-train-261101-00000001"}, VERDICT,
    ))  # fmt: skip
    elsewhere = registry.score_metadata(OTHER_SNAPSHOT, report(0.9))
    hook.update_model_version(
        champion["ModelPackageArn"], status="Approved", reason="first", metadata=elsewhere
    )
    challenger = _register(
        rb.model_version_request(settings, names, staged_dataset, TUNING, TRAINING, VERDICT)
    )

    plan = tasks.plan_champion_scoring.function(settings, staged_dataset, challenger, report(0.8))
    assert plan["ModelPackageArn"] == champion["ModelPackageArn"]
    assert plan["transform"]["ModelName"] == names.champion_model
    model = runtime_connection.describe_model(ModelName=names.champion_model)
    assert model["PrimaryContainer"]["ModelPackageName"] == champion["ModelPackageArn"]
    # Its evaluation records the champion's score here; then the two compare on this snapshot.
    hook.update_model_version(champion["ModelPackageArn"],
                              metadata=registry.score_metadata(SNAPSHOT, report(0.85)))  # fmt: skip
    decision = tasks.decide_promotion.function(settings, staged_dataset, challenger, report(0.8))
    assert (decision["outcome"], decision["champion"]) == ("reject", 0.85)
    described = runtime_connection.describe_model_package(
        ModelPackageName=challenger["ModelPackageArn"]
    )
    assert described["ModelApprovalStatus"] == "PendingManualApproval"
    assert "worse by more than registry.tolerance" in described["ApprovalDescription"]
    assert described["CustomerMetadataProperties"][f"score:{SNAPSHOT}:accuracy"] == "0.800000"


# ---- asking a person -------------------------------------------------------------------------


def decision_xcom(outcome_policy: PromotionPolicy, challenger_arn: str) -> dict:
    """What decide_promotion pushes for a challenger at 0.6 against a champion at 0.7."""
    decision = decide_promotion(report(0.6), champion_on(SNAPSHOT, 0.7), SNAPSHOT, outcome_policy)
    champion_arn = challenger_arn.rsplit("/", 1)[0] + "/1"
    return {**decision.as_dict(), "metric": "accuracy", "snapshot_id": SNAPSHOT,
            "challenger_version": {"arn": challenger_arn, "value": 0.6},
            "champion_version": {"arn": champion_arn, "value": 0.7}}  # fmt: skip


def promotion_operator(decision: dict):
    from sagemaker_lifecycle.operators.registry import PromotionApprovalOperator

    approval = {"timeout_seconds": 20, "default": "Reject"}
    return PromotionApprovalOperator(
        task_id="ask_about_promotion", decision=decision, approval=approval
    )


def test_nobody_is_asked_unless_the_policy_says_ask():
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/dogbreed-models/2"
    # Asking would write a Human-in-the-loop request, which needs a running task.
    assert promotion_operator(decision_xcom(REJECT, arn)).execute({}) is None


def test_the_person_sees_both_versions_metrics_side_by_side():
    from sagemaker_lifecycle.operators.registry import promotion_body

    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/dogbreed-models/2"
    body = promotion_body(decision_xcom(ASK, arn), {"timeout_seconds": 20, "default": "Reject"})
    assert f"| challenger | `{arn}` | 0.6000 |" in body
    assert f"| champion | `{arn[:-1]}1` | 0.7000 |" in body
    assert "| version | ARN | accuracy |" in body and "**Reject** applies" in body


@pytest.mark.e2e
@pytest.mark.parametrize(("answer", "status"), [("Approve", "Approved"), ("Reject", "Rejected")])
def test_the_persons_answer_sets_the_versions_approval_status(
    runtime_connection, settings_with, names, staged_dataset, answer, status
):
    from datetime import UTC, datetime

    settings = settings_with({"registry": {"group": f"asked-{answer.lower()}"}})
    arn = _register(
        rb.model_version_request(settings, names, staged_dataset, TUNING, TRAINING, VERDICT)
    )["ModelPackageArn"]
    event = {"chosen_options": [answer], "params_input": {}, "timedout": False,
             "responded_at": datetime(2026, 12, 1, tzinfo=UTC),
             "responded_by_user": {"id": "ada", "name": "ada"}}  # fmt: skip
    promotion_operator(decision_xcom(ASK, arn)).execute_complete({}, event)
    version = runtime_connection.describe_model_package(ModelPackageName=arn)
    assert version["ModelApprovalStatus"] == status
    assert version["ApprovalDescription"].startswith(f"{answer} by ada: accuracy 0.6000")


# ---- rollback ----------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["single_model", "multi_model"])
def test_a_rollback_takes_an_approved_version_only_and_the_version_records_its_serving(
    runtime_connection, local_runtime, model_artifact, settings_with, staged_dataset, monkeypatch,
    mode,
):  # fmt: skip
    from datetime import datetime

    from sagemaker_lifecycle import tasks
    from sagemaker_lifecycle.naming import run_names

    names = run_names("dogbreed", f"manual__rollback-{mode}", datetime(2026, 12, 2))
    monkeypatch.setattr(tasks, "current_run_names", lambda settings: names)
    group = f"rollback-{mode.replace('_', '-')}"
    settings = settings_with({"registry": {"group": group}, "deployment": {"mode": mode}})
    request = rb.model_version_request(settings, names, staged_dataset, TUNING, TRAINING, VERDICT,
                                       candidate="resnet50")  # fmt: skip
    version = _register(request)
    with pytest.raises(ValueError, match=f"version 1 of {group} is PendingManualApproval"):
        tasks.plan_rollback.function(settings, {"model_package_version": 1})
    with pytest.raises(ValueError, match=f"{group} has no version 7"):
        tasks.plan_rollback.function(settings, {"model_package_version": 7})
    runtime_connection.update_model_package(
        ModelPackageArn=version["ModelPackageArn"], ModelApprovalStatus="Approved"
    )
    plan = tasks.plan_rollback.function(settings, {"model_package_version": 1})
    assert plan["version"] == {"ModelPackageArn": version["ModelPackageArn"]}
    variant = plan["endpoint"]["EndpointConfig"]["ProductionVariants"][0]
    container = runtime_connection.describe_model(ModelName=variant["ModelName"])[
        "PrimaryContainer"
    ]
    if mode == "single_model":
        assert container["ModelPackageName"] == version["ModelPackageArn"]
    else:  # the version's archive under its candidate's TargetModel, alone
        prefix = rb.rollback_prefix(settings, names)
        assert (container["Mode"], container["ModelDataUrl"]) == ("MultiModel", prefix)
        bucket, _, key = prefix.removeprefix("s3://").partition("/")
        listed = client(local_runtime, "s3").list_objects_v2(Bucket=bucket, Prefix=key)
        assert [o["Key"] for o in listed["Contents"]] == [f"{key}resnet50.tar.gz"]
    served = tasks.record_serving.function(settings, plan["version"], {"EndpointName": "ep"})
    metadata = runtime_connection.describe_model_package(
        ModelPackageName=version["ModelPackageArn"]
    )["CustomerMetadataProperties"]
    assert served.items() <= metadata.items() and list(served.values()) == ["ep"]
