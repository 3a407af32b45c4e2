"""The dog_breed_classifier pipeline's Airflow code, laid out like an Amazon provider package.

Modules: `settings` (pipeline configuration), `images` (container image URIs, derived with
sagemaker-core), `assets` (the Airflow assets that schedule a run and that it announces),
`naming` (SageMaker resource names), `request_builders` and `rule_jobs` (API requests),
`dataset_source` and `staging` (dataset fetch, verification, snapshot, upload), `hooks` (every
SageMaker call and wait), `operators` (thin operators over the Amazon provider's), `gate` (the
rule-outcome decision), `triggers`/`sensors` (the deferrable gate), `evaluation` (batch-transform
scoring) and `tasks` (the TaskFlow steps).
"""
