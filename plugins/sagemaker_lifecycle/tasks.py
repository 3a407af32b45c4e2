"""The pipeline's Python tasks (TaskFlow), used by dags/dog_breed_classifier.py.

Each task does one step that is not a SageMaker job: resolve the run's settings, stage the data,
turn the previous step's result into the next API request (the explanation job's among them),
smoke-test the endpoint, evaluate the batch transform, clean up the endpoint and, when the run
failed, what the run left behind.
Requests come from `request_builders`, names from `naming`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.sdk import TriggerRule, Variable, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException
from botocore.exceptions import ClientError

from sagemaker_lifecycle import evaluation, request_builders, rule_jobs, staging
from sagemaker_lifecycle.assets import SNAPSHOT_PUBLISHED, announce_new_snapshot
from sagemaker_lifecycle.hooks import SageMakerLifecycleHook
from sagemaker_lifecycle.images import resolve_image_uris
from sagemaker_lifecycle.naming import RunNames, run_names
from sagemaker_lifecycle.settings import check_run_overrides, in_region, load_settings
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


def _s3_client():
    return S3Hook(aws_conn_id=AWS_CONN_ID).get_conn()


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
def plan_tuning(settings: dict, dataset: dict) -> dict[str, Any]:
    """The CreateHyperParameterTuningJob request; with tuning.warm_start, warm-started from the
    project's newest completed tuning job (see request_builders.warm_start_config)."""
    names = current_run_names(settings)
    request = request_builders.tuning_job_request(settings, names, dataset)
    if not settings["tuning"]["warm_start"]:
        return request
    parent = SageMakerLifecycleHook(aws_conn_id=AWS_CONN_ID).latest_completed_tuning_job(
        f"{names.project}-tune-", exclude=names.tuning_job
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
def plan_training(settings: dict, dataset: dict, tuning: dict) -> dict[str, Any]:
    """The CreateTrainingJob request for the best tuned configuration, with Debugger rules."""
    names = current_run_names(settings)
    tuned = tuning["TunedHyperParameters"]
    return request_builders.training_job_request(settings, names, dataset, tuned)


@task
def plan_rule_jobs(settings: dict, dataset: dict, training: dict) -> list[dict[str, Any]]:
    """CreateProcessingJob requests, one per rule (none when SageMaker Debugger runs them)."""
    if settings["rules"]["engine"] != "processing":
        return []
    return rule_jobs.rule_processing_requests(settings, dataset, training)


@task(multiple_outputs=True)
def plan_deployment(settings: dict, dataset: dict, training: dict) -> dict[str, Any]:
    """The CreateModel, endpoint (config + endpoint) and CreateTransformJob requests."""
    names = current_run_names(settings)
    return {
        "model": request_builders.model_request(settings, names, training["ModelArtifact"]),
        "endpoint": {
            "EndpointConfig": request_builders.endpoint_config_request(settings, names),
            "Endpoint": request_builders.endpoint_request(settings, names),
        },
        "transform": request_builders.transform_job_request(settings, names, dataset),
    }


def _predict(settings: Mapping, endpoint_name: str, body: bytes) -> str:
    """The endpoint's answer to one image; ValueError when it is not a list of predictions."""
    runtime = AwsBaseHook(aws_conn_id=AWS_CONN_ID, client_type="sagemaker-runtime").get_conn()
    response = runtime.invoke_endpoint(
        EndpointName=endpoint_name,
        ContentType=settings["transform"]["content_type"],
        Accept=settings["transform"]["accept"],
        Body=body,
    )
    answer = response["Body"].read().decode()
    evaluation.ranked_labels(answer.encode(), f"the answer of {endpoint_name}")
    return answer


@task
def smoke_test_endpoint(settings: dict, dataset: dict, endpoint: dict) -> dict[str, Any]:
    """Send one test-split image to the endpoint and log its answer.

    When the endpoint fails to answer with predictions, it is rolled back to the config it
    served before this run (if any) and the task fails.
    """
    image_uri, body = evaluation.first_image(_s3_client(), dataset["channels"]["test"])
    name, previous = endpoint["EndpointName"], endpoint["PreviousEndpointConfigName"]
    try:
        answer = _predict(settings, name, body)
    except (ClientError, ValueError) as error:
        if previous and previous != endpoint["EndpointConfigName"]:
            SageMakerLifecycleHook(aws_conn_id=AWS_CONN_ID).deploy_endpoint(
                {"EndpointName": name, "EndpointConfigName": previous},
                interval=settings["polling"]["interval_seconds"],
                timeout=settings["polling"]["timeout_seconds"],
            )
            raise RuntimeError(
                f"smoke test of {name} failed ({error}); rolled back to {previous}"
            ) from error
        raise RuntimeError(f"smoke test of {name} failed: {error}") from error
    print(
        f"Endpoint {name} on {image_uri} (true class {evaluation.label_of(image_uri)}):\n{answer}"
    )
    return {"image": image_uri, "answer": answer[:2000]}


@task
def evaluate(settings: dict, dataset: dict, transform: dict) -> dict[str, Any]:
    """Score the batch transform against the labels; fail below evaluation.min_accuracy."""
    explained = settings["explanations"]["enabled"]
    report = evaluation.evaluate_transform(
        _s3_client(),
        transform["InputPath"],
        transform["OutputPath"],
        dataset["classes"],
        report_uri=f"s3://{settings['aws']['bucket']}/evaluation/{transform['TransformJobName']}/",
        top_k=settings["evaluation"]["top_k"],
        explanations_folder=request_builders.EXPLANATIONS_FOLDER if explained else None,
    )
    print(evaluation.format_report(report))
    minimum = settings["evaluation"]["min_accuracy"]
    if report["accuracy"] < minimum:
        raise ValueError(
            f"accuracy {report['accuracy']:.4f} on {settings['transform']['split']} is below "
            f"evaluation.min_accuracy {minimum}"
        )
    top_key, _ = evaluation.top_k_accuracy(report)
    kept = ("accuracy", top_key, "macro_f1", "count", "report_uri", "html_report_uri")
    return {key: report[key] for key in kept}


@task
def plan_explanations(settings: dict, dataset: dict, training: dict, report: dict) -> dict:
    """The explanation job's CreateProcessingJob request, beside the evaluation `report`;
    skipped (and the job with it) when explanations.enabled is false."""
    if not settings["explanations"]["enabled"]:
        raise AirflowSkipException("explanations.enabled is false")
    names = current_run_names(settings)
    return request_builders.explanation_job_request(
        settings, names, dataset, training["ModelArtifact"], report["report_uri"]
    )


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
        ("transform", names.transform_job),
        ("processing", rule_jobs.rule_job_prefix(names.training_job)),
        ("processing", names.explanation_job),
    ]


@task(trigger_rule=TriggerRule.ONE_FAILED)
def clean_up_failed_run(settings: dict) -> dict[str, list[str]]:
    """After a failed task: stop the run's jobs still running (a retried or killed task's job
    would otherwise run, and bill, on), delete the endpoint when this run created it (one that
    served before the run is kept), then delete the run's model and endpoint config unless the
    endpoint serves them. Skipped when nothing failed."""
    names = current_run_names(settings)
    hook = SageMakerLifecycleHook(aws_conn_id=AWS_CONN_ID)
    stopped = [
        name
        for kind, name_contains in run_job_filters(names)
        for name in hook.stop_running_jobs(kind, name_contains)
    ]
    deleted = [f"endpoint {names.endpoint}"] if hook.delete_endpoint_created_by_run(
        names.endpoint, names.endpoint_config
    ) else []  # fmt: skip
    deleted += hook.delete_unused_deployment(names.endpoint, names.endpoint_config, names.model)
    print(f"Clean-up of failed run {names.run_stamp}: stopped {stopped or 'no job'}; "
          f"deleted {deleted or 'nothing'}")  # fmt: skip
    return {"stopped": stopped, "deleted": deleted}
