"""The pipeline's Airflow assets: what schedules a run and what a run announces.

- `DATASET_REFRESHED` ("the dataset"): whoever refreshes the source dataset (a data DAG with it as
  an outlet, or `POST /api/v2/assets/events`) updates it; the DAG runs on that event as well as
  weekly.
- `SNAPSHOT_PUBLISHED`: an alias through which `stage_dataset` announces a NEW content-addressed
  snapshot (an event on the asset `s3://<bucket>/<dataset.s3_prefix>`, with the snapshot id and
  image counts as extra). An unchanged dataset announces nothing, so consumers of the snapshots
  (including a model DAG scheduled on them) are not triggered for data they have already seen.

The two are distinct on purpose: were the DAG scheduled on the asset it updates itself, every new
snapshot would trigger one more run over the same data.
"""

from __future__ import annotations

from collections.abc import Mapping

from airflow.sdk import Asset, AssetAlias

DATASET_REFRESHED = Asset(name="dog_breed_dataset")
SNAPSHOT_PUBLISHED = AssetAlias(name="dog_breed_dataset_snapshot_published")


def snapshots_asset(settings: Mapping) -> Asset:
    """The S3 prefix under which the run's settings put every snapshot, as an asset."""
    bucket, prefix = settings["aws"]["bucket"], settings["dataset"]["s3_prefix"].strip("/")
    return Asset(uri=f"s3://{bucket}/{prefix}")  # Airflow drops a trailing slash anyway


def announce_new_snapshot(outlet_events, settings: Mapping, staged: Mapping) -> bool:
    """Add an event for `staged` (StagedDataset.as_dict()) to SNAPSHOT_PUBLISHED, unless the
    snapshot was already complete in S3 (reused). Returns whether an event was added."""
    if staged["reused_snapshot"]:
        return False
    extra = {key: staged[key] for key in ("snapshot_id", "image_counts", "source")}
    extra["classes"] = len(staged["classes"])
    outlet_events[SNAPSHOT_PUBLISHED].add(snapshots_asset(settings), extra=extra)
    return True
