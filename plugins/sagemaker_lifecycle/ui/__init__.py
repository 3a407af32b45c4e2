"""The model-run pages of the Airflow UI: an Airflow plugin (`plugins/model_runs_plugin.py`).

`records` gathers what a run recorded, `charts` and `pages` render it (pure), `reader` reads
XCom, S3, SageMaker and CloudWatch (read-only), `app` serves it under Airflow's auth, `links`
are the tasks' extra links to it.
"""
