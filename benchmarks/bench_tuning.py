"""Hyperparameter tuning in the local runtime: parallel efficiency, and Bayesian vs Random.

Starts ``python -m local_sagemaker serve`` with a fresh data dir and tunes the tests' trial
script (tests/runtime/tuning_trial/train.py: valid_acc is a known function of lr, batch-size and
optimizer, peaking at 0.95), so results are comparable across runs and machines.

1. Parallel efficiency: one Random tuning job, ``--trials`` trials, ``--parallel`` at a time.
   Prints the tuning job's wall time, the sum of its trials' times (CreationTime to
   TrainingEndTime) and efficiency = sum / (wall x parallel); 1.0 would be perfect packing.
2. Time to best, same budget: for each seed, one Bayesian and one Random tuning job of
   ``--trials`` trials. Prints each job's best objective, and the trials and seconds it took to
   first reach the target (``--target-fraction`` of the best valid_acc the script can print
   after ``--epochs``); then the means over seeds.
3. The strategies alone (Optuna, no processes): mean best objective after ``--trials``
   suggestions over ``--strategy-seeds`` seeds, so the comparison has more samples than (2).

    .venvs/airflow/bin/python benchmarks/bench_tuning.py [--trials 16] [--parallel 2] [--seeds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests"), str(REPO_ROOT / "tests" / "runtime")]

from runtime_support import BUCKET, RuntimeProcess  # noqa: E402
from tuning_support import (  # noqa: E402
    PARAMETER_RANGES,
    all_trials,
    tuning_request,
    upload_trial_source,
    wait_for_tuning_job,
)
from tuning_trial.train import accuracy_at, final_accuracy  # noqa: E402

from local_sagemaker.tuning.plan import TuningPlan  # noqa: E402
from local_sagemaker.tuning.strategy import TuningStrategy  # noqa: E402


def seconds(start, end) -> float:
    return (end - start).total_seconds()


def run_tuning_job(sagemaker, source_uri: str, name: str, args, **config) -> dict:
    static = {"epochs": str(args.epochs), "epoch-seconds": str(args.epoch_seconds)}
    request = tuning_request(
        name, BUCKET, source_uri, max_jobs=args.trials, max_parallel=args.parallel,
        static=static, **config,
    )  # fmt: skip
    sagemaker.create_hyper_parameter_tuning_job(**request)
    described = wait_for_tuning_job(sagemaker, name, timeout=args.trials * 60)
    if described["HyperParameterTuningJobStatus"] != "Completed":
        raise RuntimeError(f"{name} ended {described['HyperParameterTuningJobStatus']}")
    return described


def parallel_efficiency(sagemaker, source_uri: str, args) -> None:
    described = run_tuning_job(sagemaker, source_uri, "efficiency", args, Strategy="Random")
    trials = all_trials(sagemaker, "efficiency")
    wall = seconds(described["CreationTime"], described["HyperParameterTuningEndTime"])
    busy = sum(seconds(t["CreationTime"], t["TrainingEndTime"]) for t in trials)
    script = args.epochs * args.epoch_seconds
    overhead = statistics.median(
        seconds(t["CreationTime"], t["TrainingEndTime"]) - script for t in trials
    )
    print(f"== parallel efficiency: {len(trials)} trials, {args.parallel} at a time")
    print(f"tuning job wall time     {wall:7.2f} s")
    print(f"sum of trial times       {busy:7.2f} s  (script itself: {script:.2f} s per trial)")
    print(f"median overhead / trial  {overhead:7.2f} s  (process, S3, logs, upload)")
    print(f"parallel efficiency      {busy / (wall * args.parallel):7.2f}")


def time_to_target(sagemaker, name: str, target: float) -> tuple[float, int | None, float | None]:
    """(best objective, trials until the target was first reached, seconds until then)."""
    described = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    trials = sorted(all_trials(sagemaker, name), key=lambda t: t["TrainingEndTime"])
    best = described["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    for count, trial in enumerate(trials, start=1):
        if trial["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] >= target:
            return best, count, seconds(described["CreationTime"], trial["TrainingEndTime"])
    return best, None, None


def bayesian_vs_random(sagemaker, source_uri: str, args) -> None:
    attainable = accuracy_at(args.epochs, final_accuracy(0.01, 32, "adam"))
    target = round(args.target_fraction * attainable, 4)
    print(f"\n== time to best: {args.trials} trials each, target valid_acc >= {target} "
          f"({args.target_fraction:.0%} of the attainable {attainable:.4f})")  # fmt: skip
    print("strategy  seed  best    trials-to-target  seconds-to-target")
    results: dict[str, list] = {"Bayesian": [], "Random": []}
    for seed in range(args.seeds):
        for strategy in results:
            name = f"{strategy.lower()}-{seed}"
            run_tuning_job(sagemaker, source_uri, name, args, Strategy=strategy, RandomSeed=seed)
            best, count, elapsed = time_to_target(sagemaker, name, target)
            results[strategy].append((best, count, elapsed))
            reached = f"{count:16d}  {elapsed:17.2f}" if count else f"{'not reached':>16}"
            print(f"{strategy:8}  {seed:4d}  {best:.4f}  {reached}")
    for strategy, rows in results.items():
        reached = [row for row in rows if row[1] is not None]
        mean_best = statistics.mean(row[0] for row in rows)
        line = f"{strategy:8} mean best {mean_best:.4f}; reached target {len(reached)}/{len(rows)}"
        if reached:
            line += (
                f", mean {statistics.mean(r[1] for r in reached):.1f} trials"
                f" / {statistics.mean(r[2] for r in reached):.1f} s"
            )
        print(line)


def strategies_alone(args) -> None:
    print(f"\n== strategies alone: mean best of {args.trials} suggestions, "
          f"{args.strategy_seeds} seeds")  # fmt: skip
    for strategy in ("Bayesian", "Random"):
        bests = []
        for seed in range(args.strategy_seeds):
            request = tuning_request(
                "alone", BUCKET, "s3://unused/sourcedir.tar.gz", strategy=strategy,
                max_jobs=args.trials, RandomSeed=seed, ParameterRanges=PARAMETER_RANGES,
            )  # fmt: skip
            search = TuningStrategy(TuningPlan.from_request(request))
            best = 0.0
            for _ in range(args.trials):
                trial, tuned = search.suggest()
                value = final_accuracy(
                    float(tuned["lr"]), int(tuned["batch-size"]), tuned["optimizer"]
                )
                search.finish(trial, value, stopped_early=False)
                best = max(best, value)
            bests.append(best)
        print(f"{strategy:8} mean best {statistics.mean(bests):.4f} "
              f"(worst seed {min(bests):.4f})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--strategy-seeds", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--epoch-seconds", type=float, default=0.3)
    parser.add_argument("--target-fraction", type=float, default=0.95)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-tuning-") as scratch:
        runtime = RuntimeProcess(Path(scratch) / "state").start()
        try:
            s3, sagemaker = runtime.client("s3"), runtime.client("sagemaker")
            s3.create_bucket(Bucket=BUCKET)
            s3.put_object(Bucket=BUCKET, Key="data/train/placeholder.txt", Body=b"1")
            source_uri = upload_trial_source(s3, BUCKET)
            parallel_efficiency(sagemaker, source_uri, args)
            bayesian_vs_random(sagemaker, source_uri, args)
        finally:
            runtime.stop()
    strategies_alone(args)
    print(f"\nbenchmark took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
