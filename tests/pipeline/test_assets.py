"""Asset events: a new dataset snapshot is announced on the alias, a reused one is not."""

from airflow.sdk import Asset
from airflow.sdk.execution_time.context import OutletEventAccessors
from sagemaker_lifecycle.assets import SNAPSHOT_PUBLISHED, announce_new_snapshot


def test_a_new_snapshot_adds_one_event_on_the_configured_s3_prefix(settings, staged_dataset):
    events = OutletEventAccessors()
    assert announce_new_snapshot(events, settings, staged_dataset)
    [event] = events[SNAPSHOT_PUBLISHED].asset_alias_events
    assert event.dest_asset_key.uri == "s3://dog-breed-classifier/datasets"
    assert event.dest_asset_key == type(event.dest_asset_key).from_asset(
        Asset(uri="s3://dog-breed-classifier/datasets")
    )
    assert event.extra == {"snapshot_id": "0123456789abcdef", "classes": 2, "source": "/data",
                           "image_counts": {"train": 4, "valid": 2, "test": 2}}  # fmt: skip


def test_a_reused_snapshot_announces_nothing(settings, staged_dataset):
    events = OutletEventAccessors()
    assert not announce_new_snapshot(events, settings, {**staged_dataset, "reused_snapshot": True})
    assert events[SNAPSHOT_PUBLISHED].asset_alias_events == []
