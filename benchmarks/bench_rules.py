"""How often each Debugger rule is right, over a labelled corpus of training runs.

Trains a corpus through the local runtime (real training jobs of sagemaker_code/train.py with the
Debugger hook saving losses, gradients and relu inputs every 2 steps) and evaluates every tensor
rule of the project's rule engine over each job's saved tensors, twice: with AWS's default
parameters and with the local profile's (include/local.yaml). The corpus:

- healthy runs, spread over what the tuner may pick: every backbone (resnets from scratch),
  batch sizes 8-64, learning rates 1e-4 to 1e-2, three seeds, the demo dataset and a larger one;
- runs with one planted fault each, ``--runs-per-fault`` of every kind (seed, backbone and data
  vary): a diverging learning rate, dead activations (vanishing gradients), zero weight
  initialisation, a frozen network (learning rate 0), overfitting (two training pictures per
  class, many epochs) and overtraining (many epochs after convergence). The faults that are not
  a plain setting are planted by the benchmark's own entry point, rule_faults/plant_fault.py.

Prints, per parameter set, one row per rule: its false-positive rate on the healthy runs and its
detection rate on each fault (the rule's own target fault marked with *), and how many healthy
runs the default gate policy (include/pipeline.yaml `rules.policy`) blocks or asks about. Writes
everything to ``benchmarks/results/rules.json``. Two environments, as in real life: the runtime
and the training jobs are driven from the Airflow one, the rules are evaluated in the container
one (smdebug), in one process for the whole corpus::

    nice .venvs/airflow/bin/python benchmarks/bench_rules.py [--runs-per-fault 10] [--jobs 2]

Measured here (2 cores, shared): 80 runs trained in 29 min and judged in 17 min; the corpus (the
runtime's S3 copy and the downloaded debug outputs, mostly resnet gradients) takes ~30 GB of
temporary disk, removed at the end unless --work keeps it.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests"), str(REPO_ROOT / "tests" / "runtime")]

from runtime_support import BUCKET, RuntimeProcess, training_request  # noqa: E402

from demo.dataset import make_dataset  # noqa: E402

RESULTS = REPO_ROOT / "benchmarks" / "results" / "rules.json"
CONTAINER_PYTHON = REPO_ROOT / ".venvs" / "container" / "bin" / "python"
SAGEMAKER_CODE = REPO_ROOT / "sagemaker_code"
RULE_FAULTS = Path(__file__).resolve().parent / "rule_faults"
PLANT_FAULT = RULE_FAULTS / "plant_fault.py"
EVALUATE_CORPUS = RULE_FAULTS / "evaluate_corpus.py"
TENSOR_RULES = (
    "VanishingGradient",
    "PoorWeightInitialization",
    "LossNotDecreasing",
    "Overfit",
    "Overtraining",
)
# The faults each rule is there to catch.
TARGET_FAULTS = {
    "VanishingGradient": ("dead-activations",),
    "PoorWeightInitialization": ("zero-init",),
    "LossNotDecreasing": ("diverging-lr", "frozen"),
    "Overfit": ("overfitting",),
    "Overtraining": ("overtraining",),
}
FAULTS = ("diverging-lr", "dead-activations", "zero-init", "frozen", "overfitting", "overtraining")
# Every collection the rules need (include/pipeline.yaml rules.collections). AWS's save_interval
# of 500 would save only the first step of runs this small: losses and relu inputs are saved every
# 2 steps (as the local profile's collection_overrides do), gradients every 10 (a resnet's
# gradients every 2 steps fill gigabytes). Both parameter sets judge the same tensors.
COLLECTIONS = [
    {"CollectionName": "losses", "CollectionParameters": {"save_interval": "2"}},
    {"CollectionName": "gradients", "CollectionParameters": {"save_interval": "10"}},
    {"CollectionName": "relu_input",
     "CollectionParameters": {"include_regex": ".*relu_input", "save_interval": "2"}},
]  # fmt: skip
DATASETS = {  # name -> (classes, pictures per class per split)
    "demo": (4, {"train": 24, "valid": 8, "test": 4}),
    "larger": (8, {"train": 40, "valid": 12, "test": 4}),
    "tiny-train": (4, {"train": 2, "valid": 16, "test": 4}),
}
IMAGE_SIZE = 16  # pictures this small keep a resnet50 run under a minute on two cores


@dataclass(frozen=True)
class Run:
    """One training job of the corpus; `fault` is None for a healthy run."""

    name: str
    fault: str | None
    dataset: str
    hyperparameters: dict[str, str] = field(default_factory=dict)

    @property
    def program(self) -> str:
        planted = self.fault in ("dead-activations", "zero-init", "frozen")
        return PLANT_FAULT.name if planted else "train.py"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--healthy", type=int, default=20, help="healthy runs (>= 20)")
    parser.add_argument("--runs-per-fault", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2, help="training jobs at a time")
    parser.add_argument(
        "--work", type=Path,
        help="keep the corpus (debug outputs) here; if it already holds one, only re-evaluate "
        "the rules over it (to compare formulas without training again)",
    )  # fmt: skip
    return parser.parse_args()


def hyperparameters(backbone: str, batch: int, lr: float, seed: int, epochs: int, **extra) -> dict:
    values = {
        "backbone": backbone,
        "batch-size": batch,
        "lr": lr,
        "seed": seed,
        "epochs": epochs,
        "image-size": IMAGE_SIZE,
        "freeze": "full",
        "pretrained-weights": "none",
        "optimizer": "adam",
        "num-workers": 1,
        **extra,
    }
    return {name: json.dumps(value) for name, value in values.items()}


def healthy_runs(count: int) -> list[Run]:
    """`count` runs cycling through backbones, batch sizes, learning rates, seeds and data.

    The deep resnets cost the most: each of resnet34 and resnet50 gets one run in ten.
    """
    batches, lrs = (8, 16, 32, 64), (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
    backbones = ("simplecnn", "resnet18", "simplecnn", "resnet34", "resnet18",
                 "simplecnn", "resnet18", "simplecnn", "resnet18", "resnet50")  # fmt: skip
    runs = []
    for i in range(count):
        hp = hyperparameters(backbones[i % len(backbones)], batches[i % len(batches)],
                             lrs[i % len(lrs)], seed=i % 3, epochs=4)  # fmt: skip
        runs.append(Run(f"healthy-{i:02d}", None, ("demo", "larger")[i // 2 % 2], hp))
    return runs


def fault_hyperparameters(fault: str, backbone: str, seed: int) -> dict[str, str]:
    """A faulty run's settings; the planted faults also name themselves (`fault`)."""
    if fault == "diverging-lr":
        return hyperparameters(backbone, 16, 5.0, seed, 3, optimizer="sgd")
    if fault == "overfitting":  # with the tiny-train data: 2 pictures per class
        return hyperparameters(backbone, 8, 3e-3, seed, 30)
    if fault == "overtraining":
        return hyperparameters("simplecnn", 16, 3e-3, seed, 25)
    return hyperparameters(backbone, 16, 1e-3, seed, 3, fault=fault)


def fault_runs(per_fault: int) -> list[Run]:
    runs = []
    for fault, i in itertools.product(FAULTS, range(per_fault)):
        backbone = ("simplecnn", "simplecnn", "resnet18")[i % 3]
        dataset = "tiny-train" if fault == "overfitting" else ("demo", "larger")[i // 2 % 2]
        runs.append(
            Run(f"{fault}-{i:02d}", fault, dataset, fault_hyperparameters(fault, backbone, i))
        )
    return runs


def sourcedir_archive() -> bytes:
    """sagemaker_code/ plus the fault-planting entry point, as a script-mode source dir."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(SAGEMAKER_CODE.rglob("*.py")):
            if "__pycache__" not in path.parts:
                tar.add(path, arcname=path.relative_to(SAGEMAKER_CODE).as_posix())
        tar.add(PLANT_FAULT, arcname=PLANT_FAULT.name)
    return buffer.getvalue()


def upload_inputs(s3, work: Path) -> None:
    for name, (classes, per_class) in DATASETS.items():
        root = make_dataset(
            work / name, num_classes=classes, images_per_class=per_class, image_size=IMAGE_SIZE
        )
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            key = f"datasets/{name}/{path.relative_to(root).as_posix()}"
            s3.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
    s3.put_object(Bucket=BUCKET, Key="code/sourcedir.tar.gz", Body=sourcedir_archive())


def job_request(run: Run) -> dict:
    request = training_request(run.name, BUCKET, "")
    request["HyperParameters"] = {
        "sagemaker_program": json.dumps(run.program),
        "sagemaker_submit_directory": json.dumps(f"s3://{BUCKET}/code/sourcedir.tar.gz"),
        **run.hyperparameters,
    }
    request["InputDataConfig"] = [
        {
            "ChannelName": split,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://{BUCKET}/datasets/{run.dataset}/{split}",
                }
            },
        }
        for split in ("train", "valid")
    ]
    request["DebugHookConfig"] = {
        "S3OutputPath": f"s3://{BUCKET}/debug",
        "CollectionConfigurations": COLLECTIONS,
    }
    request["Environment"] = {"OMP_NUM_THREADS": "1"}
    request["StoppingCondition"] = {"MaxRuntimeInSeconds": 900}
    return request


def train_corpus(runtime, runs: list[Run], parallel: int, work: Path) -> dict[str, dict]:
    """Run every job, `parallel` at a time; download each one's debug output. Returns
    name -> {status, seconds, final metrics, debug_output}."""
    sagemaker, s3 = runtime.client("sagemaker"), runtime.client("s3")
    pending, running, done = list(runs), {}, {}
    while pending or running:
        while pending and len(running) < parallel:
            run = pending.pop(0)
            sagemaker.create_training_job(**job_request(run))
            running[run.name] = time.monotonic()
        time.sleep(1)
        for name, started in list(running.items()):
            described = sagemaker.describe_training_job(TrainingJobName=name)
            if described["TrainingJobStatus"] in ("InProgress", "Stopping"):
                continue
            del running[name]
            done[name] = {
                "status": described["TrainingJobStatus"],
                "failure": described.get("FailureReason", ""),
                "seconds": round(time.monotonic() - started, 1),
                "metrics": {
                    m["MetricName"]: m["Value"] for m in described.get("FinalMetricDataList", [])
                },
                "debug_output": str(download(s3, f"debug/{name}/debug-output/", work / name)),
            }
            print(
                f"  {name:<22} {described['TrainingJobStatus']:<9} "
                f"{done[name]['seconds']:6.1f} s  {done[name]['metrics']}",
                flush=True,
            )
    return done


def download(s3, prefix: str, target: Path) -> Path:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for item in page.get("Contents", []):
            path = target / item["Key"][len(prefix) :]
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(BUCKET, item["Key"], str(path))
    return target


def parameter_sets() -> dict[str, dict[str, dict[str, str]]]:
    """Rule -> parameters of AWS's defaults (none given) and of the local profile."""
    pipeline = yaml.safe_load((REPO_ROOT / "include" / "pipeline.yaml").read_text())
    local = yaml.safe_load((REPO_ROOT / "include" / "local.yaml").read_text())
    local_rules = {
        rule: {
            **pipeline["rules"]["debugger"].get(rule, {}),
            **local["rules"]["debugger"].get(rule, {}),
        }
        for rule in TENSOR_RULES
    }
    return {"AWS defaults": {rule: {} for rule in TENSOR_RULES}, "local profile": local_rules}


def train(runs: list[Run], parallel: int, work: Path) -> dict[str, dict]:
    """A fresh runtime, the inputs uploaded, every run trained (see train_corpus)."""
    runtime = RuntimeProcess(work / "runtime").start()
    try:
        runtime.client("s3").create_bucket(Bucket=BUCKET)
        upload_inputs(runtime.client("s3"), work / "data")
        print(f"training {len(runs)} jobs, {parallel} at a time ...", flush=True)
        return train_corpus(runtime, runs, parallel, work / "debug")
    finally:
        runtime.stop()


def evaluate(jobs: dict[str, dict], work: Path) -> dict[str, dict]:
    """Every tensor rule, both parameter sets, over every job (rule_faults/evaluate_corpus.py)."""
    manifest = work / "manifest.json"
    manifest.write_text(json.dumps({
        "parameter_sets": parameter_sets(),
        "debug_outputs": {name: job["debug_output"] for name, job in jobs.items()},
    }))  # fmt: skip
    print("evaluating the rules in the container environment ...", flush=True)
    subprocess.run([str(CONTAINER_PYTHON), str(EVALUATE_CORPUS), str(manifest)],
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return json.loads(manifest.with_suffix(".outcomes.json").read_text())


def rate(hits: int, total: int) -> str:
    return f"{hits}/{total}" if total else "-"


def table(runs: list[Run], outcomes: dict, set_name: str, policy: dict[str, str]) -> Iterator[str]:
    """One row per rule: false positives on healthy runs, detections per fault kind."""

    def fired(run: Run, rule: str) -> bool:  # a finding: IssuesFound, or Error (same policy)
        return outcomes[f"{run.name}|{set_name}|{rule}"]["status"] != "NoIssuesFound"

    healthy = [run for run in runs if run.fault is None]
    by_fault = {fault: [run for run in runs if run.fault == fault] for fault in FAULTS}
    yield f"== {set_name}: healthy runs {len(healthy)}, runs per fault {len(by_fault[FAULTS[0]])}"
    yield " | ".join(["rule", "policy", "healthy FP", *FAULTS])
    for rule in TENSOR_RULES:
        cells = [rate(sum(fired(r, rule) for r in healthy), len(healthy))]
        for fault in FAULTS:
            mark = "*" if fault in TARGET_FAULTS[rule] else ""
            cells.append(
                rate(sum(fired(r, rule) for r in by_fault[fault]), len(by_fault[fault])) + mark
            )
        yield " | ".join([rule, policy[rule], *cells])
    for decision in ("block", "approve"):
        hit = [
            r.name
            for r in healthy
            if any(fired(r, rule) for rule in TENSOR_RULES if policy[rule] == decision)
        ]
        yield f"healthy runs the default gate policy would {decision}: {len(hit)} {hit}"


def main() -> int:
    args = parse_args()
    runs = healthy_runs(args.healthy) + fault_runs(args.runs_per_fault)
    policy = yaml.safe_load((REPO_ROOT / "include" / "pipeline.yaml").read_text())["rules"][
        "policy"
    ]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-rules-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        jobs_file = work / "jobs.json"
        if jobs_file.exists():
            jobs = json.loads(jobs_file.read_text())
            print(f"re-evaluating the corpus in {work}", flush=True)
        else:
            jobs = train(runs, args.jobs, work)
            jobs_file.write_text(json.dumps(jobs))
        trained = time.monotonic() - started
        failed = {
            name: job["failure"] for name, job in jobs.items() if job["status"] != "Completed"
        }
        outcomes = evaluate(jobs, work)
    elapsed = time.monotonic() - started
    print(
        f"\n{len(runs)} runs trained in {trained:.0f} s, rules evaluated in "
        f"{elapsed - trained:.0f} s; failed jobs: {failed or 'none'}"
    )
    for set_name in parameter_sets():
        print("\n" + "\n".join(table(runs, outcomes, set_name, policy)))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "runs": [asdict(run) for run in runs],
                "jobs": jobs,
                "outcomes": outcomes,
                "seconds": elapsed,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
