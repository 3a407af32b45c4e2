"""A tuning job's search, on Optuna's ask/tell interface.

Each training job the tuning job launches is one Optuna trial: `suggest()` draws its
hyperparameters, `observe()` feeds it each new objective value (one per epoch) and says whether
to stop the job, `finish()` records how it ended. Strategies map to samplers (Bayesian: TPE,
Random: random, Grid: grid over the categorical values, Hyperband: random sampling with Optuna's
Hyperband pruner); `TrainingJobEarlyStoppingType: Auto` maps to the median stopping rule.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import optuna
from optuna.pruners import BasePruner, HyperbandPruner, NopPruner
from optuna.samplers import BaseSampler, GridSampler, RandomSampler, TPESampler
from optuna.trial import Trial, TrialState

from local_sagemaker.tuning.early_stopping import MedianStoppingRule
from local_sagemaker.tuning.plan import TuningPlan

# Trials are driven from the runtime's own log; Optuna's per-trial INFO lines would only repeat it.
optuna.logging.set_verbosity(optuna.logging.WARNING)

# Hyperband's successive-halving rate (Optuna's and the Hyperband paper's default).
HYPERBAND_REDUCTION_FACTOR = 3


class Decision(enum.Enum):
    """What to do with a running training job after its latest objective value."""

    CONTINUE = "continue"
    STOP_EARLY = "stop early"  # the early-stopping rule or Hyperband gave up on it
    RESOURCE_REACHED = "resource reached"  # Hyperband's MaxResource: done, not worse


class _BudgetedGridSampler(GridSampler):
    """GridSampler without its end-of-grid `study.stop()`.

    Optuna's GridSampler stops the study after the last combination, which only works inside
    `study.optimize`; under ask/tell it raises. The tuning loop stops at its budget instead
    (the Grid budget is the number of combinations).
    """

    def after_trial(self, study, trial, state, values) -> None:
        return None


def bayesian_startup_trials(max_training_jobs: int) -> int:
    """Random trials TPE runs before modelling: a third of the budget, between 2 and 10."""
    return max(2, min(10, max_training_jobs // 3))


def make_sampler(plan: TuningPlan) -> BaseSampler:
    seed = plan.random_seed
    if plan.strategy == "Bayesian":
        # constant_liar keeps parallel trials apart while their results are unknown.
        return TPESampler(
            seed=seed,
            n_startup_trials=bayesian_startup_trials(plan.max_training_jobs),
            constant_liar=True,
        )
    if plan.strategy == "Grid":
        return _BudgetedGridSampler(plan.search_space.grid(), seed=seed)
    return RandomSampler(seed=seed)  # Random, and Hyperband's configuration sampling


def make_pruner(plan: TuningPlan) -> BasePruner:
    if plan.hyperband is not None:
        return HyperbandPruner(
            min_resource=plan.hyperband.min_resource,
            max_resource=plan.hyperband.max_resource,
            reduction_factor=HYPERBAND_REDUCTION_FACTOR,
        )
    if plan.early_stopping:
        return MedianStoppingRule()
    return NopPruner()


class TuningStrategy:
    """One tuning job's Optuna study (in memory: the tuning job's record is the durable state).

    Not thread-safe by itself: one tuning loop owns it.
    """

    def __init__(self, plan: TuningPlan) -> None:
        self.plan = plan
        self.study = optuna.create_study(
            direction="maximize" if plan.maximize else "minimize",
            sampler=make_sampler(plan),
            pruner=make_pruner(plan),
        )
        self._distributions = plan.search_space.distributions()

    def suggest(self) -> tuple[Trial, dict[str, str]]:
        """A new trial and the tuned hyperparameters (strings) of its training job."""
        trial = self.study.ask(self._distributions)
        return trial, self.plan.search_space.hyperparameters(trial.params)

    def observe(self, trial: Trial, epoch: int, value: float) -> Decision:
        """Record the objective value a running job emitted at `epoch` (1-based)."""
        trial.report(value, epoch)
        hyperband = self.plan.hyperband
        if hyperband is not None and epoch >= hyperband.max_resource:
            return Decision.RESOURCE_REACHED
        return Decision.STOP_EARLY if trial.should_prune() else Decision.CONTINUE

    def finish(self, trial: Trial, final_value: float | None, *, stopped_early: bool) -> None:
        """Close a trial: its job ended with `final_value` (None: no objective was emitted)."""
        if final_value is None:
            self.study.tell(trial, state=TrialState.FAIL)
        elif stopped_early:
            # Optuna takes a pruned trial's value from its last reported intermediate value.
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, final_value)

    def add_history(
        self, hyperparameters: dict[str, str], objective_values: Sequence[float]
    ) -> bool:
        """Teach the study a finished job of a warm-start parent (its last value is final).

        Every job with objective values is a previous job for the median stopping rule; a job
        whose tuned hyperparameters all lie inside this search space also becomes a trial the
        sampler learns from, and only then is True returned.
        """
        if not objective_values:
            return False
        curve = dict(enumerate(objective_values, start=1))
        params = self.plan.search_space.params_from_hyperparameters(hyperparameters)
        if params is None:
            if isinstance(self.study.pruner, MedianStoppingRule):
                self.study.pruner.reference_curves.append(curve)
            return False
        self.study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=self._distributions,
                value=objective_values[-1],
                intermediate_values=curve,
            )
        )
        return True
