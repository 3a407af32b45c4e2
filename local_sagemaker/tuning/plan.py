"""The validated shape of a CreateHyperParameterTuningJob request: what to tune, how, how much.

`TuningPlan.from_request(request)` applies the checks SageMaker makes on the tuning
configuration itself (objective, strategy, ranges, limits, Hyperband resources) and raises
`InvalidTuningConfig` with the reason; request-shape checks (types, enums, lengths) happen
earlier, in the runtime's botocore-model validation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from local_sagemaker.tuning.search_space import InvalidTuningConfig, SearchSpace

# Static hyperparameters from which SageMaker infers Hyperband's MaxResource.
EPOCH_HYPERPARAMETERS = ("epochs", "numepochs", "n-epochs", "n_epochs", "num_epochs")


@dataclass(frozen=True)
class HyperbandResources:
    """Hyperband's epoch bounds: never stop before `min_resource`, stop at `max_resource`."""

    min_resource: int
    max_resource: int


@dataclass(frozen=True)
class TuningPlan:
    """Everything the tuning loop needs to know about one tuning job's configuration."""

    objective_metric: str
    maximize: bool
    strategy: str  # Bayesian | Random | Grid | Hyperband
    search_space: SearchSpace
    max_training_jobs: int
    max_parallel_training_jobs: int
    early_stopping: bool  # TrainingJobEarlyStoppingType == "Auto"
    hyperband: HyperbandResources | None
    random_seed: int | None
    max_runtime_seconds: int | None
    target_objective_value: float | None
    max_jobs_not_improving: int | None

    @classmethod
    def from_request(cls, request: dict) -> TuningPlan:
        if request.get("Autotune"):
            raise InvalidTuningConfig(
                "Autotune is not supported by the local SageMaker runtime; give the strategy, "
                "parameter ranges and resource limits explicitly."
            )
        config = request["HyperParameterTuningJobConfig"]
        definition = training_job_definition(request)
        objective = config.get("HyperParameterTuningJobObjective") or definition.get(
            "TuningObjective"
        )
        if not objective:
            raise InvalidTuningConfig(
                "The tuning job needs an objective: set "
                "HyperParameterTuningJobConfig.HyperParameterTuningJobObjective."
            )
        _check_objective_is_defined(objective["MetricName"], definition)
        static = definition.get("StaticHyperParameters") or {}
        search_space = SearchSpace.from_request(
            config.get("ParameterRanges") or definition.get("HyperParameterRanges"), static
        )
        strategy = config["Strategy"]
        limits = config["ResourceLimits"]
        criteria = config.get("TuningJobCompletionCriteria") or {}
        return cls(
            objective_metric=objective["MetricName"],
            maximize=objective["Type"] == "Maximize",
            strategy=strategy,
            search_space=search_space,
            max_training_jobs=_max_training_jobs(strategy, search_space, limits),
            max_parallel_training_jobs=limits["MaxParallelTrainingJobs"],
            early_stopping=_early_stopping(strategy, config),
            hyperband=_hyperband_resources(strategy, config, static),
            random_seed=config.get("RandomSeed"),
            max_runtime_seconds=limits.get("MaxRuntimeInSeconds"),
            target_objective_value=criteria.get("TargetObjectiveMetricValue"),
            max_jobs_not_improving=(criteria.get("BestObjectiveNotImproving") or {}).get(
                "MaxNumberOfTrainingJobsNotImproving"
            ),
        )

    def is_better(self, value: float, than: float) -> bool:
        """Whether objective `value` beats `than` in this plan's direction."""
        return value > than if self.maximize else value < than


def training_job_definition(request: dict) -> dict:
    """The request's one training job definition (the local runtime tunes a single one)."""
    single = request.get("TrainingJobDefinition")
    several = request.get("TrainingJobDefinitions")
    if single and several:
        raise InvalidTuningConfig(
            "Specify either TrainingJobDefinition or TrainingJobDefinitions, not both."
        )
    if several:
        if len(several) > 1:
            raise InvalidTuningConfig(
                "The local SageMaker runtime tunes one training job definition; "
                f"TrainingJobDefinitions has {len(several)}."
            )
        return several[0]
    if not single:
        raise InvalidTuningConfig("A TrainingJobDefinition is required.")
    return single


def _check_objective_is_defined(metric_name: str, definition: dict) -> None:
    algorithm = definition["AlgorithmSpecification"]
    defined = [metric["Name"] for metric in algorithm.get("MetricDefinitions") or []]
    if metric_name not in defined:
        raise InvalidTuningConfig(
            f"The objective metric '{metric_name}' is not among the training job definition's "
            f"MetricDefinitions {defined}; the tuning job could not read it from the logs."
        )


def _max_training_jobs(strategy: str, search_space: SearchSpace, limits: dict) -> int:
    requested = limits.get("MaxNumberOfTrainingJobs")
    if strategy == "Grid":
        combinations = search_space.grid_size()
        if requested is not None and requested != combinations:
            raise InvalidTuningConfig(
                f"For the Grid strategy, MaxNumberOfTrainingJobs ({requested}) must equal the "
                f"number of distinct hyperparameter combinations ({combinations}), or be omitted."
            )
        return combinations
    if requested is None:
        raise InvalidTuningConfig(
            f"ResourceLimits.MaxNumberOfTrainingJobs is required for the {strategy} strategy."
        )
    return requested


def _early_stopping(strategy: str, config: dict) -> bool:
    early_stopping = config.get("TrainingJobEarlyStoppingType", "Off")
    if strategy == "Hyperband" and early_stopping != "Off":
        raise InvalidTuningConfig(
            "TrainingJobEarlyStoppingType must be Off when the strategy is Hyperband: "
            "Hyperband has its own early stopping."
        )
    return early_stopping == "Auto"


def _hyperband_resources(
    strategy: str, config: dict, static: dict[str, str]
) -> HyperbandResources | None:
    settings = (config.get("StrategyConfig") or {}).get("HyperbandStrategyConfig")
    if strategy != "Hyperband":
        if settings is not None:
            raise InvalidTuningConfig(
                "HyperbandStrategyConfig is only valid with the Hyperband strategy, "
                f"not {strategy}."
            )
        return None
    settings = settings or {}
    min_resource = settings.get("MinResource", 1)
    max_resource = settings.get("MaxResource") or _epochs_from(static)
    if min_resource > max_resource:
        raise InvalidTuningConfig(
            f"Hyperband MinResource ({min_resource}) is greater than MaxResource ({max_resource})."
        )
    return HyperbandResources(min_resource, max_resource)


def _epochs_from(static: dict[str, str]) -> int:
    for name in EPOCH_HYPERPARAMETERS:
        if name in static:
            try:
                return int(json.loads(static[name]))
            except (TypeError, ValueError):
                raise InvalidTuningConfig(
                    f"Hyperband infers MaxResource from the static hyperparameter '{name}', "
                    f"but its value '{static[name]}' is not an integer."
                ) from None
    raise InvalidTuningConfig(
        "Hyperband needs HyperbandStrategyConfig.MaxResource, or a static hyperparameter "
        f"named one of {list(EPOCH_HYPERPARAMETERS)} to infer it from."
    )
