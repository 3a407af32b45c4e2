"""SageMaker Debugger's built-in tensor rules, implemented on smdebug's ``Rule`` API.

AWS ships these rules only inside a closed image, so they are implemented here from the
documented parameters and semantics (SageMaker Developer Guide, "List of Debugger built-in
rules"). Where AWS does not publish the exact formula, the formula chosen is written in the
rule's docstring. Every rule:

* is an ``smdebug.rules.Rule`` driven by ``smdebug.rules.rule_invoker.invoke_rule``, which calls
  ``invoke_at_step`` for each global step as the training job saves it (so a rule can run while
  the job is still training) and raises ``NoMoreData`` once ``training_job_end.ts`` exists;
* sets ``finding`` (one human sentence) before returning True, so the status details say what
  was found, not only where;
* counts the steps it could examine in ``examined_steps``: a job that never saved what the rule
  needs ends in Error rather than a silent NoIssuesFound (see ``missing_data_message``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

import numpy as np
from smdebug.core.modes import ModeKeys
from smdebug.core.utils import match_inc
from smdebug.exceptions import (
    MissingCollectionFiles,
    NoMoreData,
    RuleEvaluationConditionMet,
    TensorUnavailable,
    TensorUnavailableForStep,
)
from smdebug.rules.rule import Rule
from smdebug.rules.rule_invoker import invoke_rule
from smdebug.trials import create_trial

from rules.outcome import ERROR, ISSUES_FOUND, NO_ISSUES_FOUND, RuleOutcome
from rules.parameters import (
    Parameter,
    as_bool,
    as_list,
    as_mode,
    count,
    number,
    parse_parameters,
    percent,
)

LOSSES_COLLECTION = "losses"
GRADIENTS_COLLECTION = "gradients"
# Steps of a training pass (GLOBAL: a script that never calls hook.set_mode).
TRAINING_MODES = (ModeKeys.TRAIN, ModeKeys.GLOBAL)


class TensorRule(Rule):
    """Base of the tensor rules: parameter specs, value access and bookkeeping."""

    PARAMETERS: ClassVar[tuple[Parameter, ...]] = ()
    # What the training job must save for the rule to examine anything (used in the Error text).
    NEEDS: ClassVar[str] = ""

    def __init__(self, base_trial):
        super().__init__(base_trial, action_str="")
        self.finding = ""
        self.examined_steps = 0

    def missing_data_message(self) -> str:
        return (
            f"Rule {self.rule_name} examined no step: the training job saved no {self.NEEDS}. "
            "Check DebugHookConfig.CollectionConfigurations and that the training script "
            "registers the smdebug hook."
        )

    def value_at(self, tensor_name: str, step: int) -> np.ndarray | None:
        """The tensor's value at a global step, or None when it was not saved at that step."""
        try:
            return self.base_trial.tensor(tensor_name).value(step)
        except (TensorUnavailableForStep, TensorUnavailable):
            return None

    def mean_abs_at(self, tensor_name: str, step: int) -> float | None:
        """The tensor's mean absolute value at a global step (a saved reduction or computed from
        the saved tensor), or None when neither was saved at that step."""
        try:
            tensor = self.base_trial.tensor(tensor_name)
            return float(tensor.reduction_value(step, "mean", abs=True))
        except (TensorUnavailableForStep, TensorUnavailable):
            return None

    def names_at(
        self, step: int, collections: Iterable[str] = (), regexes: Iterable[str] = ()
    ) -> list[str]:
        """Tensors saved at ``step`` that belong to one of ``collections`` or match ``regexes``.

        Collections the job did not configure are ignored (smdebug would raise or warn).
        """
        patterns = list(regexes)
        members: set[str] = set()
        configured = self.base_trial.collections()
        for name in collections:
            if name in configured:
                members.update(configured[name].tensor_names)
                patterns.extend(configured[name].include_regex)
        saved = self.base_trial.tensor_names(step=step)
        return [n for n in saved if n in members or (patterns and match_inc(n, patterns))]

    def mean_scalar_at(self, tensor_names: list[str], step: int) -> float | None:
        """Mean of the named scalar tensors saved at ``step``; None if none was saved."""
        values = [self.value_at(name, step) for name in tensor_names]
        saved = [float(np.mean(value)) for value in values if value is not None]
        return float(np.mean(saved)) if saved else None

    def loss_at(
        self, step: int, collections: Iterable[str] = (LOSSES_COLLECTION,), regexes=()
    ) -> float | None:
        """The loss at ``step``: mean of the selected scalars saved there (None if none)."""
        return self.mean_scalar_at(self.names_at(step, collections, regexes), step)


class VanishingGradient(TensorRule):
    """Issue when the mean absolute value of any saved gradient tensor falls below ``threshold``.

    Formula as documented by AWS. Needs the ``gradients`` collection. The mean is smdebug's
    ``reduction_value(step, "mean", abs=True)``, as in smdebug's open-source predecessor of this
    rule: it reads a saved ``abs_mean`` reduction when the collection saves reductions only
    (``CollectionParameters: {reductions: abs_mean}``) and computes it from the full tensor
    otherwise.
    """

    PARAMETERS = (number("threshold", 0.0000001, strictly_positive=True),)
    NEEDS = "tensors of the 'gradients' collection"

    def __init__(self, base_trial, threshold: float):
        super().__init__(base_trial)
        self.threshold = threshold

    def invoke_at_step(self, step):
        gradients = self.names_at(step, [GRADIENTS_COLLECTION])
        self.examined_steps += bool(gradients)
        for name in gradients:
            mean_abs = self.mean_abs_at(name, step)
            if mean_abs is None:
                continue
            if mean_abs < self.threshold:
                self.finding = (
                    f"Gradient {name} has a mean absolute value of {mean_abs:.3g}, below the "
                    f"threshold {self.threshold:g}: the gradients are vanishing."
                )
                return True
        return False


class LossNotDecreasing(TensorRule):
    """Issue when the loss stops decreasing between steps ``num_steps`` apart.

    Documented by AWS: only scalar tensors are used; at a saved step ``s`` the loss is compared
    with the newest saved step at least ``num_steps`` earlier, and the next comparison happens
    ``num_steps`` later. The decision formula is UNCONFIRMED (AWS's code is private); this one:

    * change = (loss[s] - loss[base]) / |loss[base]| * 100;
    * a comparison "decreases" when -change >= ``diff_percent``;
    * a rise of more than ``increase_threshold_percent`` meets the condition at once;
    * a smaller stall (flat, or rising by at most ``increase_threshold_percent``) is tolerated
      once, as mini-batch noise, and meets the condition if the next comparison stalls again;
    * a loss that is not finite (NaN, inf) meets the condition at once.

    The loss at a step is the mean of the selected scalars (``collection_names`` and
    ``tensor_regex``, plus ``losses`` when ``use_losses_collection``). ``mode`` selects which
    steps are compared; AWS falls back EVAL -> TRAIN -> GLOBAL when it is absent. Here the
    default is TRAIN: the rule runs during training, when no EVAL step may exist yet, and EVAL
    steps ``num_steps`` apart compare different validation batches.
    """

    PARAMETERS = (
        Parameter("collection_names", as_list, []),
        Parameter("tensor_regex", as_list, []),
        Parameter("use_losses_collection", as_bool, True),
        count("num_steps", 10),
        percent("diff_percent", 0.1),
        percent("increase_threshold_percent", 5.0),
        Parameter("mode", as_mode, None),
    )
    NEEDS = "loss scalars (the 'losses' collection or the given collection_names/tensor_regex)"

    def __init__(
        self,
        base_trial,
        collection_names: list[str],
        tensor_regex: list[str],
        use_losses_collection: bool,
        num_steps: int,
        diff_percent: float,
        increase_threshold_percent: float,
        mode: str | None,
    ):
        super().__init__(base_trial)
        self.collection_names = collection_names
        self.tensor_regex = tensor_regex
        self.use_losses_collection = use_losses_collection
        self.num_steps = num_steps
        self.diff_percent = diff_percent
        self.increase_threshold_percent = increase_threshold_percent
        self.mode = ModeKeys[mode] if mode else ModeKeys.TRAIN
        self.history: list[tuple[int, float]] = []  # (mode step, loss), in step order
        self.next_comparison_step = 0
        self.stalled_last_time = False

    def invoke_at_step(self, step):
        if self.mode != ModeKeys.GLOBAL and self.base_trial.mode(step) != self.mode:
            return False
        collections = [*self.collection_names]
        if self.use_losses_collection:
            collections.append(LOSSES_COLLECTION)
        loss = self.loss_at(step, collections, self.tensor_regex)
        if loss is None:
            return False
        self.examined_steps += 1
        mode_step = step if self.mode == ModeKeys.GLOBAL else self.base_trial.mode_step(step)
        if not math.isfinite(loss):
            self.finding = f"The {self.mode.name} loss is {loss} at step {mode_step}: it diverged."
            return True
        self.history.append((mode_step, loss))
        if mode_step < self.next_comparison_step:
            return False
        base = self._newest_at_or_before(mode_step - self.num_steps)
        if base is None:
            return False
        self.next_comparison_step = mode_step + self.num_steps
        return self._stalled(base, (mode_step, loss))

    def _newest_at_or_before(self, mode_step: int) -> tuple[int, float] | None:
        earlier = [entry for entry in self.history if entry[0] <= mode_step]
        return earlier[-1] if earlier else None

    def _stalled(self, base: tuple[int, float], current: tuple[int, float]) -> bool:
        (base_step, base_loss), (step, loss) = base, current
        change = (loss - base_loss) / abs(base_loss) * 100 if base_loss else 0.0
        if -change >= self.diff_percent:
            self.stalled_last_time = False
            return False
        big_rise = change > self.increase_threshold_percent
        if not big_rise and not self.stalled_last_time:
            self.stalled_last_time = True
            return False
        direction = f"rose by {change:.2f}%" if change > 0 else f"fell by only {-change:.3f}%"
        self.finding = (
            f"The {self.mode.name} loss {direction} between step {base_step} ({base_loss:.4g}) and "
            f"step {step} ({loss:.4g}); at least a {self.diff_percent:g}% decrease is required "
            f"every {self.num_steps} steps."
        )
        return True


class Overfit(TensorRule):
    """Issue when validation loss exceeds training loss by more than ``ratio_threshold``.

    AWS documents ratio = (mean validation loss - mean training loss) / mean training loss.
    The windows are UNCONFIRMED; here the training mean is over the last training phase (the
    TRAIN steps saved since the previous evaluation) and the validation mean is the running mean
    of the current evaluation phase, checked at every saved EVAL step from ``start_step`` on.
    ``patience`` consecutive EVAL steps may exceed the threshold; the next one meets the condition.
    ``tensor_regex`` restricts the compared scalars (default: the ``losses`` collection).
    """

    PARAMETERS = (
        Parameter("tensor_regex", as_list, []),
        count("start_step", 0, minimum=0),
        count("patience", 1, minimum=0),
        number("ratio_threshold", 0.1),
    )
    NEEDS = "loss scalars in both TRAIN and EVAL mode (hook.set_mode around validation)"

    def __init__(
        self,
        base_trial,
        tensor_regex: list[str],
        start_step: int,
        patience: int,
        ratio_threshold: float,
    ):
        super().__init__(base_trial)
        self.tensor_regex = tensor_regex
        self.start_step = start_step
        self.patience = patience
        self.ratio_threshold = ratio_threshold
        self.train_losses: list[float] = []
        self.eval_losses: list[float] = []
        self.exceeded_in_a_row = 0

    def invoke_at_step(self, step):
        if step < self.start_step:
            return False
        if self.tensor_regex:
            loss = self.loss_at(step, collections=(), regexes=self.tensor_regex)
        else:
            loss = self.loss_at(step)
        if loss is None:
            return False
        mode = self.base_trial.mode(step)
        if mode == ModeKeys.TRAIN:
            if self.eval_losses:  # a new training phase starts after an evaluation
                self.train_losses, self.eval_losses = [], []
            self.train_losses.append(loss)
            return False
        if mode != ModeKeys.EVAL or not self.train_losses:
            return False
        self.eval_losses.append(loss)
        self.examined_steps += 1
        train_mean = float(np.mean(self.train_losses))
        eval_mean = float(np.mean(self.eval_losses))
        ratio = (eval_mean - train_mean) / abs(train_mean) if train_mean else float("inf")
        self.exceeded_in_a_row = self.exceeded_in_a_row + 1 if ratio > self.ratio_threshold else 0
        if self.exceeded_in_a_row <= self.patience:
            return False
        self.finding = (
            f"Validation loss {eval_mean:.4g} exceeds training loss {train_mean:.4g} by "
            f"{ratio:.0%} (ratio threshold {self.ratio_threshold:g}) for "
            f"{self.exceeded_in_a_row} evaluation steps in a row: the model is overfitting."
        )
        return True


class _Plateau:
    """Best-so-far tracker: how many observations since the value last improved by ``delta``."""

    def __init__(self, delta: float):
        self.delta = delta
        self.best: float | None = None
        self.best_step = -1
        self.since_improvement = 0

    def observe(self, step: int, value: float) -> None:
        if self.best is None or value < self.best - self.delta:
            self.best, self.best_step, self.since_improvement = value, step, 0
        else:
            self.since_improvement += 1


class Overtraining(TensorRule):
    """Issue when training or validation loss stops improving.

    AWS documents the parameters (patience per mode, minimum improvement ``delta``) but not how
    the two conditions combine (UNCONFIRMED). Here either one suffices: the training loss has not
    fallen below its best minus ``delta`` for ``patience_train`` saved TRAIN steps, or the
    validation loss likewise for ``patience_validation`` saved EVAL steps.
    """

    PARAMETERS = (
        count("patience_train", 5),
        count("patience_validation", 10),
        number("delta", 0.01),
    )
    NEEDS = "loss scalars (the 'losses' collection)"

    def __init__(self, base_trial, patience_train: int, patience_validation: int, delta: float):
        super().__init__(base_trial)
        self.patience = {ModeKeys.TRAIN: patience_train, ModeKeys.EVAL: patience_validation}
        self.plateaus = {ModeKeys.TRAIN: _Plateau(delta), ModeKeys.EVAL: _Plateau(delta)}
        self.delta = delta

    def invoke_at_step(self, step):
        mode = self.base_trial.mode(step)
        if mode not in self.plateaus:
            return False
        loss = self.loss_at(step)
        if loss is None:
            return False
        self.examined_steps += 1
        plateau = self.plateaus[mode]
        plateau.observe(step, loss)
        if plateau.since_improvement < self.patience[mode]:
            return False
        kind = "training" if mode == ModeKeys.TRAIN else "validation"
        self.finding = (
            f"The {kind} loss has not improved by {self.delta:g} for "
            f"{plateau.since_improvement} saved steps (best {plateau.best:.4g} at step "
            f"{plateau.best_step}): training goes on without improving the model."
        )
        return True


class PoorWeightInitialization(TensorRule):
    """Issue when the first ``steps`` training steps show badly initialised weights.

    AWS documents three checks "for the initial steps" without their exact combination
    (UNCONFIRMED); any one suffices:

    * variance: at the first analysed step, max/min of the per-layer variance of the activation
      inputs (tensors matching ``activation_inputs_regex``) exceeds ``threshold`` (signals
      shrinking or exploding signal through depth). Only the first step's activations are the
      initial weights' alone: training moves the ratio on a healthy network, most in residual
      ones, whose later blocks add their input to their output. benchmarks/bench_rules.py's
      healthy-03, a resnet34 that learned to 0.90 validation accuracy, had a ratio of 3.05 at
      step 0 and 10.02 at step 8 (Adam, lr 3e-3). Judged at every step, it was blocked, and so
      is a run whose learning rate diverges, which is LossNotDecreasing's to report;
    * spread: the smallest distance between the 5th and 95th percentile of one layer's
      activation-input distribution is below ``distribution_range`` (a collapsed layer). AWS's
      text says "gradient distribution", but the rule only requests the ``relu_input``
      collection, so the distribution examined is the activation inputs';
    * convergence: the training loss, smoothed as the mean of the last ``patience`` analysed
      steps' losses, has not improved on its best for ``patience`` analysed steps. Smoothed
      because the loss at one step is one mini-batch's, and ``patience`` keeps AWS's meaning
      ("steps to wait until the loss is considered to be no longer decreasing") without reading
      batch noise as a stall. It needs ``2 * patience`` saved losses inside the window: with
      the defaults (10 steps, patience 5), a hook that saves each of the first 10 steps.

    ``steps`` counts training steps from the first (AWS: "the number of steps this rule analyzes.
    You typically need to check only the first few steps"): the rule analyses the saved TRAIN (or
    GLOBAL) steps numbered below ``steps``, however often the hook saves (a TRAIN step's number is
    its mode step). An earlier version counted saved steps instead, which stretched "the initial
    steps" with the save interval: over 20 training steps at the local profile's save_interval 2,
    over 4,500 at the 500 of AWS's own collection configuration for this rule. Past the first few
    steps the loss reflects the training recipe, not the initial weights; judged that far, the
    convergence check blocked a healthy run (benchmarks/bench_rules.py's healthy-16: resnet18, batch
    8, whose loss bounced at training step 10). Only training steps count: in EVAL mode, batch
    normalisation uses running statistics that are still warming up early on, which says nothing
    about the initial weights.
    """

    PARAMETERS = (
        Parameter("activation_inputs_regex", as_list, [".*relu_input"]),
        number("threshold", 10.0, strictly_positive=True),
        number("distribution_range", 0.001),
        count("patience", 5),
        count("steps", 10),
    )
    NEEDS = (
        "activation inputs matching activation_inputs_regex (the 'relu_input' collection) in "
        "the first `steps` training steps"
    )

    def __init__(
        self,
        base_trial,
        activation_inputs_regex: list[str],
        threshold: float,
        distribution_range: float,
        patience: int,
        steps: int,
    ):
        super().__init__(base_trial)
        self.activation_inputs_regex = activation_inputs_regex
        self.threshold = threshold
        self.distribution_range = distribution_range
        self.patience = patience
        self.steps = steps
        self.losses: list[float] = []
        self.smoothed_loss_plateau = _Plateau(delta=0.0)

    def invoke_at_step(self, step):
        mode = self.base_trial.mode(step)
        if mode not in TRAINING_MODES:
            return False
        training_step = step if mode == ModeKeys.GLOBAL else self.base_trial.mode_step(step)
        if training_step >= self.steps:
            return False
        activations = {
            name: self.value_at(name, step).astype(np.float64).ravel()
            for name in self.names_at(step, regexes=self.activation_inputs_regex)
        }
        if not activations:
            return False
        initial_weights = self.examined_steps == 0
        self.examined_steps += 1
        return (
            (initial_weights and self._variance_ratio_too_high(activations))
            or self._collapsed_layer(activations)
            or self._loss_not_converging(step)
        )

    def _variance_ratio_too_high(self, activations: dict[str, np.ndarray]) -> bool:
        if len(activations) < 2:
            return False
        variances = {name: float(np.var(value)) for name, value in activations.items()}
        low = min(variances, key=variances.get)
        high = max(variances, key=variances.get)
        if variances[high] == 0:  # no ratio to speak of (zero weights do this)
            self.finding = (
                f"The activation inputs of all {len(variances)} layers are constant (variance 0): "
                "the weights are poorly initialised."
            )
            return True
        ratio = variances[high] / variances[low] if variances[low] else float("inf")
        if ratio <= self.threshold:
            return False
        self.finding = (
            f"Activation-input variance differs by a factor of {ratio:.3g} across layers "
            f"({high}: {variances[high]:.3g}, {low}: {variances[low]:.3g}; threshold "
            f"{self.threshold:g}): the weights are poorly initialised."
        )
        return True

    def _collapsed_layer(self, activations: dict[str, np.ndarray]) -> bool:
        spreads = {
            name: float(np.percentile(value, 95) - np.percentile(value, 5))
            for name, value in activations.items()
        }
        narrowest = min(spreads, key=spreads.get)
        if spreads[narrowest] >= self.distribution_range:
            return False
        self.finding = (
            f"The 5th-95th percentile spread of {narrowest} is {spreads[narrowest]:.3g}, below "
            f"distribution_range {self.distribution_range:g}: the layer's inputs have collapsed."
        )
        return True

    def _loss_not_converging(self, step: int) -> bool:
        loss = self.loss_at(step)
        if loss is None:
            return False
        self.losses.append(loss)
        if len(self.losses) < self.patience:
            return False
        plateau = self.smoothed_loss_plateau
        plateau.observe(step, float(np.mean(self.losses[-self.patience :])))
        if plateau.since_improvement < self.patience:
            return False
        self.finding = (
            f"The training loss, as a mean over {self.patience} steps, has not improved for "
            f"{plateau.since_improvement} of the first analysed steps (best {plateau.best:.4g} "
            f"over the {self.patience} steps up to step {plateau.best_step}): the initial "
            "weights do not let the model converge."
        )
        return True


TENSOR_RULES: dict[str, type[TensorRule]] = {
    rule.__name__: rule
    for rule in (
        VanishingGradient,
        LossNotDecreasing,
        Overfit,
        Overtraining,
        PoorWeightInitialization,
    )
}


def evaluate_tensor_rule(rule_name: str, raw_parameters: dict[str, str], debug_output: Path):
    """Run a tensor rule over the trial in ``debug_output`` until the condition is met or the
    job's end-of-job marker says no more steps will come. RuleParameterError propagates."""
    rule_class = TENSOR_RULES[rule_name]
    values = parse_parameters(rule_name, rule_class.PARAMETERS, raw_parameters)
    print(f"Evaluating {rule_name} {values} over debug output {debug_output}", flush=True)
    try:
        rule = rule_class(create_trial(str(debug_output)), **values)
    except MissingCollectionFiles:
        return RuleOutcome(
            rule_name,
            ERROR,
            f"ClientError: the training job ended without saving any debug tensors in "
            f"{debug_output}: register the smdebug hook in the training script.",
        )
    try:
        invoke_rule(rule, raise_eval_cond=True)
    except RuleEvaluationConditionMet as met:
        return RuleOutcome(rule_name, ISSUES_FOUND, rule.finding, met.step)
    except NoMoreData as end:
        if rule.examined_steps == 0:
            return RuleOutcome(rule_name, ERROR, f"ClientError: {rule.missing_data_message()}")
        return RuleOutcome(
            rule_name,
            NO_ISSUES_FOUND,
            f"{rule_name} examined {rule.examined_steps} step(s) up to step {end.last_step}; "
            "the condition was never met.",
        )
    raise AssertionError("invoke_rule returned without NoMoreData")  # it loops until the end
