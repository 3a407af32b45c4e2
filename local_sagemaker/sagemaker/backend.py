"""SageMakerBackend: one object per resource family, dependencies passed in, and the dispatch
table from each SageMaker operation to the family method that serves it.

- A family is built from :class:`Services` (config, store, s3, logs, executor) and the other
  families it needs: hosting is given the model registry (models made from model packages),
  transform jobs are given hosting (models), tuning and rules are given
  training (trials, observers). Job families share their life cycle through
  :class:`~local_sagemaker.sagemaker.jobs.JobFamily`.
- Each operation's method takes the request (already validated against botocore's input shape)
  and returns the response dict; failures raise :mod:`local_sagemaker.errors` exceptions.
- :meth:`SageMakerBackend.start` lets each family recover what an earlier runtime left, in
  :attr:`SageMakerBackend.families` order (training first: the families following it then see
  its trials already failed); :meth:`SageMakerBackend.shutdown` ends what they started, in
  reverse order.
- Not SageMaker API operations: the runtime's HTTP server routes InvokeEndpoint to
  ``backend.hosting.invoke_endpoint(endpoint_name, werkzeug_request)``.
"""

from dataclasses import dataclass

from local_sagemaker.sagemaker.hosting import Hosting
from local_sagemaker.sagemaker.model_packages import ModelPackages
from local_sagemaker.sagemaker.processing import ProcessingJobs
from local_sagemaker.sagemaker.rules import RuleEvaluations
from local_sagemaker.sagemaker.tags import Tags
from local_sagemaker.sagemaker.training import TrainingJobs
from local_sagemaker.sagemaker.transform import TransformJobs
from local_sagemaker.sagemaker.tuning import TuningJobs


@dataclass(frozen=True)
class Services:
    """What families are built from (see the module docstring)."""

    config: object  # local_sagemaker.config.RuntimeConfig
    store: object  # local_sagemaker.store.RecordStore
    s3: object  # local_sagemaker.s3.S3Service
    logs: object  # local_sagemaker.logs.LogService
    executor: object  # local_sagemaker.executor.Executor


class SageMakerBackend:
    """Every SageMaker family of one runtime, and :attr:`operations`: operation -> method."""

    def __init__(self, services: Services):
        self.training = TrainingJobs(services)
        self.processing = ProcessingJobs(services)
        self.model_packages = ModelPackages(services)
        self.hosting = Hosting(services, self.model_packages)
        self.transform = TransformJobs(services, self.hosting)
        self.tuning = TuningJobs(services, self.training)
        self.rules = RuleEvaluations(services, self.training)
        self.families = {
            "training": self.training,
            "model_packages": self.model_packages,
            "hosting": self.hosting,
            "transform": self.transform,
            "tuning": self.tuning,
            "rules": self.rules,
            "processing": self.processing,
        }
        self.operations = {
            # training jobs
            "CreateTrainingJob": self.training.create_training_job,
            "DescribeTrainingJob": self.training.describe_training_job,
            "ListTrainingJobs": self.training.list_training_jobs,
            "StopTrainingJob": self.training.stop_training_job,
            # processing jobs
            "CreateProcessingJob": self.processing.create_processing_job,
            "DescribeProcessingJob": self.processing.describe_processing_job,
            "ListProcessingJobs": self.processing.list_processing_jobs,
            "StopProcessingJob": self.processing.stop_processing_job,
            # models, endpoint configs, endpoints
            "CreateModel": self.hosting.create_model,
            "DescribeModel": self.hosting.describe_model,
            "DeleteModel": self.hosting.delete_model,
            "ListModels": self.hosting.list_models,
            "CreateEndpointConfig": self.hosting.create_endpoint_config,
            "DescribeEndpointConfig": self.hosting.describe_endpoint_config,
            "DeleteEndpointConfig": self.hosting.delete_endpoint_config,
            "ListEndpointConfigs": self.hosting.list_endpoint_configs,
            "CreateEndpoint": self.hosting.create_endpoint,
            "DescribeEndpoint": self.hosting.describe_endpoint,
            "UpdateEndpoint": self.hosting.update_endpoint,
            "UpdateEndpointWeightsAndCapacities": (
                self.hosting.update_endpoint_weights_and_capacities
            ),
            "DeleteEndpoint": self.hosting.delete_endpoint,
            "ListEndpoints": self.hosting.list_endpoints,
            # model registry: model package groups and versions
            "CreateModelPackageGroup": self.model_packages.create_model_package_group,
            "DescribeModelPackageGroup": self.model_packages.describe_model_package_group,
            "ListModelPackageGroups": self.model_packages.list_model_package_groups,
            "DeleteModelPackageGroup": self.model_packages.delete_model_package_group,
            "CreateModelPackage": self.model_packages.create_model_package,
            "DescribeModelPackage": self.model_packages.describe_model_package,
            "ListModelPackages": self.model_packages.list_model_packages,
            "UpdateModelPackage": self.model_packages.update_model_package,
            "DeleteModelPackage": self.model_packages.delete_model_package,
            # transform jobs
            "CreateTransformJob": self.transform.create_transform_job,
            "DescribeTransformJob": self.transform.describe_transform_job,
            "ListTransformJobs": self.transform.list_transform_jobs,
            "StopTransformJob": self.transform.stop_transform_job,
            # hyperparameter tuning jobs
            "CreateHyperParameterTuningJob": self.tuning.create_hyper_parameter_tuning_job,
            "DescribeHyperParameterTuningJob": self.tuning.describe_hyper_parameter_tuning_job,
            "ListHyperParameterTuningJobs": self.tuning.list_hyper_parameter_tuning_jobs,
            "ListTrainingJobsForHyperParameterTuningJob": (
                self.tuning.list_training_jobs_for_hyper_parameter_tuning_job
            ),
            "StopHyperParameterTuningJob": self.tuning.stop_hyper_parameter_tuning_job,
            "DeleteHyperParameterTuningJob": self.tuning.delete_hyper_parameter_tuning_job,
        }
        # Tags find the resources they tag through the List* operations above.
        self.tags = Tags(services, self.operations)
        self.families["tags"] = self.tags
        self.operations.update({
            "AddTags": self.tags.add_tags,
            "ListTags": self.tags.list_tags,
            "DeleteTags": self.tags.delete_tags,
        })  # fmt: skip

    def start(self) -> None:
        """Let every family recover what an earlier runtime left (see the module docstring)."""
        for family in self.families.values():
            family.recover()

    def shutdown(self) -> None:
        """Let every family end what it started (child processes), last family first."""
        for family in reversed(self.families.values()):
            family.shutdown()


def build_backend(config, store, s3, logs, executor) -> SageMakerBackend:
    """A SageMakerBackend over the given services, recovered and ready to serve."""
    backend = SageMakerBackend(Services(config, store, s3, logs, executor))
    backend.start()
    return backend
