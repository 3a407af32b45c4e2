"""Each Debugger tensor rule fires on a training run that has its problem, and stays quiet on a
healthy run. The runs are real: tiny torch models trained with an smdebug hook (conftest)."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
from rules.outcome import ERROR, ISSUES_FOUND, NO_ISSUES_FOUND
from rules.runner import TENSOR_RULE_NAMES, evaluate
from rules.tensor_rules import GRADIENTS_COLLECTION
from rules.tensor_rules import TENSOR_RULES as TENSOR_RULES_BY_NAME
from smdebug.exceptions import TensorUnavailableForStep
from smdebug.trials import create_trial
from smdebug_runs import Scenario, record_training

TENSOR_RULES = [
    "VanishingGradient",
    "LossNotDecreasing",
    "Overfit",
    "Overtraining",
    "PoorWeightInitialization",
]

# One scenario per problem. Defaults of Scenario are tuned to a healthy, still-learning run.
HEALTHY = Scenario(
    train_samples=192, valid_samples=48, batch_size=16, epochs=2, spread=3.0, save_interval=2
)
DIVERGING_LR = Scenario(lr=5.0, optimizer="sgd")
EXPLODING_LR = Scenario(lr=1e4, optimizer="sgd", epochs=1)
HEAD_ONLY_PAST_CONVERGENCE = Scenario(
    freeze_body=True, epochs=15, lr=0.05, weight_decay=0.01, spread=0.5
)
TINY_INIT = Scenario(init_scale=1e-3, depth=4, epochs=1)
OVERFITTING_SPLIT = Scenario(random_train_labels=True, train_samples=16, hidden=64, epochs=25)
# Learning rate 0 and one full batch per step: the same loss at every step.
FROZEN_FULL_BATCH = Scenario(lr=0.0, train_samples=64, batch_size=64, epochs=12)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Records each scenario once per module; returns its debug-output directory."""
    recorded = {}

    def recorded_run(scenario: Scenario):
        key = repr(scenario)
        if key not in recorded:
            out = tmp_path_factory.mktemp("run") / "debug-output"
            recorded[key] = record_training(out, scenario)
        return recorded[key]

    return recorded_run


def evaluate_rule(rule, debug_output, tmp_path, **parameters):
    return evaluate(rule, parameters, debug_output, tmp_path / "profiler", tmp_path / "out")


@pytest.mark.parametrize("rule", TENSOR_RULES)
def test_healthy_run_raises_no_issue(rule, run, tmp_path):
    outcome = evaluate_rule(rule, run(HEALTHY), tmp_path)
    assert outcome.status == NO_ISSUES_FOUND, outcome.details
    assert "examined" in outcome.details


@pytest.mark.parametrize(
    ("rule", "scenario", "finding"),
    [
        ("LossNotDecreasing", DIVERGING_LR, "TRAIN loss rose by"),
        ("LossNotDecreasing", EXPLODING_LR, "TRAIN loss is nan at step 3: it diverged"),
        ("Overtraining", HEAD_ONLY_PAST_CONVERGENCE, "training loss has not improved"),
        ("VanishingGradient", TINY_INIT, "below the threshold 1e-07"),
        ("PoorWeightInitialization", TINY_INIT, "Activation-input variance differs"),
        ("Overfit", OVERFITTING_SPLIT, "the model is overfitting"),
    ],
)
def test_rule_fires_on_its_problem(rule, scenario, finding, run, tmp_path):
    outcome = evaluate_rule(rule, run(scenario), tmp_path)
    assert outcome.status == ISSUES_FOUND, outcome.details
    assert finding in outcome.details
    assert outcome.status_details.startswith(
        f"RuleEvaluationConditionMet: Evaluation of the rule {rule} at step {outcome.step} "
        "resulted in the condition being met\n"
    )
    written = json.loads((tmp_path / "out" / "result.json").read_text())
    assert written["status"] == ISSUES_FOUND
    assert written["status_details"] == outcome.status_details


def test_parameters_change_the_verdict(run, tmp_path):
    """A healthy run's gradients trip VanishingGradient once the threshold is absurdly high."""
    outcome = evaluate_rule("VanishingGradient", run(HEALTHY), tmp_path, threshold="1000")
    assert outcome.status == ISSUES_FOUND
    assert "below the threshold 1000" in outcome.details


@pytest.mark.parametrize(
    ("scenario", "status"), [(TINY_INIT, ISSUES_FOUND), (HEALTHY, NO_ISSUES_FOUND)]
)
def test_vanishing_gradient_reads_saved_abs_mean_reductions(scenario, status, run, tmp_path):
    """A job that saves gradients as their mean absolute value only gets the same verdict."""
    debug_output = run(dataclasses.replace(scenario, gradient_abs_mean_only=True))
    trial = create_trial(str(debug_output))
    gradient = trial.tensor(trial.tensor_names(collection=GRADIENTS_COLLECTION)[0])
    with pytest.raises(TensorUnavailableForStep):
        gradient.value(gradient.steps()[0])  # no full tensor was saved
    outcome = evaluate_rule("VanishingGradient", debug_output, tmp_path)
    assert outcome.status == status, outcome.details
    assert outcome.details == evaluate_rule("VanishingGradient", run(scenario), tmp_path).details


def test_poor_weight_initialization_meets_the_condition_when_the_loss_cannot_fall(run, tmp_path):
    outcome = evaluate_rule("PoorWeightInitialization", run(FROZEN_FULL_BATCH), tmp_path)
    assert outcome.status == ISSUES_FOUND, outcome.details
    assert "The training loss, as a mean over 5 steps, has not improved for 5" in outcome.details


def test_poor_weight_initialization_names_all_constant_activation_inputs(run, tmp_path):
    outcome = evaluate_rule("PoorWeightInitialization", run(Scenario(init_scale=0.0)), tmp_path)
    assert outcome.status == ISSUES_FOUND, outcome.details
    assert "The activation inputs of all 2 layers are constant (variance 0)" in outcome.details


def test_poor_weight_initialization_counts_training_steps_not_saved_ones(run, tmp_path):
    """Saved every 5 steps, the first 2 training steps hold one saved step (0) and the first 10
    hold two (0 and 5)."""
    debug_output = run(dataclasses.replace(DIVERGING_LR, save_interval=5))
    first_two = evaluate_rule("PoorWeightInitialization", debug_output, tmp_path, steps="2")
    assert first_two.status == NO_ISSUES_FOUND, first_two.details
    assert "examined 1 step(s)" in first_two.details
    first_ten = evaluate_rule("PoorWeightInitialization", debug_output, tmp_path)
    assert "examined 2 step(s)" in first_ten.details


def test_poor_weight_initialization_reads_the_variance_ratio_of_the_initial_weights(run, tmp_path):
    """A diverging run starts from good weights; by training step 5 its learning rate has made
    the activation inputs' variances differ by far more than `threshold` across layers. That is
    not the initial weights' doing, and the rule reads the ratio at the first step only."""
    debug_output = run(dataclasses.replace(DIVERGING_LR, save_interval=5))
    trial = create_trial(str(debug_output))
    step_5 = [
        float(np.var(trial.tensor(name).value(5).astype(np.float64)))
        for name in trial.tensor_names(regex=".*relu_input")
    ]
    assert max(step_5) / min(step_5) > 10.0  # the default threshold
    outcome = evaluate_rule("PoorWeightInitialization", debug_output, tmp_path)
    assert outcome.status == NO_ISSUES_FOUND, outcome.details


def test_loss_not_decreasing_compares_steps_num_steps_apart(run, tmp_path):
    outcome = evaluate_rule("LossNotDecreasing", run(DIVERGING_LR), tmp_path, num_steps="4")
    assert outcome.status == ISSUES_FOUND
    base_step, step = map(int, re.search(r"step (\d+) .* step (\d+)", outcome.details).groups())
    assert step - base_step >= 4


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"threshhold": "1"}, "does not accept parameter(s) threshhold; accepted parameters: "),
        ({"threshold": "abc"}, "parameter threshold='abc' is invalid"),
        ({"threshold": "-1"}, "parameter threshold='-1' must be > 0"),
    ],
)
def test_bad_parameters_end_in_error_naming_them(parameters, message, run, tmp_path):
    outcome = evaluate_rule("VanishingGradient", run(HEALTHY), tmp_path, **parameters)
    assert outcome.status == ERROR
    assert outcome.details.startswith("ClientError: Rule VanishingGradient")
    assert message in outcome.details


def test_unknown_rule_is_an_error_listing_the_built_in_rules(run, tmp_path):
    outcome = evaluate_rule("ExplodingTensor", run(HEALTHY), tmp_path)
    assert outcome.status == ERROR
    assert "Unknown rule_to_invoke 'ExplodingTensor'" in outcome.details
    assert "VanishingGradient" in outcome.details


def test_job_without_the_collection_a_rule_needs_is_an_error(run, tmp_path):
    outcome = evaluate_rule(
        "PoorWeightInitialization", run(HEALTHY), tmp_path, activation_inputs_regex="nothing.*"
    )
    assert outcome.status == ERROR
    assert "saved no activation inputs" in outcome.details


def test_job_without_a_hook_is_an_error(tmp_path):
    debug_output = tmp_path / "debug-output"
    debug_output.mkdir()
    (debug_output / "training_job_end.ts").touch()
    outcome = evaluate_rule("Overfit", debug_output, tmp_path)
    assert outcome.status == ERROR
    assert "without saving any debug tensors" in outcome.details


def test_runner_knows_every_tensor_rule_without_importing_them():
    assert set(TENSOR_RULE_NAMES) == set(TENSOR_RULES_BY_NAME)
