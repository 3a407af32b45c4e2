"""A local, Docker-free SageMaker runtime: S3, SageMaker, SageMaker Runtime and CloudWatch Logs on
one loopback URL, with training jobs that really run as child processes.

Start it with ``python -m local_sagemaker serve``; see :mod:`local_sagemaker.server` for the routes.
"""
