"""SageMaker's `TrainingJobEarlyStoppingType: Auto`: the median stopping rule, as an Optuna pruner.

SageMaker documents the rule as: after each epoch, take the current job's objective value; for
every previously completed training job, compute the running average of its objective up to the
same epoch; stop the current job if its value is worse than the median of those averages.
Optuna's MedianPruner compares against other trials' values *at* the step (no running average)
and the current trial's best value, so the documented rule is written here instead.
"""

from __future__ import annotations

import statistics

import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

# SageMaker documents no minimum; with one or two finished jobs the median is a single job's
# curve, and stopping on it would throw away most trials of small tuning jobs.
DEFAULT_MIN_PREVIOUS_JOBS = 3


class MedianStoppingRule(BasePruner):
    """Prune a trial whose latest objective value is worse than the median of earlier finished
    trials' running averages up to the same step (epoch).

    Steps are the 1-based count of objective values a job has emitted. Finished trials (completed
    or themselves stopped early) that did not reach the step do not count; with fewer than
    `min_previous_jobs` references the trial continues. `reference_curves` holds the objective
    series (step -> value) of earlier jobs that are not trials of the study, such as warm-start
    parents' jobs tuned over other ranges; they count as previous jobs too.
    """

    def __init__(self, min_previous_jobs: int = DEFAULT_MIN_PREVIOUS_JOBS) -> None:
        if min_previous_jobs < 1:
            raise ValueError(f"min_previous_jobs must be at least 1, not {min_previous_jobs}")
        self.min_previous_jobs = min_previous_jobs
        self.reference_curves: list[dict[int, float]] = []

    def prune(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        curves = [other.intermediate_values for other in finished if other.number != trial.number]
        averages = [
            average
            for curve in curves + self.reference_curves
            if (average := running_average(curve, step)) is not None
        ]
        if len(averages) < self.min_previous_jobs:
            return False
        median = statistics.median(averages)
        current = trial.intermediate_values[step]
        if study.direction == StudyDirection.MAXIMIZE:
            return current < median
        return current > median


def running_average(values_by_step: dict[int, float], step: int) -> float | None:
    """Mean of the values up to and including `step`, or None if the series ends before it."""
    if not values_by_step or max(values_by_step) < step:
        return None
    upto = [value for at, value in values_by_step.items() if at <= step]
    return sum(upto) / len(upto)
