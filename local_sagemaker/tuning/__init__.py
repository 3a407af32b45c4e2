"""Hyperparameter tuning logic that needs no server: search spaces, strategies, early stopping.

`local_sagemaker.sagemaker.tuning` wires it to the runtime's training jobs; everything here is
pure (Optuna plus the request dictionaries SageMaker's API defines), so it is unit-tested alone.
"""
