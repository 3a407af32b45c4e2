"""Thin operators over the Amazon provider's SageMaker operators (see `jobs` and `deployment`)."""

from sagemaker_lifecycle.operators.deployment import (
    EndpointOperator,
    ModelOperator,
    PromotionOperator,
)
from sagemaker_lifecycle.operators.jobs import (
    ExplanationJobOperator,
    RuleProcessingJobsOperator,
    TrainingJobOperator,
    TransformJobOperator,
    TuningJobOperator,
)

__all__ = [
    "EndpointOperator",
    "ExplanationJobOperator",
    "ModelOperator",
    "PromotionOperator",
    "RuleProcessingJobsOperator",
    "TrainingJobOperator",
    "TransformJobOperator",
    "TuningJobOperator",
]
