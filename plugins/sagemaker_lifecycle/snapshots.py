"""The snapshot catalog: an append-only record, in the bucket, of every dataset snapshot published.

One JSON object per snapshot at `s3://<bucket>/<dataset.s3_prefix>/catalog/<snapshot id>.json`,
created with a conditional write (`If-None-Match: *`): the first run to record a snapshot wins, a
concurrent or later one finds it recorded and leaves it as it is, so no entry is ever rewritten
and concurrent runs cannot corrupt one another's. A person reads it with
`aws s3 cp s3://<bucket>/datasets/catalog/ - --recursive` or any S3 browser; `stage_dataset` reads
it to choose the snapshot of a backfill.

Which snapshot a run trains on (`choose_snapshot`):
- a `dataset_snapshot` param pins the run to that snapshot id;
- a backfill run takes the newest snapshot whose `as_of` is at or before the end of its data
  interval, and never fetches the source;
- any other run (scheduled, asset-triggered, manual) stages the source as it is now.

`as_of` is when the data was current: the earlier of the publishing run's data-interval end (the
scheduler's clock) and the worker's clock when it published. A scheduled run for date D that
publishes a few minutes after D thus counts as D's snapshot, and a backfill of D trains on what
the run of D trained on, whatever the worker's clock said.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

log = logging.getLogger(__name__)

CATALOG_FOLDER = "catalog"
BACKFILL_RUN_TYPE = "backfill"  # airflow.utils.types.DagRunType.BACKFILL_JOB


class SnapshotChoiceError(ValueError):
    """No snapshot fits the run; the message says which run, which catalog and what it holds."""


@dataclass(frozen=True)
class CatalogEntry:
    """One published snapshot, as recorded in the catalog."""

    snapshot_id: str
    source: str
    classes: list[str]
    image_counts: dict[str, int]
    manifest_uri: str
    published_at: str  # ISO 8601 with offset: the publishing worker's clock
    as_of: str  # ISO 8601 with offset: see the module docstring
    published_by: dict[str, str]  # dag_id, run_id, run_type of the publishing DAG run

    @classmethod
    def from_json(cls, payload: bytes | str) -> CatalogEntry:
        return cls(**json.loads(payload))

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()

    @property
    def snapshot_uri(self) -> str:
        """The snapshot's s3:// prefix (ending in /), where its splits lie."""
        return self.manifest_uri.rsplit("/", 1)[0] + "/"


@dataclass(frozen=True)
class SnapshotChoice:
    """What a run trains on: a recorded snapshot, or (`entry` None) the source staged now."""

    entry: CatalogEntry | None
    reason: str


def parse_time(text: str, what: str) -> datetime:
    """An aware datetime from ISO 8601 text; ValueError naming `what` when it has no offset."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"{what} {text!r} has no UTC offset; catalog times must carry one")
    return parsed


def _order(entry: CatalogEntry) -> tuple[datetime, datetime, str]:
    # Ties on as_of (two runs of one interval) go to the later publication, then the larger id,
    # so the same catalog always gives the same choice.
    return (
        parse_time(entry.as_of, f"as_of of {entry.snapshot_id}"),
        parse_time(entry.published_at, f"published_at of {entry.snapshot_id}"),
        entry.snapshot_id,
    )


def newest_as_of(entries: Iterable[CatalogEntry], cutoff: datetime, catalog: str) -> CatalogEntry:
    """The newest entry whose as_of is at or before `cutoff` (aware); SnapshotChoiceError when
    the catalog held none by then."""
    entries = sorted(entries, key=_order)
    eligible = [entry for entry in entries if _order(entry)[0] <= cutoff]
    if eligible:
        return eligible[-1]
    oldest = f"; its oldest is {entries[0].snapshot_id}, as of {entries[0].as_of}" if entries else (
        " (it is empty)"
    )  # fmt: skip
    raise SnapshotChoiceError(
        f"no snapshot in {catalog} was published by {cutoff.isoformat()}{oldest}: a backfill "
        "trains only on data that existed at its date; pin one with the dataset_snapshot param"
    )


def choose_snapshot(
    run_type: str, interval_end: datetime | None, pinned: str | None, catalog: SnapshotCatalog
) -> SnapshotChoice:
    """Which snapshot a run of `run_type` whose data interval ends at `interval_end` trains on
    (see the module docstring); SnapshotChoiceError when none fits."""
    if pinned:
        return SnapshotChoice(catalog.entry(pinned), f"pinned to {pinned} (dataset.snapshot)")
    if run_type != BACKFILL_RUN_TYPE:
        return SnapshotChoice(None, f"a {run_type} run stages the dataset source as it is now")
    if interval_end is None:
        raise SnapshotChoiceError("a backfill run without a data interval cannot pick a snapshot")
    chosen = newest_as_of(catalog.entries(), interval_end, catalog.uri)
    return SnapshotChoice(
        chosen,
        f"backfill: {chosen.snapshot_id} is the newest snapshot as of its data interval's end "
        f"{interval_end.isoformat()} (published as of {chosen.as_of} by "
        f"{chosen.published_by.get('run_id', 'an unknown run')})",
    )


class SnapshotCatalog:
    """The catalog under `s3://<bucket>/<prefix>/catalog/`, read and appended with `s3`."""

    def __init__(self, s3, bucket: str, prefix: str):
        self.s3, self.bucket = s3, bucket
        self.folder = f"{prefix.strip('/')}/{CATALOG_FOLDER}/"

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.folder}"

    def _key(self, snapshot_id: str) -> str:
        return f"{self.folder}{snapshot_id}.json"

    def record(self, entry: CatalogEntry) -> bool:
        """Append `entry` unless its snapshot is already recorded; returns whether it was new."""
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=self._key(entry.snapshot_id),
                Body=entry.to_json(),
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except ClientError as error:
            # 409 ConditionalRequestConflict: another run's write of the same key is in flight.
            if error.response["Error"]["Code"] in ("PreconditionFailed", "412",
                                                   "ConditionalRequestConflict"):  # fmt: skip
                return False
            raise
        log.info("Recorded snapshot %s in %s", entry.snapshot_id, self.uri)
        return True

    def entry(self, snapshot_id: str) -> CatalogEntry:
        """The recorded entry of `snapshot_id`; SnapshotChoiceError when there is none."""
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self._key(snapshot_id))["Body"]
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("NoSuchKey", "404", "NotFound"):
                raise
            known = ", ".join(entry.snapshot_id for entry in self.entries()) or "none"
            raise SnapshotChoiceError(
                f"snapshot {snapshot_id!r} is not in {self.uri} (recorded: {known})"
            ) from error
        return CatalogEntry.from_json(body.read())

    def entries(self) -> list[CatalogEntry]:
        """Every recorded entry (one GET per snapshot: a catalog holds a few hundred at most)."""
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.folder
        )
        keys = [item["Key"] for page in pages for item in page.get("Contents", [])
                if item["Key"].endswith(".json")]  # fmt: skip
        return [
            CatalogEntry.from_json(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
            for key in keys
        ]


def new_entry(
    staged: Mapping[str, Any],
    published_by: Mapping[str, str],
    interval_end: datetime | None,
    now: datetime | None = None,
) -> CatalogEntry:
    """The catalog entry of `staged` (StagedDataset.as_dict()) published now by `published_by`."""
    published_at = now or datetime.now(UTC)
    as_of = min(published_at, interval_end) if interval_end else published_at
    return CatalogEntry(
        snapshot_id=staged["snapshot_id"],
        source=staged["source"],
        classes=list(staged["classes"]),
        image_counts=dict(staged["image_counts"]),
        manifest_uri=staged["manifest_uri"],
        published_at=published_at.isoformat(),
        as_of=as_of.isoformat(),
        published_by=dict(published_by),
    )
