"""The pipeline's Python tasks (TaskFlow), used by dags/dog_breed_classifier.py.

Each task does one step that is not a SageMaker job: resolve the run's settings, stage the data,
turn the previous step's result into the next API request (the explanation job's among them),
smoke-test the endpoint, evaluate the batch transform, score the champion and decide the
promotion (`registry`), clean up the endpoint and, when the run failed, what the run left behind.
Requests come from `request_builders`, names from `naming`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.sdk import TriggerRule, Variable, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from botocore.exceptions import ClientError

from sagemaker_lifecycle import (
    candidates,
    comparison,
    evaluation,
    multi_model,
    registry,
    request_builders,
    rule_jobs,
    staging,
)
from sagemaker_lifecycle.assets import SNAPSHOT_PUBLISHED, announce_new_snapshot
from sagemaker_lifecycle.hooks import MODEL, SageMakerLifecycleHook
from sagemaker_lifecycle.images import resolve_image_uris
from sagemaker_lifecycle.job_metrics import JobMetrics, read_job_metrics
from sagemaker_lifecycle.multi_model import stage_for_rollback
from sagemaker_lifecycle.naming import RunNames, run_names
from sagemaker_lifecycle.sensors import VERDICT_KEY
from sagemaker_lifecycle.settings import (
    check_run_overrides,
    for_candidate,
    in_region,
    load_settings,
)
from sagemaker_lifecycle.snapshots import SnapshotCatalog, choose_snapshot, new_entry

AWS_CONN_ID = "aws_default"
# DAG params that are shortcuts for nested settings (param name -> dotted setting).
PARAM_SETTINGS = {
    "dataset_source": "dataset.source",
    "dataset_snapshot": "dataset.snapshot",
    "bucket": "aws.bucket",
    "max_tuning_jobs": "tuning.max_jobs",
    "max_parallel_jobs": "tuning.max_parallel_jobs",
    "rules_engine": "rules.engine",
    "poll_interval_seconds": "polling.interval_seconds",
    "delete_endpoint": "deployment.delete_endpoint",
}
# Airflow Variables for what differs per deployment (variable name -> dotted setting).
VARIABLE_SETTINGS = {
    "sagemaker_role_arn": "aws.role_arn",
    "sagemaker_bucket": "aws.bucket",
    "sagemaker_region": "aws.region",
}


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    head, _, rest = dotted.partition(".")
    return {head: _nest(rest, value) if rest else value}


def _shortcuts(values: Mapping[str, Any], targets: Mapping[str, str]) -> list[dict[str, Any]]:
    return [_nest(targets[name], value) for name, value in values.items()
            if name in targets and value is not None]  # fmt: skip


def settings_from_params(
    params: Mapping[str, Any], variables: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Merged and checked, later winning: include/pipeline.yaml, the Airflow `variables`
    (VARIABLE_SETTINGS), the shortcut params (PARAM_SETTINGS), the `overrides` param (which
    may not set settings.DEPLOYMENT_ONLY)."""
    return load_settings(
        *_shortcuts(variables or {}, VARIABLE_SETTINGS),
        *_shortcuts(params, PARAM_SETTINGS),
        check_run_overrides(params.get("overrides")),
    )


def current_run_names(settings: Mapping) -> RunNames:
    """The SageMaker names of the DAG run the calling task belongs to."""
    dag_run = get_current_context()["dag_run"]
    run_date = dag_run.logical_date or dag_run.run_after
    return run_names(settings["project"]["name"], dag_run.run_id, run_date)


def candidate_names(settings: Mapping, candidate: Mapping) -> RunNames:
    """The SageMaker names of `candidate`'s jobs and model in the calling task's DAG run."""
    return current_run_names(settings).candidate(candidate["index"])


def _s3_client():
    return S3Hook(aws_conn_id=AWS_CONN_ID).get_conn()


def _client(service: str):
    return AwsBaseHook(aws_conn_id=AWS_CONN_ID, client_type=service).get_conn()


@task
def resolve_settings(params: dict | None = None) -> dict[str, Any]:
    """The run's settings (XCom), so every later task sees the same values.

    The region is the connection's (a different aws.region is refused). Image URIs left null
    are derived here for it (sagemaker-core), once per run.
    """
    variables = {name: Variable.get(name, default=None) for name in VARIABLE_SETTINGS}
    connection_region = AwsBaseHook(aws_conn_id=AWS_CONN_ID, client_type="s3").conn_region_name
    settings = in_region(settings_from_params(params or {}, variables), connection_region)
    settings["images"].update(resolve_image_uris(settings))
    print(f"Pipeline settings:\n{json.dumps(settings, indent=2)}")
    return settings


@task(outlets=[SNAPSHOT_PUBLISHED])
def stage_dataset(settings: dict, outlet_events=None) -> dict[str, Any]:
    """Choose the run's snapshot (snapshots.choose_snapshot): a pinned or backfill run takes one
    from the catalog; any other run fetches, verifies, snapshots, uploads and records the source
    as it is now, and announces a new snapshot through the SNAPSHOT_PUBLISHED asset alias. The
    XCom says which snapshot and why (`snapshot_choice`)."""
    context = get_current_context()
    dag_run = context["dag_run"]
    s3 = _s3_client()
    catalog = SnapshotCatalog(s3, settings["aws"]["bucket"], settings["dataset"]["s3_prefix"])
    interval_end = context.get("data_interval_end")
    # The Task SDK's DagRunType is a str enum without __str__: its value is "backfill", ...
    run_type = getattr(dag_run.run_type, "value", dag_run.run_type)
    choice = choose_snapshot(run_type, interval_end, settings["dataset"]["snapshot"], catalog)
    print(f"Snapshot choice: {choice.reason}")
    if choice.entry:
        staged = staging.use_recorded_snapshot(settings, s3, choice.entry).as_dict()
    else:
        staged = staging.stage(settings, s3).as_dict()
        published_by = {"dag_id": dag_run.dag_id, "run_id": dag_run.run_id, "run_type": run_type}
        catalog.record(new_entry(staged, published_by, interval_end))
    staged["snapshot_choice"] = choice.reason
    print(
        f"Dataset snapshot {staged['snapshot_id']} "
        f"({'unchanged, reused' if staged['reused_snapshot'] else 'uploaded'}): "
        f"{len(staged['classes'])} classes, images {staged['image_counts']}"
    )
    if not choice.entry and announce_new_snapshot(outlet_events, settings, staged):
        print(f"Asset event: new snapshot {staged['snapshot_id']} via {SNAPSHOT_PUBLISHED.name}")
    return staged


@task
def plan_candidates(settings: dict) -> list[dict[str, Any]]:
    """The architectures the run compares (settings `candidates`), each with its index: what the
    DAG's `candidate` task group is mapped over, one map index per candidate in list order."""
    return [{"index": index, **candidate} for index, candidate in enumerate(settings["candidates"])]


@task
def plan_tuning(settings: dict, dataset: dict, candidate: dict) -> dict[str, Any]:
    """The candidate's CreateHyperParameterTuningJob request; with tuning.warm_start,
    warm-started from the project's newest completed tuning job of the same architecture (see
    request_builders.warm_start_config)."""
    names = candidate_names(settings, candidate)
    request = request_builders.tuning_job_request(
        for_candidate(settings, candidate), names, dataset
    )
    if not settings["tuning"]["warm_start"]:
        return request
    parent = SageMakerLifecycleHook(aws_conn_id=AWS_CONN_ID).latest_completed_tuning_job(
        f"{names.project}-tune-",
        exclude=current_run_names(settings).tuning_job,  # every candidate of this run
        matching=lambda job: request_builders.same_architecture(job, request),
    )
    warm_start = parent and request_builders.warm_start_config(parent, request)
    if warm_start:
        request["WarmStartConfig"] = warm_start
        parent_name = parent["HyperParameterTuningJobName"]
        print(f"Warm start ({warm_start['WarmStartType']}) from tuning job {parent_name}")
    elif parent:
        print(f"Cold start: {parent['HyperParameterTuningJobName']} tuned another objective or "
              "other hyperparameters")  # fmt: skip
    return request


@task
def plan_training(settings: dict, dataset: dict, candidate: dict, tuning: dict) -> dict[str, Any]:
    """The candidate's CreateTrainingJob request for its best tuned configuration, with
    Debugger rules."""
    tuned = tuning["TunedHyperParameters"]
    return request_builders.training_job_request(
        for_candidate(settings, candidate), candidate_names(settings, candidate), dataset, tuned
    )


@task
def plan_rule_jobs(settings: dict, dataset: dict, training: dict) -> list[dict[str, Any]]:
    """CreateProcessingJob requests, one per rule (none when SageMaker Debugger runs them)."""
    if settings["rules"]["engine"] != "processing":
        return []
    return rule_jobs.rule_processing_requests(settings, dataset, training)


@task(multiple_outputs=True)
def plan_evaluation(settings: dict, dataset: dict, candidate: dict, training: dict) -> dict:
    """The candidate's own model (CreateModel) and the CreateTransformJob request that predicts
    the evaluation split with it."""
    names = candidate_names(settings, candidate)
    return {
        "model": request_builders.model_request(settings, names, training["ModelArtifact"]),
        "transform": request_builders.transform_job_request(settings, names, dataset),
    }


@task(multiple_outputs=True)
def plan_deployment(settings: dict, winner: dict, archives: dict) -> dict[str, Any]:
    """The CreateModel request of the run's deployed model, the endpoint requests (config +
    endpoint) and the candidates that model serves (`served`, for the smoke test). The model is
    the `winner`'s archive (deployment.mode single_model) or, in multi_model mode, every compared
    candidate's archive (`archives`: name -> model.tar.gz) staged under the run's prefix behind
    one multi-model container. The endpoint config adds that model beside the champion that
    serves now, at weight 0; the project's first model goes alone on the run's trial endpoint
    instead (`request_builders.challenger_deployment`)."""
    names = current_run_names(settings)
    serving = SageMakerLifecycleHook(aws_conn_id=AWS_CONN_ID).serving_config(names.endpoint)
    staged = multi_model.stage_for_deployment(_s3_client(), settings, names, archives)
    for uri in staged:
        print(f"Staged for the multi-model endpoint: {uri}")
    model = request_builders.deployed_model_request(
        settings, names, winner["training"]["ModelArtifact"]
    )
    return {
        "model": model,
        "endpoint": request_builders.challenger_deployment(settings, names, serving),
        "served": list(archives) if staged else [winner["candidate"]],
    }


def _predict(
    settings: Mapping, endpoint_name: str, variant: str, body: bytes, candidate: str
) -> str:
    """The answer of `candidate` on the endpoint's `variant` (its TargetModel on a multi-model
    endpoint) to one image; ValueError when it is not a list of predictions."""
    runtime = AwsBaseHook(aws_conn_id=AWS_CONN_ID, client_type="sagemaker-runtime").get_conn()
    response = runtime.invoke_endpoint(
        EndpointName=endpoint_name,
        TargetVariant=variant,
        ContentType=settings["transform"]["content_type"],
        Accept=settings["transform"]["accept"],
        Body=body,
        **request_builders.invocation_target(settings, candidate),
    )
    answer = response["Body"].read().decode()
    evaluation.ranked_labels(answer.encode(), f"the answer of {endpoint_name}")
    return answer


@task
def smoke_test_endpoint(settings: dict, dataset: dict, endpoint: dict, served: list) -> dict:
    """Send one test-split image to the challenger's variant (TargetVariant: beside a champion
    it has no traffic of its own; the first model's is its trial endpoint's only variant), once
    per candidate it `served` (by TargetModel on a multi-model endpoint), and log each answer.

    When the endpoint fails to answer with predictions, it is rolled back to the config it
    served before this run (if any: a trial endpoint had none, and clean_up_failed_run deletes
    it) and the task fails.
    """
    image_uri, body = evaluation.first_image(_s3_client(), dataset["channels"]["test"])
    name, previous = endpoint["EndpointName"], endpoint["PreviousEndpointConfigName"]
    variant = settings["deployment"]["challenger_variant_name"]
    answers = {}
    try:
        for candidate in served:
            answers[candidate] = _predict(settings, name, variant, body, candidate)
    except (ClientError, ValueError) as error:
        failed = f"smoke test of {name} ({candidate})"
        if previous and previous != endpoint["EndpointConfigName"]:
            SageMakerLifecycleHook(aws_conn_id=AWS_CONN_ID).deploy_endpoint(
                {"EndpointName": name, "EndpointConfigName": previous},
                interval=settings["polling"]["interval_seconds"],
                timeout=settings["polling"]["timeout_seconds"],
            )
            raise RuntimeError(f"{failed} failed ({error}); rolled back to {previous}") from error
        raise RuntimeError(f"{failed} failed: {error}") from error
    for candidate, answer in answers.items():
        target = request_builders.invocation_target(settings, candidate).get("TargetModel")
        print(f"Endpoint {name} ({candidate}{f', TargetModel {target}' if target else ''}) on "
              f"{image_uri} (true class {evaluation.label_of(image_uri)}):\n{answer}")  # fmt: skip
    return {"image": image_uri, "answers": {c: a[:2000] for c, a in answers.items()}}


def _job_metrics(tuning: Mapping | None, training: Mapping) -> JobMetrics:
    """What the run's jobs measured (their operators' XComs), for the report's charts; what
    cannot be read is left out of the report, not a failure of the evaluation."""
    measured = read_job_metrics(_client("sagemaker"), _client("cloudwatch"), tuning, training)
    for problem in measured.problems:
        print(f"The report goes without it: {problem}")
    return measured


def _evaluation_report(settings: Mapping, dataset: Mapping, transform: Mapping,
                       report_prefix: str, explanations_folder: str | None = None,
                       measured: JobMetrics | None = None, tuning: Mapping | None = None
                       ) -> dict[str, Any]:  # fmt: skip
    report = evaluation.evaluate_transform(
        _s3_client(),
        transform["InputPath"],
        transform["OutputPath"],
        dataset["classes"],
        report_uri=report_prefix,
        top_k=settings["evaluation"]["top_k"],
        explanations_folder=explanations_folder,
        measured=measured,
        tuning=tuning,
    )
    print(evaluation.format_report(report))
    return report


def _report_summary(report: Mapping[str, Any]) -> dict[str, Any]:
    top_key, _ = evaluation.top_k_accuracy(report)
    kept = ("accuracy", top_key, "macro_f1", "count", "report_uri", "html_report_uri")
    return {key: report[key] for key in kept}


@task
def evaluate(
    settings: dict,
    dataset: dict,
    candidate: dict,
    transform: dict,
    tuning: dict | None,
    training: dict,
) -> dict[str, Any]:
    """Score the candidate's batch transform against the labels; fail below
    evaluation.min_accuracy. The report goes where its model version's ModelMetrics would point,
    with the curves of the `training` job and the trials of the `tuning` job (their operators'
    XComs) drawn in it."""
    names = candidate_names(settings, candidate)
    explained = settings["explanations"]["enabled"]
    report = _evaluation_report(
        settings, dataset, transform, request_builders.evaluation_report_prefix(settings, names),
        request_builders.EXPLANATIONS_FOLDER if explained else None,
        _job_metrics(tuning, training), tuning,
    )  # fmt: skip
    minimum = settings["evaluation"]["min_accuracy"]
    if report["accuracy"] < minimum:
        raise ValueError(
            f"accuracy {report['accuracy']:.4f} of {candidate['name']} on "
            f"{settings['transform']['split']} is below evaluation.min_accuracy {minimum}"
        )
    return {"candidate": candidate["name"], "map_index": candidate["index"],
            **_report_summary(report)}  # fmt: skip


@task
def plan_explanations(
    settings: dict, dataset: dict, candidate: dict, training: dict, report: dict
) -> dict:
    """The candidate's explanation job's CreateProcessingJob request, beside its evaluation
    `report`; skipped (and the job with it) when explanations.enabled is false."""
    if not settings["explanations"]["enabled"]:
        raise AirflowSkipException("explanations.enabled is false")
    return request_builders.explanation_job_request(
        for_candidate(settings, candidate), candidate_names(settings, candidate), dataset,
        training["ModelArtifact"], report["report_uri"],
    )  # fmt: skip


def _comparison_entry(s3, sagemaker, candidate: str, evaluated: Mapping, training: Mapping,
                      transform: Mapping) -> dict[str, Any]:  # fmt: skip
    """The candidate's row of the comparison: its full evaluation report, the size of its
    model.tar.gz and how long its batch transform took."""
    bucket, key = evaluation.split_s3_uri(evaluated["report_uri"])
    report = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    artifact_bucket, artifact_key = evaluation.split_s3_uri(training["ModelArtifact"])
    size = s3.head_object(Bucket=artifact_bucket, Key=artifact_key)["ContentLength"]
    job = sagemaker.describe_transform_job(TransformJobName=transform["TransformJobName"])
    return comparison.candidate_entry(candidate, report, size, comparison.transform_seconds(job))


def _candidates_outcome(settings: Mapping, ti, states: Mapping[str, str]) -> tuple[dict, dict]:
    """(compared, dropped) over the run's candidates: name -> its tuning, training, transform,
    verdict and evaluation XComs for each that reached the comparison, name -> the reason for
    each left out (`candidates.dropped_reason`)."""
    compared, dropped = {}, {}
    for index, candidate in enumerate(settings["candidates"]):
        name = candidate["name"]
        verdict = ti.xcom_pull(task_ids=candidates.GATE_TASK, key=VERDICT_KEY, map_indexes=index)
        reason = candidates.dropped_reason(candidates.states_of(states, index), verdict)
        if reason:
            dropped[name] = reason
            continue
        pulled = {key: ti.xcom_pull(task_ids=task, map_indexes=index)
                  for key, task in candidates.COMPARED_XCOMS.items()}  # fmt: skip
        compared[name] = {"candidate": name, "map_index": index, "verdict": verdict, **pulled}
    return compared, dropped


@task(multiple_outputs=True, trigger_rule=TriggerRule.ALL_DONE)
def compare_candidates(settings: dict) -> dict[str, Any]:
    """Once every candidate is done: compare those whose tasks all succeeded side by side on the
    evaluation split (`comparison`: accuracy, top-k, per-class F1, the confusion pairs that
    differ, model size, transform time per image), write the comparison next to their reports,
    and name the winner by registry.metric. A candidate left out (blocked, rejected, failed)
    is named with its reason, and its jobs still running are stopped. The candidates' own models
    are deleted: they served their batch transforms only.

    XCom: `winner` (its candidate name, map index and tuning, training, transform, verdict and
    evaluation XComs), `report` (the winner's evaluation), `archives` (compared candidate -> its
    model.tar.gz), `comparison`, `comparison_uri` and `html_uri`. Skipped when a person rejected
    every candidate; fails when none is left for another reason."""
    context = get_current_context()
    ti, dag_run = context["ti"], context["dag_run"]
    names = current_run_names(settings)
    hook = SageMakerLifecycleHook(aws_conn_id=AWS_CONN_ID)
    states = ti.get_task_states(dag_id=dag_run.dag_id, task_group_id=candidates.GROUP,
                                run_ids=[dag_run.run_id])[dag_run.run_id]  # fmt: skip
    compared, dropped = _candidates_outcome(settings, ti, states)
    for index, candidate in enumerate(settings["candidates"]):
        candidate_run = names.candidate(index)
        if candidate["name"] in dropped:
            for kind, name_contains in run_job_filters(candidate_run):
                hook.stop_running_jobs(kind, name_contains)
        hook.delete_if_present(MODEL, candidate_run.model)
    if not compared:
        summary = "; ".join(f"{name}: {reason}" for name, reason in dropped.items())
        if all(reason.startswith(candidates.REJECTED) for reason in dropped.values()):
            raise AirflowSkipException(f"no candidate to deploy: {summary}")
        raise AirflowFailException(f"no candidate reached the comparison: {summary}")
    s3 = _s3_client()
    entries = [_comparison_entry(s3, hook.conn, name, c["report"], c["training"], c["transform"])
               for name, c in compared.items()]  # fmt: skip
    result = comparison.compare_candidates(entries, dropped, settings["registry"]["metric"])
    uris = comparison.write_comparison(
        s3, request_builders.evaluation_report_prefix(settings, names), result
    )
    print(comparison.format_comparison(result))
    print(f"Comparison: {uris['html_uri']}")
    winner = compared[result["winner"]]
    return {
        "winner": winner,
        "report": winner["report"],
        "archives": {name: c["training"]["ModelArtifact"] for name, c in compared.items()},
        "comparison": result,
        **uris,
    }


@task
def plan_registration(settings: dict, dataset: dict, winner: dict) -> dict[str, Any]:
    """The CreateModelPackage request of the run's model version: the winning candidate's."""
    names = current_run_names(settings).candidate(winner["map_index"])
    return request_builders.model_version_request(
        settings, names, dataset, winner["tuning"], winner["training"], winner["verdict"],
        candidate=winner["candidate"],
    )  # fmt: skip


@task(multiple_outputs=True)
def plan_champion_scoring(
    settings: dict, dataset: dict, registered: dict, report: dict
) -> dict[str, Any]:
    """Record the challenger's scores on this snapshot in its version's metadata; when the
    champion (the newest Approved version) was never scored on this snapshot, make a model from
    its version and return the CreateTransformJob request that scores it here. Skipped (and the
    champion's scoring with it) when there is no champion or it has a score here already."""
    names = current_run_names(settings)
    hook = SageMakerLifecycleHook(aws_conn_id=AWS_CONN_ID)
    snapshot = dataset["snapshot_id"]
    hook.update_model_version(
        registered["ModelPackageArn"], metadata=registry.score_metadata(snapshot, report)
    )
    champion = hook.champion_version(
        registered["ModelPackageGroupName"], exclude_arn=registered["ModelPackageArn"]
    )
    if champion is None:
        raise AirflowSkipException("no champion yet: this is the project's first model")
    if snapshot in registry.scores_of(champion.get("CustomerMetadataProperties", {})):
        raise AirflowSkipException(f"the champion has scores on snapshot {snapshot} already")
    arn = champion["ModelPackageArn"]
    print(f"Champion {arn} was never scored on snapshot {snapshot}: scoring it there")
    hook.ensure_model(
        request_builders.model_from_version_request(settings, names.champion_model, arn)
    )
    return {
        "ModelPackageArn": arn,
        "transform": request_builders.transform_job_request(
            settings, names, dataset, model=names.champion_model,
            job_name=names.champion_transform_job,
        ),
    }  # fmt: skip


@task
def evaluate_champion(
    settings: dict, dataset: dict, champion_arn: str, transform: dict
) -> dict[str, Any]:
    """Score the champion's batch transform, record the scores in its version's metadata, and
    delete the model made to score it."""
    names = current_run_names(settings)
    prefix = request_builders.evaluation_report_prefix(
        settings, names, names.champion_transform_job
    )
    report = _evaluation_report(settings, dataset, transform, prefix)
    hook = SageMakerLifecycleHook(aws_conn_id=AWS_CONN_ID)
    hook.update_model_version(
        champion_arn, metadata=registry.score_metadata(dataset["snapshot_id"], report)
    )
    # Made only to be scored: the endpoint never serves it.
    hook.delete_if_present(MODEL, names.champion_model)
    return _report_summary(report)


# Runs after the champion's scoring whether it ran or was skipped (nothing to score).
@task(trigger_rule=TriggerRule.NONE_FAILED)
def decide_promotion(
    settings: dict, dataset: dict, registered: dict | None, report: dict | None
) -> dict:
    """Compare the challenger with the champion on this snapshot (`registry.decide_promotion`)
    and apply the outcome: approve -> Approved; reject -> PendingManualApproval with the reason;
    ask -> left to `ask_about_promotion`. XCom: the decision with both versions' values.
    Skipped when nothing was evaluated (a person rejected the deployment at the gate)."""
    if registered is None or report is None:
        raise AirflowSkipException("no evaluated model to promote")
    hook = SageMakerLifecycleHook(aws_conn_id=AWS_CONN_ID)
    arn, snapshot = registered["ModelPackageArn"], dataset["snapshot_id"]
    champion = hook.champion_version(registered["ModelPackageGroupName"], exclude_arn=arn)
    champion_scores = registry.scores_of(champion.get("CustomerMetadataProperties", {})) if (
        champion) else None  # fmt: skip
    policy = registry.PromotionPolicy.from_settings(settings["registry"])
    decision = registry.decide_promotion(report, champion_scores, snapshot, policy)
    if decision.outcome == registry.Outcome.SCORE_CHAMPION:
        raise RuntimeError(f"{decision.reason} (its scoring did not run)")
    if decision.outcome != registry.Outcome.ASK:
        hook.update_model_version(arn, status=decision.approval_status, reason=decision.reason)
    print(f"Promotion decision for {arn}: {decision.outcome.value}, {decision.reason}")
    return {
        **decision.as_dict(),
        "metric": policy.metric,
        "snapshot_id": snapshot,
        "challenger_version": {"arn": arn, "value": decision.challenger},
        "champion_version": champion and {"arn": champion["ModelPackageArn"],
                                          "value": decision.champion},
    }  # fmt: skip


@task(multiple_outputs=True)
def plan_promotion(settings: dict, registered: dict, endpoint: dict) -> dict[str, Any]:
    """What the endpoint does with the challenger now that its version is decided (by the
    decision, or by a person): `request_builders.promotion_actions` for its ModelApprovalStatus
    and the config `deploy_endpoint` tried it on."""
    names = current_run_names(settings)
    hook = SageMakerLifecycleHook(aws_conn_id=AWS_CONN_ID)
    arn = registered["ModelPackageArn"]
    status = hook.conn.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"]
    tried_on = hook.conn.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    actions = request_builders.promotion_actions(
        settings, names, tried_on, approved=status == registry.APPROVED
    )
    step = "takes the traffic" if status == registry.APPROVED else "is withdrawn"
    trial = actions["retired"]["TrialEndpointName"]
    if trial:  # a first model: the endpoint users call is created for it, or never exists
        created = "created now" if actions["endpoint"] else "never created"
        step += f" ({names.endpoint} {created}); its trial endpoint {trial} is deleted"
    print(f"{registry.PROMOTION_PREFIX} {arn} is {status}: the challenger {step}")
    return actions


@task
def record_serving(settings: dict, version: dict, endpoint: dict) -> dict[str, str]:
    """Record on the model version (`register_model`'s XCom) that the endpoint serves it from
    now (`registry.served_metadata`). Skipped for a version that is not Approved: the endpoint
    serves Approved versions only, and the challenger's was withdrawn."""
    version_arn = version["ModelPackageArn"]
    hook = SageMakerLifecycleHook(aws_conn_id=AWS_CONN_ID)
    status = hook.conn.describe_model_package(ModelPackageName=version_arn)["ModelApprovalStatus"]
    if status != registry.APPROVED:
        raise AirflowSkipException(f"{version_arn} is {status}: the endpoint does not serve it")
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    metadata = registry.served_metadata(endpoint["EndpointName"], since)
    hook.update_model_version(version_arn, metadata=metadata)
    print(f"{endpoint['EndpointName']} serves {version_arn} since {since}")
    return metadata


@task(multiple_outputs=True)
def plan_rollback(settings: dict, params: dict | None = None) -> dict[str, Any]:
    """For the rollback DAG: find version `params.model_package_version` of the project's group
    (it must be Approved), make this run's model from it (in deployment.mode multi_model, a
    multi-model model serving its archive under its candidate's TargetModel), and return the
    endpoint config and endpoint requests that put it on the endpoint."""
    names = current_run_names(settings)
    group, number = request_builders.model_package_group(settings), params["model_package_version"]
    hook = SageMakerLifecycleHook(aws_conn_id=AWS_CONN_ID)
    version = hook.model_version(group, number)
    arn = registry.rollback_target(version, group, number)
    model = request_builders.rollback_model_request(settings, names, version)
    stage_for_rollback(_s3_client(), settings, names, version)
    hook.ensure_model(model)
    print(f"Rolling {names.endpoint} back to {arn} (model {names.model})")
    return {
        "version": {"ModelPackageArn": arn},
        "endpoint": {
            "EndpointConfig": request_builders.endpoint_config_request(settings, names),
            "Endpoint": request_builders.endpoint_request(settings, names),
        },
    }


@task
def clean_up_endpoint(settings: dict, endpoint: dict) -> str:
    """Delete the endpoint when deployment.delete_endpoint is set; keep it otherwise."""
    name = endpoint["EndpointName"]
    if not settings["deployment"]["delete_endpoint"]:
        return f"kept endpoint {name}"
    SageMakerLifecycleHook(aws_conn_id=AWS_CONN_ID).delete_endpoint_and_config(name)
    return f"deleted endpoint {name}"


def run_job_filters(names: RunNames) -> list[tuple[str, str]]:
    """(job kind, what the names of that kind's jobs of the run contain, retries included)."""
    return [
        ("tuning", names.tuning_job),
        ("training", names.run_stamp),  # the best-model job and the tuning job's trials
        ("transform", names.transform_job),  # the champion's scoring too (named after it)
        ("processing", rule_jobs.rule_job_prefix(names.training_job)),
        ("processing", names.explanation_job),
    ]


def _withdraw_challenger(settings: Mapping, names: RunNames, hook: SageMakerLifecycleHook) -> bool:
    """When the endpoint still serves the run's challenger config beside a champion, settle it on
    the champion alone again (waiting here, as the smoke test's rollback does); True if it did.
    (A first model's challenger config is only ever on its trial endpoint.)"""
    serving = hook.serving_config(names.endpoint)
    if not serving or serving["EndpointConfigName"] != names.challenger_endpoint_config:
        return False
    actions = request_builders.promotion_actions(settings, names, serving, approved=False)
    hook.ensure_endpoint_config(actions["endpoint"]["EndpointConfig"])
    hook.deploy_endpoint(actions["endpoint"]["Endpoint"],
                         interval=settings["polling"]["interval_seconds"],
                         timeout=settings["polling"]["timeout_seconds"])  # fmt: skip
    return True


@task(trigger_rule=TriggerRule.ONE_FAILED)
def clean_up_failed_run(settings: dict) -> dict[str, list[str]]:
    """After a failed task: stop the run's jobs still running (a retried or killed task's job
    would otherwise run, and bill, on), take the challenger off the endpoint (it settles on the
    champion again), delete the run's trial endpoint (a first model's), delete the endpoint
    users call when this run's promotion created it and it is not InService (one that served
    before the run is kept, and so is an Approved first model that serves), then delete the
    run's model and endpoint configs unless the endpoint serves them, and the models made only to
    be used by batch transforms (the candidates' own, the champion's scoring one). Skipped when
    nothing failed."""
    names = current_run_names(settings)
    hook = SageMakerLifecycleHook(aws_conn_id=AWS_CONN_ID)
    stopped = [
        name
        for kind, name_contains in run_job_filters(names)
        for name in hook.stop_running_jobs(kind, name_contains)
    ]
    deleted = [f"challenger variant of {names.endpoint}"] if _withdraw_challenger(
        settings, names, hook) else []  # fmt: skip
    if hook.delete_endpoint_if_present(names.trial_endpoint):
        deleted.append(f"trial endpoint {names.trial_endpoint}")
    if hook.delete_endpoint_created_by_run(
        names.endpoint, names.endpoint_config, unless_status="InService"
    ):
        deleted.append(f"endpoint {names.endpoint}")
    for config in (names.challenger_endpoint_config, names.endpoint_config):
        deleted += hook.delete_unused_deployment(names.endpoint, config, names.model)
    candidate_models = [
        names.candidate(index).model for index in range(len(settings["candidates"]))
    ]
    for model in [names.champion_model, *candidate_models]:
        if hook.delete_if_present(MODEL, model):
            deleted.append(f"model {model}")
    print(f"Clean-up of failed run {names.run_stamp}: stopped {stopped or 'no job'}; "
          f"deleted {deleted or 'nothing'}")  # fmt: skip
    return {"stopped": stopped, "deleted": deleted}
