"""Reading what a run recorded: XCom and task states from Airflow's database, then S3, SageMaker
and CloudWatch through the Airflow AWS connection. Every call here reads; nothing is written.

AWS errors do not fail the page: each becomes one sentence in `RunDetails.problems`.
"""

from __future__ import annotations

import json
from collections import defaultdict

from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from botocore.exceptions import ClientError
from sqlalchemy import select

from sagemaker_lifecycle.job_metrics import AWS_ERRORS, TRAINING_NAMESPACE, read_job_metrics
from sagemaker_lifecycle.ui.records import (
    CANDIDATE_SOURCES,
    DAG_ID,
    EVALUATION_PREFIX,
    PICTURE_SUFFIXES,
    SOURCES,
    STATE_TASKS,
    XCOM_TASKS,
    RunDetails,
    RunRecord,
    run_record,
)

HISTORY_RUNS = 50
LOG_GROUP = TRAINING_NAMESPACE  # the training jobs' log group has the same name
LOG_TAIL_LINES = 200


def run_records(session, run_id: str | None = None, limit: int = HISTORY_RUNS) -> list[RunRecord]:
    """The newest `limit` runs of the DAG (or the one `run_id`), each from its XComs and its
    candidates' task states, every map index of the `candidate` group apart."""
    query = select(DagRun).where(DagRun.dag_id == DAG_ID)
    if run_id is not None:
        query = query.where(DagRun.run_id == run_id)
    runs = list(session.scalars(query.order_by(DagRun.run_after.desc()).limit(limit)))
    wanted = {*SOURCES.values(), *CANDIDATE_SOURCES.values()}
    xcoms: dict[int, dict] = defaultdict(dict)
    rows = session.scalars(select(XComModel).where(
        XComModel.dag_run_id.in_([run.id for run in runs]), XComModel.task_id.in_(XCOM_TASKS),
    ))  # fmt: skip
    for row in rows:
        if (row.task_id, row.key) in wanted:
            value = XComModel.deserialize_value(row)
            xcoms[row.dag_run_id][(row.task_id, row.key, row.map_index)] = value
    states: dict[str, dict] = defaultdict(dict)
    instances = session.execute(select(
        TaskInstance.run_id, TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state,
    ).where(
        TaskInstance.dag_id == DAG_ID, TaskInstance.task_id.in_(STATE_TASKS),
        TaskInstance.run_id.in_([run.run_id for run in runs]),
    ))  # fmt: skip
    for dag_run_id, task_id, map_index, state in instances:
        if state:
            states[dag_run_id][(task_id, map_index)] = str(state)
    return [
        run_record(run.run_id, str(run.state), run.run_after.isoformat(), xcoms[run.id],
                   states[run.run_id])
        for run in runs
    ]  # fmt: skip


def run_details(record: RunRecord, s3, sagemaker, logs, cloudwatch) -> RunDetails:
    """What only the run page shows, read with the given boto3 clients."""
    measured = read_job_metrics(sagemaker, cloudwatch, record.tuning, record.training)
    details = RunDetails(trials=measured.trials, curves=measured.curves, problems=measured.problems)
    readers = (
        ("the catalog entry", _catalog_entry),
        ("the training log", _log_tail),
        ("the evaluation report", _evaluation),
    )
    clients = {"s3": s3, "sagemaker": sagemaker, "logs": logs, "cloudwatch": cloudwatch}
    for what, read in readers:
        try:
            read(record, details, clients)
        except AWS_ERRORS as error:
            details.problems.append(f"Could not read {what}: {error}")
    return details


def _catalog_entry(record: RunRecord, details: RunDetails, clients) -> None:
    if not (record.dataset and record.bucket):
        return
    prefix = record.settings["dataset"]["s3_prefix"].strip("/")
    key = f"{prefix}/catalog/{record.dataset['snapshot_id']}.json"
    try:
        body = clients["s3"].get_object(Bucket=record.bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return  # a snapshot staged before the catalog existed has no entry
        raise
    details.catalog_entry = json.loads(body)


def _log_tail(record: RunRecord, details: RunDetails, clients) -> None:
    if not record.training:
        return
    job = record.training["TrainingJobName"]
    logs = clients["logs"]
    streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{job}/")
    for stream in streams.get("logStreams", [])[:1]:
        events = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream["logStreamName"],
                                     limit=LOG_TAIL_LINES, startFromHead=False)  # fmt: skip
        details.log_tail = [event["message"].rstrip() for event in events["events"]]


def _evaluation(record: RunRecord, details: RunDetails, clients) -> None:
    if not record.evaluation:
        return
    bucket, _, key = record.evaluation["report_uri"].removeprefix("s3://").partition("/")
    s3 = clients["s3"]
    details.report = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    prefix = key.rsplit("/", 1)[0] + "/"
    if not prefix.startswith(EVALUATION_PREFIX):
        return
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    details.pictures = [
        f"s3://{bucket}/{item['Key']}"
        for page in pages for item in page.get("Contents", [])
        if item["Key"].lower().endswith(PICTURE_SUFFIXES)
        and not item["Key"].endswith("/confusion_matrix.png")
    ]  # fmt: skip
