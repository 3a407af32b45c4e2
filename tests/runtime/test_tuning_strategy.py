"""The tuning job's pure logic: ranges, plans, strategies, early stopping, warm-start history."""

from __future__ import annotations

import copy
import math

import pytest

from local_sagemaker.tuning.early_stopping import MedianStoppingRule, running_average
from local_sagemaker.tuning.plan import TuningPlan
from local_sagemaker.tuning.search_space import InvalidTuningConfig, SearchSpace
from local_sagemaker.tuning.strategy import Decision, TuningStrategy

RANGES = {
    "IntegerParameterRanges": [{"Name": "batch-size", "MinValue": "8", "MaxValue": "64"}],
    "ContinuousParameterRanges": [
        {"Name": "lr", "MinValue": "0.0001", "MaxValue": "0.1", "ScalingType": "Logarithmic"},
        {"Name": "momentum", "MinValue": "0.9", "MaxValue": "0.999",
         "ScalingType": "ReverseLogarithmic"},
    ],
    "CategoricalParameterRanges": [
        {"Name": "optimizer", "Values": ['"adam"', '"sgd"', '"adamw"']}
    ],
}  # fmt: skip


def tuning_request(**config_changes) -> dict:
    """A CreateHyperParameterTuningJob request as the Airflow DAG sends it."""
    config = {
        "Strategy": "Random",
        "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "valid_acc"},
        "ResourceLimits": {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 2},
        "ParameterRanges": copy.deepcopy(RANGES),
        "RandomSeed": 7,
    }
    config.update(config_changes)
    return {
        "HyperParameterTuningJobName": "tune-1",
        "HyperParameterTuningJobConfig": config,
        "TrainingJobDefinition": {
            "StaticHyperParameters": {"epochs": "4"},
            "AlgorithmSpecification": {
                "TrainingImage": "pytorch-training:2.0",
                "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": "valid_acc", "Regex": "valid_acc=([0-9.]+)"}],
            },
            "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
            "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        },
    }


def strategy_for(**config_changes) -> TuningStrategy:
    return TuningStrategy(TuningPlan.from_request(tuning_request(**config_changes)))


def categorical_request(**config_changes) -> dict:
    ranges = {
        "CategoricalParameterRanges": [
            {"Name": "optimizer", "Values": ["adam", "sgd"]},
            {"Name": "backbone", "Values": ["simplecnn", "resnet18", "resnet34"]},
        ]
    }
    return tuning_request(ParameterRanges=ranges, **config_changes)


# --- search space -------------------------------------------------------------------------


def test_suggested_hyperparameters_are_strings_inside_their_ranges():
    strategy = strategy_for()
    for _ in range(20):
        trial, hyperparameters = strategy.suggest()
        assert set(hyperparameters) == {"batch-size", "lr", "momentum", "optimizer"}
        assert all(isinstance(value, str) for value in hyperparameters.values())
        assert 8 <= int(hyperparameters["batch-size"]) <= 64
        assert 0.0001 <= float(hyperparameters["lr"]) <= 0.1
        assert 0.9 <= float(hyperparameters["momentum"]) <= 0.999
        assert hyperparameters["optimizer"] in {'"adam"', '"sgd"', '"adamw"'}
        strategy.finish(trial, 0.5, stopped_early=False)


def test_logarithmic_scaling_spreads_values_over_orders_of_magnitude():
    strategy = strategy_for()
    decades = set()
    for _ in range(60):
        trial, hyperparameters = strategy.suggest()
        decades.add(math.floor(math.log10(float(hyperparameters["lr"]))))
        strategy.finish(trial, 0.5, stopped_early=False)
    # Linear sampling of [1e-4, 0.1] would put ~99% of draws in the top decade.
    assert decades == {-4, -3, -2}


def test_reverse_logarithmic_scaling_concentrates_values_near_one():
    strategy = strategy_for()
    momenta = []
    for _ in range(60):
        trial, hyperparameters = strategy.suggest()
        momenta.append(float(hyperparameters["momentum"]))
        strategy.finish(trial, 0.5, stopped_early=False)
    above_099 = sum(value > 0.99 for value in momenta)
    # Linear sampling would put ~9% above 0.99; 1-x log-uniform puts ~1/2 there.
    assert above_099 >= len(momenta) // 4


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        ({"IntegerParameterRanges": [{"Name": "e", "MinValue": "5", "MaxValue": "2"}]},
         "greater than its MaxValue"),
        ({"IntegerParameterRanges": [{"Name": "e", "MinValue": "a", "MaxValue": "2"}]},
         "not a valid integer"),
        ({"IntegerParameterRanges": [{"Name": "e", "MinValue": "1", "MaxValue": "2",
                                      "ScalingType": "ReverseLogarithmic"}]},
         "only supported for continuous"),
        ({"ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0", "MaxValue": "1",
                                         "ScalingType": "Logarithmic"}]},
         "requires MinValue greater than 0"),
        ({"ContinuousParameterRanges": [{"Name": "m", "MinValue": "0.5", "MaxValue": "1.0",
                                         "ScalingType": "ReverseLogarithmic"}]},
         "MaxValue < 1"),
        ({"CategoricalParameterRanges": [{"Name": "o", "Values": ["a", "a"]}]},
         "duplicate Values"),
        ({"CategoricalParameterRanges": [{"Name": "o", "Values": ["a"]}],
          "IntegerParameterRanges": [{"Name": "o", "MinValue": "1", "MaxValue": "2"}]},
         "more than one parameter range"),
        ({}, "at least one hyperparameter"),
        ({"ContinuousParameterRanges": [{"Name": "epochs", "MinValue": "1", "MaxValue": "2"}]},
         "both static and tunable"),
    ],
)  # fmt: skip
def test_invalid_ranges_are_rejected_with_the_reason(ranges, message):
    with pytest.raises(InvalidTuningConfig, match=message):
        TuningPlan.from_request(tuning_request(ParameterRanges=ranges))


def test_too_many_hyperparameters_in_total_are_rejected():
    ranges = {"ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0", "MaxValue": "1"}]}
    static = {f"static-{index}": "1" for index in range(99)}
    with pytest.raises(InvalidTuningConfig, match="101 hyperparameters"):
        SearchSpace.from_request(ranges, static)


def test_hyperparameters_map_back_to_trial_parameters_only_inside_the_space():
    space = SearchSpace.from_request(RANGES)
    inside = {"batch-size": "16", "lr": "0.01", "momentum": "0.99", "optimizer": '"sgd"'}
    params = space.params_from_hyperparameters(inside)
    assert space.hyperparameters(params) == inside
    assert space.params_from_hyperparameters({**inside, "lr": "0.5"}) is None
    assert space.params_from_hyperparameters({**inside, "optimizer": "rmsprop"}) is None
    assert space.params_from_hyperparameters({"lr": "0.01"}) is None


# --- plans ------------------------------------------------------------------------------------


def test_grid_rejects_non_categorical_ranges():
    with pytest.raises(InvalidTuningConfig, match="only categorical"):
        TuningPlan.from_request(tuning_request(Strategy="Grid"))


def test_grid_budget_must_equal_the_number_of_combinations():
    limits = {"MaxNumberOfTrainingJobs": 5, "MaxParallelTrainingJobs": 2}
    with pytest.raises(InvalidTuningConfig, match=r"\(5\) must equal .* combinations \(6\)"):
        TuningPlan.from_request(categorical_request(Strategy="Grid", ResourceLimits=limits))
    plan = TuningPlan.from_request(
        categorical_request(Strategy="Grid", ResourceLimits={"MaxParallelTrainingJobs": 2})
    )
    assert plan.max_training_jobs == 6


def test_grid_visits_every_combination_once_even_with_trials_in_flight():
    plan = TuningPlan.from_request(categorical_request(Strategy="Grid"))
    strategy = TuningStrategy(plan)
    first, hyperparameters_first = strategy.suggest()
    second, hyperparameters_second = strategy.suggest()  # both running at once
    seen = [hyperparameters_first, hyperparameters_second]
    strategy.finish(first, 0.1, stopped_early=False)
    strategy.finish(second, 0.2, stopped_early=False)
    for _ in range(plan.max_training_jobs - 2):
        trial, hyperparameters = strategy.suggest()
        seen.append(hyperparameters)
        strategy.finish(trial, 0.3, stopped_early=False)
    combinations = {(h["optimizer"], h["backbone"]) for h in seen}
    assert len(combinations) == 6


def test_autotune_is_refused_by_name():
    request = tuning_request()
    request["Autotune"] = {"Mode": "Enabled"}
    with pytest.raises(InvalidTuningConfig, match="Autotune is not supported"):
        TuningPlan.from_request(request)


def test_random_budget_is_required():
    limits = {"MaxParallelTrainingJobs": 2}
    with pytest.raises(InvalidTuningConfig, match="MaxNumberOfTrainingJobs is required"):
        TuningPlan.from_request(tuning_request(ResourceLimits=limits))


def test_objective_must_be_a_defined_metric():
    objective = {"Type": "Minimize", "MetricName": "valid_loss"}
    with pytest.raises(InvalidTuningConfig, match="'valid_loss' is not among"):
        TuningPlan.from_request(tuning_request(HyperParameterTuningJobObjective=objective))


def test_hyperband_needs_early_stopping_off():
    with pytest.raises(InvalidTuningConfig, match="must be Off when the strategy is Hyperband"):
        TuningPlan.from_request(
            tuning_request(Strategy="Hyperband", TrainingJobEarlyStoppingType="Auto")
        )


def test_hyperband_max_resource_is_inferred_from_static_epochs():
    plan = TuningPlan.from_request(tuning_request(Strategy="Hyperband"))
    assert (plan.hyperband.min_resource, plan.hyperband.max_resource) == (1, 4)
    request = tuning_request(Strategy="Hyperband")
    del request["TrainingJobDefinition"]["StaticHyperParameters"]["epochs"]
    with pytest.raises(InvalidTuningConfig, match=r"needs HyperbandStrategyConfig\.MaxResource"):
        TuningPlan.from_request(request)


def test_hyperband_config_only_with_hyperband():
    config = {"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 3}}
    with pytest.raises(InvalidTuningConfig, match="only valid with the Hyperband strategy"):
        TuningPlan.from_request(tuning_request(StrategyConfig=config))


def test_several_training_job_definitions_are_refused_by_name():
    request = tuning_request()
    definition = request.pop("TrainingJobDefinition")
    request["TrainingJobDefinitions"] = [definition, definition]
    with pytest.raises(InvalidTuningConfig, match="TrainingJobDefinitions has 2"):
        TuningPlan.from_request(request)


# --- early stopping -----------------------------------------------------------------------------


def test_running_average_needs_the_series_to_reach_the_step():
    assert running_average({1: 0.2, 2: 0.4, 3: 0.9}, 2) == pytest.approx(0.3)
    assert running_average({1: 0.2}, 2) is None


def finished_trial(strategy: TuningStrategy, curve: list[float]) -> None:
    trial, _ = strategy.suggest()
    for epoch, value in enumerate(curve, start=1):
        assert strategy.observe(trial, epoch, value) is Decision.CONTINUE
    strategy.finish(trial, curve[-1], stopped_early=False)


def test_median_rule_compares_with_running_averages_not_values_at_the_epoch():
    strategy = strategy_for(TrainingJobEarlyStoppingType="Auto")
    # Running averages at epoch 2: 0.35, 0.45, 0.55 (median 0.45); values at epoch 2 are
    # 0.6, 0.7, 0.8, so a rule using values at the epoch would stop a 0.5 job, this one must not.
    for curve in ([0.1, 0.6], [0.2, 0.7], [0.3, 0.8]):
        finished_trial(strategy, curve)
    trial, _ = strategy.suggest()
    assert strategy.observe(trial, 1, 0.25) is Decision.CONTINUE  # median at epoch 1 is 0.2
    assert strategy.observe(trial, 2, 0.5) is Decision.CONTINUE
    laggard, _ = strategy.suggest()
    assert strategy.observe(laggard, 1, 0.15) is Decision.STOP_EARLY


def test_median_rule_waits_for_enough_finished_jobs():
    strategy = strategy_for(TrainingJobEarlyStoppingType="Auto")
    for curve in ([0.8, 0.9], [0.8, 0.9]):
        finished_trial(strategy, curve)
    trial, _ = strategy.suggest()
    assert strategy.observe(trial, 1, 0.0) is Decision.CONTINUE


def test_median_rule_minimising_stops_higher_values():
    rule = MedianStoppingRule(min_previous_jobs=1)
    objective = {"Type": "Minimize", "MetricName": "valid_acc"}
    strategy = strategy_for(
        HyperParameterTuningJobObjective=objective, TrainingJobEarlyStoppingType="Auto"
    )
    strategy.study.pruner = rule
    finished_trial(strategy, [1.0, 0.8])
    trial, _ = strategy.suggest()
    assert strategy.observe(trial, 1, 0.9) is Decision.CONTINUE
    assert strategy.observe(trial, 2, 0.95) is Decision.STOP_EARLY  # average 0.9 to beat


def test_without_early_stopping_nothing_is_stopped():
    strategy = strategy_for()
    for _ in range(4):
        finished_trial(strategy, [0.9, 0.95])
    trial, _ = strategy.suggest()
    assert strategy.observe(trial, 1, 0.0) is Decision.CONTINUE


def test_hyperband_stops_a_job_at_max_resource():
    config = {"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 3}}
    strategy = strategy_for(Strategy="Hyperband", StrategyConfig=config)
    trial, _ = strategy.suggest()
    decisions = [strategy.observe(trial, epoch, 0.5) for epoch in (1, 2, 3)]
    assert decisions[-1] is Decision.RESOURCE_REACHED


def test_hyperband_stops_underperformers_at_a_rung():
    config = {"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 9}}
    limits = {"MaxNumberOfTrainingJobs": 40, "MaxParallelTrainingJobs": 2}
    strategy = strategy_for(Strategy="Hyperband", StrategyConfig=config, ResourceLimits=limits)
    stopped = 0
    for index in range(30):
        trial, _ = strategy.suggest()
        quality = (index * 7919 % 30) / 30  # a spread of job qualities in a fixed order
        decision, epoch = Decision.CONTINUE, 0
        while decision is Decision.CONTINUE:
            epoch += 1
            decision = strategy.observe(trial, epoch, quality * epoch / 9)
        stopped += decision is Decision.STOP_EARLY
        strategy.finish(trial, quality * epoch / 9, stopped_early=decision is Decision.STOP_EARLY)
    assert 0 < stopped < 30


# --- Bayesian vs random ---------------------------------------------------------------------------


def objective_of(hyperparameters: dict[str, str]) -> float:
    """A smooth, known objective peaking at lr=0.01, batch-size=32, optimizer adam."""
    lr_term = (math.log10(float(hyperparameters["lr"])) + 2) ** 2
    batch_term = ((int(hyperparameters["batch-size"]) - 32) / 32) ** 2
    return 1.0 - 0.3 * lr_term - 0.2 * batch_term - 0.1 * (hyperparameters["optimizer"] != '"adam"')


def best_after(strategy_name: str, seed: int, budget: int = 30) -> float:
    limits = {"MaxNumberOfTrainingJobs": budget, "MaxParallelTrainingJobs": 1}
    strategy = strategy_for(Strategy=strategy_name, RandomSeed=seed, ResourceLimits=limits)
    best = -math.inf
    for _ in range(budget):
        trial, hyperparameters = strategy.suggest()
        value = objective_of(hyperparameters)
        strategy.finish(trial, value, stopped_early=False)
        best = max(best, value)
    return best


def test_bayesian_beats_random_on_a_known_objective_on_average():
    seeds = range(5)
    bayesian = sum(best_after("Bayesian", seed) for seed in seeds) / len(seeds)
    random = sum(best_after("Random", seed) for seed in seeds) / len(seeds)
    assert bayesian > random


def test_same_seed_same_suggestions_for_random():
    def draws() -> list[dict[str, str]]:
        strategy = strategy_for(RandomSeed=11)
        return [strategy.suggest()[1] for _ in range(5)]

    assert draws() == draws()


# --- warm start ---------------------------------------------------------------------------------


def test_warm_start_history_counts_as_finished_trials():
    strategy = strategy_for(Strategy="Bayesian")
    inside = {"batch-size": "32", "lr": "0.01", "momentum": "0.95", "optimizer": '"adam"'}
    assert strategy.add_history(inside, [0.5, 0.9])
    assert not strategy.add_history({**inside, "lr": "5"}, [0.99])
    assert not strategy.add_history(inside, [])
    assert strategy.study.best_value == 0.9
    assert strategy.study.best_trial.intermediate_values == {1: 0.5, 2: 0.9}


def test_warm_start_jobs_outside_the_space_still_count_for_the_median_rule():
    strategy = strategy_for(TrainingJobEarlyStoppingType="Auto")
    elsewhere = {"batch-size": "32", "lr": "5", "momentum": "0.95", "optimizer": '"adam"'}
    for _ in range(3):
        assert not strategy.add_history(elsewhere, [0.8, 0.9])
    assert strategy.study.trials == []
    trial, _ = strategy.suggest()
    assert strategy.observe(trial, 1, 0.1) is Decision.STOP_EARLY
