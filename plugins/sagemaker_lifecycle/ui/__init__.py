"""The model-run pages of the Airflow UI: an Airflow plugin (`plugins/model_runs_plugin.py`).

`records` gathers what a run recorded, `pages` renders it (pure) with the charts the evaluation
report draws too (`sagemaker_lifecycle.charts`), `reader` reads XCom, S3, SageMaker and
CloudWatch (read-only; the jobs' trials and curves through `sagemaker_lifecycle.job_metrics`),
`app` serves it under Airflow's auth, `links` are the tasks' extra links to it.
"""
