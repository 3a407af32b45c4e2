"""dog_breed_dataset_watcher: start the pipeline when its dataset source really changed.

    check the source (cheap fingerprint; content hash only when it moved) >> announce a refresh

Every `dataset.refresh_check_minutes`, it checks the source the pipeline stages (dataset.source of
the deployment's settings) and, once per real change, updates the asset `dog_breed_dataset`, on
which `dog_breed_classifier` runs. See plugins/sagemaker_lifecycle/refresh.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import dag
from sagemaker_lifecycle.settings import load_defaults
from sagemaker_lifecycle.tasks import AWS_CONN_ID
from sagemaker_lifecycle.watcher_tasks import announce_refresh, check_dataset_source

DEFAULTS = load_defaults()


@dag(
    dag_id="dog_breed_dataset_watcher",
    schedule=timedelta(minutes=DEFAULTS["dataset"]["refresh_check_minutes"]),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # two checks at once would both see the same change
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1), "aws_conn_id": AWS_CONN_ID},
    tags=["dataset"],
    doc_md=__doc__,
)
def dog_breed_dataset_watcher():
    announce_refresh(check_dataset_source())


dog_breed_dataset_watcher()
