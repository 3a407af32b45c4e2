"""The plugin's FastAPI app, mounted by Airflow's api-server under URL_PREFIX.

Every route depends on Airflow's own auth: the caller must be logged in (the UI's JWT cookie or
a bearer token) and may read the DAG's XComs. S3 objects are streamed through the Airflow AWS
connection, only from the run's bucket and only under the prefixes the pipeline writes
(RunRecord.readable_prefixes); anything else gets a 404 or 403 naming why.
"""

from __future__ import annotations

import dataclasses
import functools
from urllib.parse import quote

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag
from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.utils.session import create_session
from botocore.exceptions import ClientError
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse, StreamingResponse

from sagemaker_lifecycle.ui import pages, reader
from sagemaker_lifecycle.ui.records import DAG_ID, URL_PREFIX, RunRecord, checked_key

AWS_CONN_ID = "aws_default"
CHUNK_BYTES = 64 * 1024
# Served objects run in an opaque origin: a report's HTML cannot act as the Airflow UI's user.
OBJECT_HEADERS = {"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"}

can_read_runs = Depends(requires_access_dag("GET", DagAccessEntity.XCOM, param_dag_id=DAG_ID))
app = FastAPI(title="Model runs of dog_breed_classifier", dependencies=[can_read_runs])


@functools.cache
def _client(service: str):
    """One client per service for the api-server's life: a new one would load botocore's service
    model again (seconds for SageMaker's on a busy machine). Clients are thread-safe."""
    return AwsBaseHook(aws_conn_id=AWS_CONN_ID, client_type=service).get_conn()


def object_url(run_id: str, s3_uri: str) -> str:
    """The plugin's URL of one S3 object of the run (its bucket is the run's)."""
    key = s3_uri.removeprefix("s3://").partition("/")[2]
    return f"{URL_PREFIX}/runs/{quote(run_id, safe='')}/objects/{quote(key)}"


def _record(run_id: str) -> RunRecord:
    with create_session() as session:
        records = reader.run_records(session, run_id=run_id, limit=1)
    if not records:
        raise HTTPException(404, f"{DAG_ID} has no run {run_id!r}")
    return records[0]


@app.get("/", response_class=HTMLResponse)
def history() -> str:
    with create_session() as session:
        records = reader.run_records(session)
    return pages.history_page(records, URL_PREFIX)


@app.get("/runs/{run_id}", response_class=HTMLResponse)
def run(run_id: str, candidate: int | None = None) -> str:
    """The run's page; `candidate` (a map index) shows that candidate instead of the winner."""
    record = _record(run_id)
    if candidate is not None:
        if candidate not in {c.map_index for c in record.candidates}:
            raise HTTPException(404, f"run {run_id!r} has no candidate {candidate}")
        record = dataclasses.replace(record, selected=candidate)
    details = reader.run_details(record, _client("s3"), _client("sagemaker"), _client("logs"),
                                 _client("cloudwatch"))  # fmt: skip
    return pages.run_page(record, details, object_url, URL_PREFIX)


@app.get("/runs/{run_id}/objects/{key:path}")
def run_object(run_id: str, key: str) -> StreamingResponse:
    record = _record(run_id)
    if not record.bucket:
        raise HTTPException(404, f"run {run_id!r} recorded no bucket")
    try:
        checked_key(key, record.readable_prefixes())
    except ValueError as error:
        raise HTTPException(403, str(error)) from error
    try:
        answer = _client("s3").get_object(Bucket=record.bucket, Key=key)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
            raise HTTPException(404, f"no object s3://{record.bucket}/{key}") from error
        raise
    return StreamingResponse(
        answer["Body"].iter_chunks(CHUNK_BYTES),
        media_type=answer.get("ContentType") or "application/octet-stream",
        headers=OBJECT_HEADERS,
    )
