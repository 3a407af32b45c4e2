"""dog_breed_rollback: point the endpoint back at an earlier Approved model version, in one step.

    settings >> plan the rollback (version `model_package_version` of the project's model package
    group; it must be Approved) and make a model from it >> endpoint (blue/green, deferred)
    >> record on the version that the endpoint serves it

Trigger it with the version number the registry shows (Model Registry, `registry.group`). Its
blue/green update follows `deployment.update`, as the pipeline's own deployments do; `overrides`
takes any nested setting, as the pipeline's param does.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag
from sagemaker_lifecycle.operators import EndpointOperator
from sagemaker_lifecycle.tasks import AWS_CONN_ID, plan_rollback, record_serving, resolve_settings

POLL_INTERVAL = "{{ ti.xcom_pull(task_ids='resolve_settings')['polling']['interval_seconds'] }}"
WAIT_LIMIT = "{{ ti.xcom_pull(task_ids='resolve_settings')['polling']['timeout_seconds'] }}"


@dag(
    dag_id="dog_breed_rollback",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # runs share the pipeline's endpoint
    render_template_as_native_obj=True,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1), "aws_conn_id": AWS_CONN_ID},
    tags=["sagemaker", "image-classification"],
    params={
        "model_package_version": Param(
            type="integer", minimum=1, description="The Approved version to serve again"
        ),
        "overrides": Param(
            {}, type="object", description="Any nested setting of include/pipeline.yaml"
        ),
    },
    doc_md=__doc__,
)
def dog_breed_rollback():
    settings = resolve_settings()
    rollback = plan_rollback(settings)
    endpoint = EndpointOperator(
        task_id="deploy_endpoint",
        config=rollback["endpoint"],
        check_interval=POLL_INTERVAL,
        max_ingestion_time=WAIT_LIMIT,
    )
    record_serving(settings, rollback["version"], endpoint.output)


dog_breed_rollback()
