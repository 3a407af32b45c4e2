"""SageMakerBackend: one object serving every SageMaker operation, composed of one mixin class per
resource family.

Contract for family mixins (``local_sagemaker/sagemaker/<family>.py`` defining ``<Family>Mixin``):

- Shared services are attributes: ``self.config`` (:class:`~local_sagemaker.config.RuntimeConfig`),
  ``self.store`` (:class:`~local_sagemaker.store.RecordStore`), ``self.s3``
  (:class:`~local_sagemaker.s3.S3Service`), ``self.logs``
  (:class:`~local_sagemaker.logs.LogService`), ``self.executor``
  (:class:`~local_sagemaker.executor.Executor`) and ``self.training_observers`` (a list of
  :class:`~local_sagemaker.sagemaker.training.TrainingObserver`).
- Each API operation is a method named after it in snake_case (``CreateModel`` ->
  ``create_model(self, request: dict) -> dict``). The request has already been validated
  against botocore's input shape; raise :mod:`local_sagemaker.errors` exceptions for failures.
- Optional ``setup(self)``: called once at start-up, after every service exists, in the order of
  :data:`FAMILIES` (training first, so observers can register and records can be recovered).
- Optional ``shutdown(self)``: called when the runtime stops (end child processes there).
- Runtime (not SageMaker) calls the server routes to the backend: hosting defines
  ``invoke_endpoint(self, endpoint_name: str, request: werkzeug.Request) -> werkzeug.Response``.

A family whose module is missing is left out (and logged), so the runtime can start while families
are still being written; an import error inside an existing module is not hidden.
"""

import importlib
import logging

log = logging.getLogger(__name__)

# (module under local_sagemaker.sagemaker, mixin class name), in set-up order.
FAMILIES = (
    ("training", "TrainingMixin"),
    ("hosting", "HostingMixin"),
    ("transform", "TransformMixin"),
    ("tuning", "TuningMixin"),
    ("rules", "RulesMixin"),
    ("processing", "ProcessingMixin"),
    ("tags", "TagsMixin"),
)


def available_family_mixins() -> list[type]:
    """The mixin classes of the families whose modules exist, in :data:`FAMILIES` order."""
    mixins = []
    for module_name, class_name in FAMILIES:
        qualified = f"{__package__}.{module_name}"
        try:
            module = importlib.import_module(qualified)
        except ModuleNotFoundError as error:
            if error.name != qualified:
                raise
            log.warning(
                "SageMaker family %r is not installed: its operations are unknown", module_name
            )
            continue
        mixins.append(getattr(module, class_name))
    return mixins


class BackendServices:
    """The shared services every family mixin relies on (see the module docstring)."""

    def __init__(self, config, store, s3, logs, executor):
        self.config = config
        self.store = store
        self.s3 = s3
        self.logs = logs
        self.executor = executor
        self.training_observers = []


def build_backend(config, store, s3, logs, executor, mixins=None):
    """A SageMakerBackend over the given services, set up and ready to serve.

    ``mixins`` defaults to :func:`available_family_mixins`; tests may pass a subset.
    """
    families = tuple(available_family_mixins() if mixins is None else mixins)
    backend_class = type("SageMakerBackend", (*families, BackendServices), {"families": families})
    backend = backend_class(config, store, s3, logs, executor)
    for family in families:
        if "setup" in vars(family):
            family.setup(backend)
    return backend


def shutdown_backend(backend) -> None:
    """Let every family end what it started (child processes), newest family first."""
    for family in reversed(backend.families):
        if "shutdown" in vars(family):
            family.shutdown(backend)
