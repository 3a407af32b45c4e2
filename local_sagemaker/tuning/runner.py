"""The life of one hyperparameter tuning job: launch trials, follow their objective, finish.

A :class:`TuningRun` owns one thread. Each pass it reads every running trial's objective series
(scraped by the training family), lets the strategy decide whether to stop the job early, closes
trials whose training job ended, launches new trials up to the parallel limit, and ends the
tuning job when nothing runs and nothing more may start. Training observers wake it as soon as a
trial reports a metric or ends; otherwise it polls every `POLL_SECONDS`.

With `RandomSeed`, the same seed and data give the same trials whatever order parallel jobs end
in: the strategy learns each result in launch order, and trial k is suggested exactly when
trials 1..k-P (P: the parallel limit) have been learnt and k-P+1..k-1 are still pending to it.
A slot may stay free until the trial k-P ends. (Early-stopping decisions compare running jobs
with each other, so they still follow the timing.) Without a seed, results are learnt as jobs
end and every slot is filled at once.

The tuning job's durable state is its record in the tuning family (`jobs`, a
:class:`~local_sagemaker.sagemaker.jobs.JobFamily`): the family writes the description at
creation; afterwards this run is the only writer of status, times and trials until it is halted.
Trials are training jobs of the training family (`training`).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field

from optuna.trial import Trial

from local_sagemaker.errors import AwsError
from local_sagemaker.tuning.plan import TuningPlan
from local_sagemaker.tuning.strategy import Decision, TuningStrategy

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
TERMINAL_TRAINING_STATUSES = ("Completed", "Failed", "Stopped")
# SageMaker gives up on a tuning job whose first attempts all fail ("No training job succeeded
# after 5 attempts ..."), instead of spending the whole budget on a broken configuration.
ATTEMPTS_BEFORE_GIVING_UP = 5
# BestObjectiveNotImproving counts jobs that improve the best objective by 1 % or less.
SIGNIFICANT_IMPROVEMENT = 0.01
# Members of a tuning job's training job definition that CreateTrainingJob takes as they are.
TRAINING_JOB_MEMBERS = (
    "AlgorithmSpecification",
    "RoleArn",
    "InputDataConfig",
    "VpcConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
    "EnableNetworkIsolation",
    "EnableInterContainerTrafficEncryption",
    "EnableManagedSpotTraining",
    "CheckpointConfig",
    "RetryStrategy",
    "Environment",
)
DEFAULT_RESOURCE_CONFIG = {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30}


def machine_parallel_limit() -> int:
    """How many training jobs this machine runs at once for one tuning job: one per CPU."""
    return os.cpu_count() or 1


def trial_job_name(tuning_job_name: str, sequence: int) -> str:
    """`<tuning job>-<3-digit sequence from 001>-<8 lowercase hex>`, as SageMaker names trials."""
    return f"{tuning_job_name}-{sequence:03d}-{secrets.token_hex(4)}"


def trial_training_request(
    definition: dict, job_name: str, tuned: dict[str, str], objective_metric: str
) -> dict:
    """The CreateTrainingJob request of one trial: the definition plus its hyperparameters."""
    request = {key: definition[key] for key in TRAINING_JOB_MEMBERS if key in definition}
    if "ResourceConfig" not in request:
        request["ResourceConfig"] = _resource_config(definition)
    request["TrainingJobName"] = job_name
    request["HyperParameters"] = {
        **(definition.get("StaticHyperParameters") or {}),
        **tuned,
        "_tuning_objective_metric": objective_metric,
    }
    return request


def _resource_config(definition: dict) -> dict:
    tuning_resources = definition.get("HyperParameterTuningResourceConfig") or {}
    keys = ("InstanceType", "InstanceCount", "VolumeSizeInGB")
    chosen = {key: tuning_resources[key] for key in keys if key in tuning_resources}
    return {**DEFAULT_RESOURCE_CONFIG, **chosen}


@dataclass
class RunningTrial:
    """A launched trial whose training job has not been closed yet."""

    trial: Trial
    entry: dict  # the trial's entry in the record's "trials" list
    values: list[float] = field(default_factory=list)
    stopping: bool = False  # a stop was sent to its training job
    stopped_early: bool = False  # ... because the strategy judged it worse than the others

    @property
    def job_name(self) -> str:
        return self.entry["TrainingJobName"]


class TuningRun:
    """Drives one tuning job from InProgress to Completed, Stopped or Failed (see module doc).

    `history` holds `(tuned hyperparameters, objective values)` of warm-start parents' jobs.
    """

    def __init__(
        self,
        training,
        jobs,
        name: str,
        plan: TuningPlan,
        definition: dict,
        history: list[tuple[dict[str, str], list[float]]],
    ) -> None:
        self.training = training
        self.jobs = jobs
        self.name = name
        self.plan = plan
        self.definition = definition
        self.strategy = TuningStrategy(plan)
        taught = sum(self.strategy.add_history(tuned, values) for tuned, values in history)
        if history:
            log.info("tuning job %s: warm start from %d parent training jobs", name, taught)
        self.parallel_limit = min(plan.max_parallel_training_jobs, machine_parallel_limit())
        if self.parallel_limit < plan.max_parallel_training_jobs:
            log.info(
                "tuning job %s: MaxParallelTrainingJobs %d capped to %d (CPUs of this machine)",
                name,
                plan.max_parallel_training_jobs,
                self.parallel_limit,
            )
        self.started = time.monotonic()
        self.entries: list[dict] = []
        self.running: dict[str, RunningTrial] = {}
        self.reproducible = plan.random_seed is not None
        # Trials whose job ended but whose result the strategy has not learnt yet, by sequence
        # number (1-based launch order); `learnt` counts the results learnt so far.
        self.ended: dict[int, tuple[RunningTrial, float | None]] = {}
        self.learnt = 0
        self.best: float | None = None
        self.jobs_not_improving = 0
        self._wake = threading.Event()
        # Serialises record writes, and a stop request against the final status.
        self._lock = threading.RLock()
        self._stop_requested = False
        self._failure_reason: str | None = None
        self._finished = False
        self._halted = False
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"tune-{name}")

    # -- control, from the API threads --

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """A trial reported a metric or ended: look now rather than at the next poll."""
        self._wake.set()

    def request_stop(self) -> bool:
        """StopHyperParameterTuningJob: Stopping now, Stopped once every trial ended.

        False when the tuning job already ended (the caller reports it as not stoppable).
        """
        with self._lock:
            if self._finished:
                return False
            if not self._stop_requested:
                self._stop_requested = True
                self._write(HyperParameterTuningJobStatus="Stopping")
        self.wake()
        return True

    def halt(self) -> None:
        """The runtime is shutting down: leave the loop and write the record no more (the family
        records the interruption)."""
        with self._lock:  # a write under way ends before the family records the interruption
            self._halted = True
        self.wake()

    # -- the loop --

    def _run(self) -> None:
        try:
            while not self._halted and self._advance():
                self._wake.wait(POLL_SECONDS)
                self._wake.clear()
        except Exception as error:
            log.exception("tuning job %s crashed the runtime's tuning loop", self.name)
            self._stop_running_trials()
            self._finish("Failed", f"InternalServerError: {type(error).__name__}: {error}")

    def _advance(self) -> bool:
        """One pass; False once the tuning job has ended."""
        for running in list(self.running.values()):
            self._follow(running)
        if self._stop_requested or self._failure_reason or self._runtime_exceeded():
            self._stop_running_trials()
            self._learn_ended(launching_over=True)
        else:
            self._learn_and_launch()
        if self.running:
            return True
        self._learn_ended(launching_over=True)
        self._finish(*self._outcome())
        return False

    def _learn_and_launch(self) -> None:
        """Learn what may be learnt, launch what may be launched, until neither changes."""
        while True:
            learnt, launched = self.learnt, len(self.entries)
            self._learn_ended(launching_over=not self._more_trials_may_come())
            self._launch_trials()
            if (self.learnt, len(self.entries)) == (learnt, launched):
                return

    def _follow(self, running: RunningTrial) -> None:
        """Feed a trial's new objective values to the strategy; close it if its job ended."""
        status = self.training.describe_training_job({"TrainingJobName": running.job_name})[
            "TrainingJobStatus"
        ]
        series = self.training.training_metric_series(running.job_name)
        values = [point["Value"] for point in series.get(self.plan.objective_metric, [])]
        for epoch in range(len(running.values) + 1, len(values) + 1):
            decision = self.strategy.observe(running.trial, epoch, values[epoch - 1])
            if (
                decision is not Decision.CONTINUE
                and not running.stopping
                and status == "InProgress"
            ):
                log.info(
                    "tuning job %s: stopping %s after epoch %d (%s)",
                    self.name,
                    running.job_name,
                    epoch,
                    decision.value,
                )
                running.stopped_early = decision is Decision.STOP_EARLY
                self._stop_trial_job(running)
        running.values = values
        if status in TERMINAL_TRAINING_STATUSES:
            self._close(running, status)

    def _stop_trial_job(self, running: RunningTrial) -> None:
        running.stopping = True
        try:
            self.training.stop_training(running.job_name)
        except AwsError as error:  # it ended on its own in the meantime
            log.info("tuning job %s: %s", self.name, error.message)

    def _close(self, running: RunningTrial, status: str) -> None:
        succeeded = bool(running.values) and status != "Failed"
        final_value = running.values[-1] if succeeded else None
        running.entry.update(
            ObjectiveStatus="Succeeded" if succeeded else "Failed",
            ObjectiveValues=running.values,
            StoppedEarly=running.stopped_early,
        )
        del self.running[running.job_name]
        self.ended[self.entries.index(running.entry) + 1] = (running, final_value)
        self._write()

    def _learn_ended(self, *, launching_over: bool) -> None:
        """Teach the strategy the results of ended trials (see the module doc for the order)."""
        if not self.reproducible:
            for sequence in sorted(self.ended):
                self._learn(sequence)
            return
        while self.learnt + 1 in self.ended:
            sequence = self.learnt + 1
            # Trial `sequence + P - 1` must be suggested before this result is learnt.
            if not launching_over and len(self.entries) < sequence + self.parallel_limit - 1:
                return
            self._learn(sequence)

    def _learn(self, sequence: int) -> None:
        running, final_value = self.ended.pop(sequence)
        self.strategy.finish(running.trial, final_value, stopped_early=running.stopped_early)
        self.learnt += 1
        if final_value is not None:
            self._count_improvement(final_value)
        self._write()

    def _count_improvement(self, value: float) -> None:
        if self.best is None:
            self.best = value
            return
        margin = SIGNIFICANT_IMPROVEMENT * abs(self.best)
        significant = (
            value > self.best + margin if self.plan.maximize else value < self.best - margin
        )
        self.jobs_not_improving = 0 if significant else self.jobs_not_improving + 1
        if self.plan.is_better(value, self.best):
            self.best = value

    # -- launching --

    def _launch_trials(self) -> None:
        """Start trials up to the limits; a job that cannot be created fails the tuning job."""
        while len(self.running) < self.parallel_limit and self._may_launch():
            trial, tuned = self.strategy.suggest()
            job_name = trial_job_name(self.name, len(self.entries) + 1)
            request = trial_training_request(
                self.definition, job_name, tuned, self.plan.objective_metric
            )
            try:
                self.training.create_training_job(request, tuning_job_name=self.name)
            except AwsError as error:
                self.strategy.finish(trial, None, stopped_early=False)
                self._failure_reason = (
                    f"ClientError: training job {job_name} could not be created: {error.message}"
                )
                return
            entry = {
                "TrainingJobName": job_name,
                "TunedHyperParameters": tuned,
                "ObjectiveStatus": "Pending",
                "ObjectiveValues": [],
                "StoppedEarly": False,
            }
            self.entries.append(entry)
            self.running[job_name] = RunningTrial(trial, entry)
            log.info("tuning job %s: launched %s with %s", self.name, job_name, tuned)
            self._write()

    def _may_launch(self) -> bool:
        # Reproducible: trial k waits until the results of trials 1..k-P are learnt.
        waiting = self.reproducible and self.learnt < len(self.entries) + 1 - self.parallel_limit
        return not waiting and self._more_trials_may_come()

    def _more_trials_may_come(self) -> bool:
        if len(self.entries) >= self.plan.max_training_jobs:
            return False
        if self._gave_up() or self._target_reached():
            return False
        limit = self.plan.max_jobs_not_improving
        return limit is None or self.jobs_not_improving < limit

    def _failed_attempts(self) -> int:
        return sum(entry["ObjectiveStatus"] == "Failed" for entry in self.entries)

    def _gave_up(self) -> bool:
        return self.best is None and self._failed_attempts() >= ATTEMPTS_BEFORE_GIVING_UP

    def _target_reached(self) -> bool:
        target = self.plan.target_objective_value
        return (
            target is not None
            and self.best is not None
            and (self.best == target or self.plan.is_better(self.best, target))
        )

    def _runtime_exceeded(self) -> bool:
        limit = self.plan.max_runtime_seconds
        return limit is not None and time.monotonic() - self.started > limit

    def _stop_running_trials(self) -> None:
        for running in self.running.values():
            if not running.stopping:
                self._stop_trial_job(running)

    # -- the end --

    def _outcome(self) -> tuple[str, str | None]:
        if self._failure_reason:
            return "Failed", self._failure_reason
        if self._stop_requested:
            return "Stopped", None
        if self.best is None:
            return "Failed", (
                f"No training job succeeded after {self._failed_attempts()} attempts. "
                "For additional details, please take a look at the training job failures by "
                "listing training jobs for the hyperparameter tuning job."
            )
        return "Completed", None

    def _finish(self, status: str, failure_reason: str | None) -> None:
        with self._lock:
            self._finished = True
            now = time.time()
            changes = {"HyperParameterTuningJobStatus": status, "HyperParameterTuningEndTime": now}
            if failure_reason:
                changes["FailureReason"] = failure_reason
            self._write(**changes)
        self.jobs.done(self.name)  # else the runtime's shutdown would try to fail it
        log.info("tuning job %s: %s after %d training jobs", self.name, status, len(self.entries))

    def _write(self, **description_changes) -> None:
        """Persist the trials (and any description changes) to the tuning job's record."""

        def change(record):
            record["description"].update(description_changes, LastModifiedTime=time.time())
            record["trials"] = self.entries
            record["jobs_not_improving"] = self.jobs_not_improving

        with self._lock:
            if not self._halted:
                self.jobs.change(self.name, change)
