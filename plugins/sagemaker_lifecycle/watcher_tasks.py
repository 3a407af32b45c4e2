"""The tasks of dags/dog_breed_dataset_watcher.py: check the dataset source, announce a refresh.

The check is a short-circuit task: when the source was not refreshed (refresh.check_source) it
saves what it saw and skips the announcement; otherwise the announcement saves it and, by
succeeding, adds one event to the `dog_breed_dataset` asset, which starts the pipeline.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.sdk import Variable, task

from sagemaker_lifecycle.assets import DATASET_REFRESHED
from sagemaker_lifecycle.refresh import SourceState, SourceWatch, check_source
from sagemaker_lifecycle.tasks import AWS_CONN_ID, VARIABLE_SETTINGS, settings_from_params


def _watch(settings: dict, s3, source: str) -> SourceWatch:
    return SourceWatch(s3, settings["aws"]["bucket"], settings["dataset"]["s3_prefix"], source)


def _deployment_settings() -> dict[str, Any]:
    """The pipeline's settings as a run without params sees them (the source it would stage)."""
    variables = {name: Variable.get(name, default=None) for name in VARIABLE_SETTINGS}
    return settings_from_params({}, variables)


@task.short_circuit
def check_dataset_source() -> dict[str, Any] | bool:
    """What changed, when the source was refreshed; False (skipping the announcement) if not."""
    settings = _deployment_settings()
    s3 = S3Hook(aws_conn_id=AWS_CONN_ID).get_conn()
    check = check_source(settings, s3)
    print(f"Refresh check: {check.reason}")
    if check.refreshed:
        return {"reason": check.reason, **asdict(check.state)}
    _watch(settings, s3, check.state.source).save(check.state)
    return False


@task(outlets=[DATASET_REFRESHED])
def announce_refresh(check: dict[str, Any], outlet_events=None) -> str:
    """Save what the check saw, and (on success) update the dog_breed_dataset asset."""
    state = SourceState(**{key: value for key, value in check.items() if key != "reason"})
    settings = _deployment_settings()
    _watch(settings, S3Hook(aws_conn_id=AWS_CONN_ID).get_conn(), state.source).save(state)
    outlet_events[DATASET_REFRESHED].extra = {"source": state.source,
                                              "snapshot_id": state.snapshot_id}  # fmt: skip
    print(f"Asset event on {DATASET_REFRESHED.name}: {check['reason']}")
    return state.snapshot_id
