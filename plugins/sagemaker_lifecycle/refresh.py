"""Refresh detection: notice that the dataset source changed, and say so once.

A cheap fingerprint of the source is taken on every poll, without reading its content:
- a URL: a HEAD request's ETag, Last-Modified and Content-Length (no download);
- an `s3://` prefix: every object's key, ETag and size from the listing;
- a local folder: every file's relative name, size and mtime; a local zip: its size and mtime.

Only when the fingerprint differs from the last poll's is the content hashed (the snapshot id
that staging would publish). The source counts as refreshed when that id differs from the one
last seen, or, at the first poll, when the catalog has never recorded it. A touched file or a
re-uploaded zip with the same content changes the fingerprint but not the id: no event. What the
last poll saw is kept in S3 at `<dataset.s3_prefix>/watch/<source key>.json`, so the check
survives restarts and any worker can run it.

dags/dog_breed_dataset_watcher.py runs `check_source` on a schedule and, when the source was
refreshed, updates the `dog_breed_dataset` asset, which starts the pipeline.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from botocore.exceptions import ClientError

from sagemaker_lifecycle.dataset_source import HTTP_TIMEOUT_SECONDS, DatasetSourceError, is_url
from sagemaker_lifecycle.snapshots import SnapshotCatalog
from sagemaker_lifecycle.staging import ensure_bucket, fetch_and_verify, snapshot_id

log = logging.getLogger(__name__)

URL_FINGERPRINT_HEADERS = ("ETag", "Last-Modified", "Content-Length")
WATCH_FOLDER = "watch"


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


def url_fingerprint(url: str) -> str:
    """The URL's validators and length from one HEAD request; DatasetSourceError without any."""
    try:
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
            headers = {name: response.headers.get(name) for name in URL_FINGERPRINT_HEADERS}
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        raise DatasetSourceError(f"could not HEAD {url}: {error}") from error
    if not any(headers.values()):
        raise DatasetSourceError(
            f"{url} answers HEAD with no ETag, Last-Modified or Content-Length: its changes "
            "cannot be noticed without downloading it"
        )
    return _digest([f"{name}: {value}" for name, value in headers.items()])


def s3_prefix_fingerprint(s3, uri: str) -> str:
    """Every object under the prefix `uri`, by key, ETag and size (listing only)."""
    bucket, prefix = S3Hook.parse_s3_url(uri)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    objects = [item for page in pages for item in page.get("Contents", [])]
    if not objects:
        raise DatasetSourceError(f"no object under {uri}")
    return _digest([f"{item['Key']} {item['ETag']} {item['Size']}" for item in objects])


def local_fingerprint(path: Path) -> str:
    """A zip's size and mtime, or every file of a folder by relative name, size and mtime."""
    if path.is_file():
        info = path.stat()
        return _digest([f"{info.st_size} {info.st_mtime_ns}"])
    if not path.is_dir():
        raise DatasetSourceError(f"dataset source {str(path)!r} is neither a folder nor a file")
    lines = []
    for folder, _, files in os.walk(path):
        for name in files:
            info = os.stat(os.path.join(folder, name))
            relative = os.path.relpath(os.path.join(folder, name), path)
            lines.append(f"{relative} {info.st_size} {info.st_mtime_ns}")
    return _digest(lines)


def source_fingerprint(source: str, s3) -> str:
    """The cheap fingerprint of `source` (see the module docstring)."""
    if source.startswith("s3://"):
        return s3_prefix_fingerprint(s3, source)
    if is_url(source):
        return url_fingerprint(source)
    return local_fingerprint(Path(source).expanduser())


@dataclass(frozen=True)
class SourceState:
    """What one poll saw of a source."""

    source: str
    fingerprint: str
    snapshot_id: str
    checked_at: str


@dataclass(frozen=True)
class RefreshCheck:
    refreshed: bool
    reason: str
    state: SourceState  # to be saved once the refresh (if any) is announced


class SourceWatch:
    """The last poll's SourceState of a source, kept in S3 beside the catalog."""

    def __init__(self, s3, bucket: str, prefix: str, source: str):
        self.s3, self.bucket = s3, bucket
        key = hashlib.sha256(source.encode()).hexdigest()[:16]
        self.key = f"{prefix.strip('/')}/{WATCH_FOLDER}/{key}.json"

    def last(self) -> SourceState | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self.key)["Body"].read()
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        return SourceState(**json.loads(body))

    def save(self, state: SourceState) -> None:
        body = json.dumps(asdict(state), indent=2).encode()
        self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=body)


def check_source(settings: Mapping, s3, now: datetime | None = None) -> RefreshCheck:
    """Whether dataset.source was refreshed since the last poll (see the module docstring)."""
    dataset, bucket = settings["dataset"], settings["aws"]["bucket"]
    source = dataset["source"]
    ensure_bucket(s3, bucket, settings["aws"]["create_bucket"])  # where the state is kept
    watch = SourceWatch(s3, bucket, dataset["s3_prefix"], source)
    fingerprint = source_fingerprint(source, s3)
    last = watch.last()
    checked_at = (now or datetime.now(UTC)).isoformat()
    if last and last.fingerprint == fingerprint:
        return RefreshCheck(False, f"{source} is unchanged since {last.checked_at}", last)
    _, _, entries = fetch_and_verify(dataset, s3)
    state = SourceState(source, fingerprint, snapshot_id(entries), checked_at)
    if last:
        if last.snapshot_id == state.snapshot_id:
            reason = f"{source} was touched, but its content is still {state.snapshot_id}"
            return RefreshCheck(False, reason, state)
        reason = f"{source} changed from snapshot {last.snapshot_id} to {state.snapshot_id}"
        return RefreshCheck(True, reason, state)
    recorded = {
        entry.snapshot_id for entry in SnapshotCatalog(s3, bucket, dataset["s3_prefix"]).entries()
    }
    if state.snapshot_id in recorded:
        return RefreshCheck(False, f"{source} holds {state.snapshot_id}, already staged", state)
    return RefreshCheck(True, f"{source} holds {state.snapshot_id}, never staged", state)
