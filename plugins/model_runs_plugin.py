"""Registers the model-run pages with Airflow (see sagemaker_lifecycle/ui).

`fastapi_apps` serves the pages from Airflow's own api-server, under its auth, rendered there
as HTML with inline SVG charts (no JavaScript bundle to build, nothing fetched from a CDN).
`external_views` put them in Airflow's UI: a "Model run" tab on each DAG run and a "Model
history" tab on the DAG, both shown in the UI's frame.
"""

from airflow.plugins_manager import AirflowPlugin
from sagemaker_lifecycle.ui.app import app
from sagemaker_lifecycle.ui.records import URL_PREFIX


class ModelRunsPlugin(AirflowPlugin):
    name = "model_runs"
    fastapi_apps = [{"name": "model_runs", "app": app, "url_prefix": URL_PREFIX}]
    external_views = [
        {"name": "Model run", "href": f"{URL_PREFIX}/runs/{{RUN_ID}}", "destination": "dag_run",
         "url_route": "model-run"},
        {"name": "Model history", "href": f"{URL_PREFIX}/", "destination": "dag",
         "url_route": "model-history"},
    ]  # fmt: skip
