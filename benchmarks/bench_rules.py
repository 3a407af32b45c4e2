"""How often each Debugger rule is right, over a labelled corpus of training runs.

Records a corpus through the local runtime (real training jobs of sagemaker_code/train.py with
the Debugger hook saving what the rules read, see COLLECTIONS) once, caches the saved tensors, and
evaluates every tensor rule of the project's rule engine over each job's tensors, twice: with
AWS's default parameters and with the local profile's (include/local.yaml). The corpus:

- healthy runs, spread over what the tuner may pick: every backbone (resnets and mobilenet_v2
  from scratch, each at a picture size and length it learns at: HEALTHY_RUN_SIZE), batch sizes
  8-64, learning rates 1e-4 to 1e-2, three seeds, a dataset the size of the demo's and a larger
  one;
- runs with one planted fault each, ``--runs-per-fault`` of every kind (seed and data vary, and
  the backbone except in the long runs below): a diverging learning rate, dead activations
  (vanishing gradients), zero weight initialisation, a frozen network (learning rate 0),
  overfitting (two training pictures per class, many epochs) and overtraining (many epochs
  after convergence). The faults that are not a plain setting are planted by the benchmark's
  own entry point, rule_faults/plant_fault.py.
  LossNotDecreasing's two faults run LONG_RUN_STEPS steps: a frozen loss only moves by mini-batch
  noise, and the rule needs a stall in two comparisons ``num_steps`` apart in a row to call it
  one (see the rule's docstring); 18 steps gave the local profile's ``num_steps: 20`` none.

The rules judge saved tensors, not live jobs, so each run is recorded once and kept under
``--corpus`` (benchmarks/results/rule-corpus/<run>-<key>/: the job's record and debug output),
where the key hashes what shapes the run's tensors: its settings, the collections, its dataset
and the training code shipped to the jobs. Changing a rule re-evaluates the kept corpus without
training; changing a run, or what trains, records just the runs it changes; an interrupted
recording keeps the runs it finished. A run's verdicts are kept beside its tensors too, under a
key of the rule engine's code and both parameter sets: a run already judged by the same rules is
not judged again, so judging a recording as it grows (``--kept-only``) only judges what is new.

Prints, per parameter set, a Markdown table (the README's rules section quotes it) with one row
per rule: its false-positive rate on the healthy runs, its detection rate on each fault (the
rule's own target fault marked with *) and its confusion counts (TP/FN over the runs of its
target faults, FP/TN over the healthy runs), and how many healthy runs the default gate policy
(include/pipeline.yaml `rules.policy`) blocks or asks about; and the seconds the recording took
beside those of the evaluation. Writes everything to
``benchmarks/results/rules.json``. Two environments, as in real life: the runtime and the training
jobs are driven from the Airflow one, the rules are evaluated in the container one (smdebug),
``--jobs`` processes each judging a share of the corpus::

    nice -n 10 .venvs/airflow/bin/python benchmarks/bench_rules.py [--jobs 2] [--record]

(``make bench-rules``.)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import json
import math
import shutil
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
# Every collection the rules need (include/pipeline.yaml rules.collections), every 2 steps as the
# local profile's collection_overrides save them (AWS's save_interval of 500 would save only the
# first step of runs this small). Both parameter sets judge the same tensors. Two savings that
# change no rule's input: gradients are saved as their mean absolute value only (an smdebug
# reduction, which is all VanishingGradient reads), and relu inputs only up to step 20, which
# holds the first PoorWeightInitialization `steps` (10, in both parameter sets) training steps. Full
# resnet gradients and activations every 2 steps filled ~30 GB and took most of the evaluation.
COLLECTIONS = [
    {"CollectionName": "losses", "CollectionParameters": {"save_interval": "2"}},
    {"CollectionName": "gradients",
     "CollectionParameters": {"save_interval": "2", "reductions": "abs_mean"}},
    {"CollectionName": "relu_input",
     "CollectionParameters": {"include_regex": ".*relu_input", "save_interval": "2",
                              "end_step": "20"}},
]  # fmt: skip
DATASETS = {  # name -> (classes, pictures per class per split)
    "demo": (4, {"train": 24, "valid": 8, "test": 4}),
    "larger": (8, {"train": 40, "valid": 12, "test": 4}),
    "tiny-train": (4, {"train": 2, "valid": 16, "test": 4}),
}
IMAGE_SIZE = 16  # pictures this small keep a resnet50 run under a minute on two cores
# The (image size, epochs) a healthy run of a backbone gets where IMAGE_SIZE and 4 epochs are too
# little for it to learn from scratch, so that "healthy" means a model that learns. At IMAGE_SIZE
# for 4 epochs these stayed at chance on the validation split (0.09-0.25); with these settings
# they reached, with the corpus's own batch sizes, learning rates and data (train.py, 2026-12-02):
# resnet34 0.91 and 0.91, resnet50 0.69 and 0.75, mobilenet_v2 0.86 and 0.94. mobilenet_v2
# needs the most: at 16 or 32 px its last feature map is 1x1 and it still stays at chance.
# resnet18 and simplecnn learn at IMAGE_SIZE in 4 epochs.
HEALTHY_RUN_SIZE = {"resnet34": (32, 12), "resnet50": (32, 12), "mobilenet_v2": (64, 12)}
# Training steps of LossNotDecreasing's faults: 16 comparisons with the local profile's
# num_steps 20, 32 with AWS's 10.
LONG_RUN_STEPS = 320
LONG_RUN_BATCH = 8
SHORT_FAULT_BACKBONES = ("simplecnn", "simplecnn", "resnet18", "simplecnn", "simplecnn",
                         "mobilenet_v2")  # fmt: skip
CORPUS = REPO_ROOT / "benchmarks" / "results" / "rule-corpus"
JOB_RECORD = "job.json"  # in a run's folder, written once its debug output is there
DEBUG_OUTPUT = "debug-output"
VERDICTS = "verdicts"  # in a run's folder: verdicts-<key>.json, its outcomes (see verdicts_name)


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
    parser.add_argument(
        "--jobs", type=int, default=2, help="training jobs, and rule evaluators, at a time"
    )
    parser.add_argument(
        "--corpus", type=Path, default=CORPUS,
        help="where recorded corpora are kept, one folder per corpus key (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--record", action="store_true", help="record the corpus again even if it is kept"
    )
    parser.add_argument(
        "--kept-only", action="store_true",
        help="judge only the runs already kept, recording none (a partial corpus: the table "
        "says how many runs of each kind it holds)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.healthy < 20 or args.runs_per_fault < 1 or args.jobs < 1:
        parser.error("--healthy must be >= 20, --runs-per-fault and --jobs >= 1")
    return args


def hyperparameters(
    backbone: str,
    batch: int,
    lr: float,
    seed: int,
    epochs: int,
    image_size: int = IMAGE_SIZE,
    **extra,
) -> dict:
    values = {
        "backbone": backbone,
        "batch-size": batch,
        "lr": lr,
        "seed": seed,
        "epochs": epochs,
        "image-size": image_size,
        "freeze": "full",
        "pretrained-weights": "none",
        "optimizer": "adam",
        "num-workers": 1,
        **extra,
    }
    return {name: json.dumps(value) for name, value in values.items()}


def healthy_runs(count: int) -> list[Run]:
    """`count` runs cycling through backbones, batch sizes, learning rates, seeds and data.

    The deep resnets cost the most: each of resnet34 and resnet50 gets one run in ten, and so
    does mobilenet_v2, all three at their HEALTHY_RUN_SIZE (12 epochs at 32 or 64 px: 30 s to
    2.5 min a run on two busy cores). The learning rates shift by one every ten runs, so that a
    backbone does not always meet the same one (ten backbones, five rates: without the shift,
    resnet50 only ever got 1e-2).
    """
    batches, lrs = (8, 16, 32, 64), (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
    backbones = ("simplecnn", "resnet18", "simplecnn", "resnet34", "resnet18",
                 "simplecnn", "mobilenet_v2", "simplecnn", "resnet18", "resnet50")  # fmt: skip
    runs = []
    for i in range(count):
        backbone = backbones[i % len(backbones)]
        image_size, epochs = HEALTHY_RUN_SIZE.get(backbone, (IMAGE_SIZE, 4))
        hp = hyperparameters(backbone, batches[i % len(batches)], lrs[(i + i // 10) % len(lrs)],
                             seed=i % 3, epochs=epochs, image_size=image_size)  # fmt: skip
        runs.append(Run(f"healthy-{i:02d}", None, ("demo", "larger")[i // 2 % 2], hp))
    return runs


def long_run_epochs(dataset: str) -> int:
    """Epochs that give LONG_RUN_STEPS training steps of LONG_RUN_BATCH pictures on `dataset`."""
    classes, per_class = DATASETS[dataset]
    return math.ceil(LONG_RUN_STEPS / math.ceil(classes * per_class["train"] / LONG_RUN_BATCH))


def fault_hyperparameters(fault: str, backbone: str, seed: int, dataset: str) -> dict[str, str]:
    """A faulty run's settings; the planted faults also name themselves (`fault`)."""
    if fault == "diverging-lr":
        epochs = long_run_epochs(dataset)
        return hyperparameters(backbone, LONG_RUN_BATCH, 5.0, seed, epochs, optimizer="sgd")
    if fault == "frozen":
        epochs = long_run_epochs(dataset)
        return hyperparameters(backbone, LONG_RUN_BATCH, 1e-3, seed, epochs, fault=fault)
    if fault == "overfitting":  # with the tiny-train data: 2 pictures per class
        return hyperparameters(backbone, 8, 3e-3, seed, 30)
    if fault == "overtraining":
        return hyperparameters("simplecnn", 16, 3e-3, seed, 15)
    return hyperparameters(backbone, 16, 1e-3, seed, 3, fault=fault)


def fault_runs(per_fault: int) -> list[Run]:
    """The long runs (LossNotDecreasing's faults) are all simplecnn: 320 resnet18 steps cost
    several minutes of a shared 2-core machine each. The others cycle over SHORT_FAULT_BACKBONES:
    of ten runs, two are resnet18 and one mobilenet_v2 (no dearer than resnet18 at IMAGE_SIZE)."""
    runs = []
    for fault, i in itertools.product(FAULTS, range(per_fault)):
        long_run = fault in ("diverging-lr", "frozen")
        cycle = SHORT_FAULT_BACKBONES
        backbone = "simplecnn" if long_run else cycle[i % len(cycle)]
        dataset = "tiny-train" if fault == "overfitting" else ("demo", "larger")[i // 2 % 2]
        hp = fault_hyperparameters(fault, backbone, i, dataset)
        runs.append(Run(f"{fault}-{i:02d}", fault, dataset, hp))
    return runs


def recording_order(runs: list[Run]) -> list[Run]:
    """Round robin over the healthy runs and the fault kinds, so that the runs a recording has
    finished when it is interrupted are a sample of the whole corpus, not its first kinds."""
    by_kind = [[run for run in runs if run.fault == kind] for kind in (None, *FAULTS)]
    # At least one a round: re-recording only some fault runs leaves no healthy run to share.
    fault_rounds = max(1, *(len(kind) for kind in by_kind[1:]))
    healthy_per_round = max(1, math.ceil(len(by_kind[0]) / fault_rounds))
    by_kind[0] = [by_kind[0][i : i + healthy_per_round]
                  for i in range(0, len(by_kind[0]), healthy_per_round)]  # fmt: skip
    rounds = itertools.zip_longest(*by_kind)
    ordered = []
    for healthy_share, *faults in rounds:
        ordered.extend([*(healthy_share or []), *(run for run in faults if run)])
    return ordered


def training_code() -> dict[str, Path]:
    """What the jobs run, by name in the source dir: sagemaker_code/ without the rule engine
    (the jobs do not import it; it must not change the corpus key) and the fault planter."""
    files = {
        path.relative_to(SAGEMAKER_CODE).as_posix(): path
        for path in sorted(SAGEMAKER_CODE.rglob("*.py"))
        if "__pycache__" not in path.parts
        and path.parts[len(SAGEMAKER_CODE.parts)] not in ("rules", "evaluate_rules.py")
    }
    return {**files, PLANT_FAULT.name: PLANT_FAULT}


def sourcedir_archive() -> bytes:
    """training_code() as a script-mode source dir."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, path in training_code().items():
            tar.add(path, arcname=name)
    return buffer.getvalue()


def run_folder(corpus: Path, run: Run, code: dict[str, str]) -> Path:
    """Where `run` is kept: named by everything that shapes its tensors (`code`: file hashes)."""
    shaping = {
        "run": asdict(run),
        "collections": COLLECTIONS,
        "dataset": DATASETS[run.dataset],
        "image_size": IMAGE_SIZE,
        "code": code,
    }
    key = hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]
    return corpus / f"{run.name}-{key}"


def code_hashes() -> dict[str, str]:
    return {
        name: hashlib.sha256(path.read_bytes()).hexdigest()
        for name, path in training_code().items()
    }


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


def train_corpus(runtime, runs: list[Run], folders: dict[str, Path], parallel: int) -> None:
    """Run every job, `parallel` at a time; keep each one's debug output and record
    ({status, failure, seconds, final metrics}) in its folder (`folders`, by run name), the
    record last."""
    sagemaker, s3 = runtime.client("sagemaker"), runtime.client("s3")
    pending, running = list(runs), {}
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
            job = {
                "status": described["TrainingJobStatus"],
                "failure": described.get("FailureReason", ""),
                "seconds": round(time.monotonic() - started, 1),
                "metrics": {
                    m["MetricName"]: m["Value"] for m in described.get("FinalMetricDataList", [])
                },
            }
            download(s3, f"debug/{name}/debug-output/", folders[name] / DEBUG_OUTPUT)
            folders[name].mkdir(parents=True, exist_ok=True)  # a job that saved no tensors
            (folders[name] / JOB_RECORD).write_text(json.dumps(job))
            print(
                f"  {name:<22} {job['status']:<9} {job['seconds']:6.1f} s  {job['metrics']}"
                f"{job['failure']}",
                flush=True,
            )


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


def record(runs: list[Run], folders: dict[str, Path], parallel: int) -> float:
    """A fresh runtime (in a temporary folder: its S3 copy is not kept), the inputs uploaded,
    every run trained into its folder (see train_corpus), replacing what the folder held and
    any folder of the same run under another key. Returns the seconds it took."""
    started = time.monotonic()
    for run in runs:
        for stale in folders[run.name].parent.glob(f"{run.name}-*"):
            shutil.rmtree(stale)
    with tempfile.TemporaryDirectory(prefix="bench-rules-") as tmp:
        runtime = RuntimeProcess(Path(tmp) / "runtime").start()
        try:
            runtime.client("s3").create_bucket(Bucket=BUCKET)
            upload_inputs(runtime.client("s3"), Path(tmp) / "data")
            print(f"recording {len(runs)} training jobs, {parallel} at a time ...", flush=True)
            train_corpus(runtime, runs, folders, parallel)
        finally:
            runtime.stop()
    return time.monotonic() - started


def verdicts_name() -> str:
    """The file, in a run's folder, of its outcomes under the current rules: named by a hash of
    what decides them besides the tensors (the rule engine's code, this benchmark's evaluator
    and both parameter sets)."""
    engine = [*sorted((SAGEMAKER_CODE / "rules").glob("*.py")), EVALUATE_CORPUS]
    deciding = {
        "code": {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in engine},
        "parameter_sets": parameter_sets(),
    }
    key = hashlib.sha256(json.dumps(deciding, sort_keys=True).encode()).hexdigest()[:16]
    return f"{VERDICTS}-{key}.json"


def evaluate(folders: dict[str, Path], parallel: int, work: Path) -> tuple[dict[str, dict], int]:
    """Every tensor rule, both parameter sets, over every job (rule_faults/evaluate_corpus.py),
    in `parallel` container processes that each judge every `parallel`-th job, but a job whose
    folder keeps its verdicts under the current rules (verdicts_name) is not judged again.
    Returns the outcomes of all jobs and how many were judged now."""
    kept = {name: folder / verdicts_name() for name, folder in folders.items()}
    names = sorted(name for name, verdicts in kept.items() if not verdicts.exists())
    evaluators = []
    for share in range(min(parallel, len(names))):
        manifest = work / f"manifest-{share}.json"
        manifest.write_text(json.dumps({
            "parameter_sets": parameter_sets(),
            "debug_outputs": {name: str(folders[name] / DEBUG_OUTPUT)
                              for name in names[share::parallel]},
        }))  # fmt: skip
        command = [str(CONTAINER_PYTHON), str(EVALUATE_CORPUS), str(manifest)]
        evaluators.append((manifest, subprocess.Popen(command, stdout=subprocess.DEVNULL)))
    judged = {}
    for manifest, evaluator in evaluators:
        if evaluator.wait() != 0:
            raise SystemExit(f"{EVALUATE_CORPUS.name} failed on {manifest}: see its output")
        judged.update(json.loads(manifest.with_suffix(".outcomes.json").read_text()))
    for name in names:
        for stale in folders[name].glob(f"{VERDICTS}-*.json"):
            stale.unlink()
        own = {key: outcome for key, outcome in judged.items() if key.split("|")[0] == name}
        kept[name].write_text(json.dumps(own))
    outcomes = {}
    for verdicts in kept.values():
        outcomes.update(json.loads(verdicts.read_text()))
    return outcomes, len(names)


def judging(judged: int, seconds: float) -> str:
    kept = "" if judged else ", all verdicts kept from an earlier evaluation by the same rules"
    return f"the rules judged {judged} runs now in {seconds:.0f} s{kept}"


def speedup(recording_seconds_per_run: float, judged: int, seconds: float) -> str:
    """Judging a run beside recording one, both `--jobs` at a time."""
    if not judged:
        return ""
    return f", {recording_seconds_per_run / (seconds / judged):.1f}x faster a run than recording it"


def rate(hits: int, total: int) -> str:
    return f"{hits}/{total}" if total else "-"


def markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def table(runs: list[Run], outcomes: dict, set_name: str, policy: dict[str, str]) -> Iterator[str]:
    """One row per rule: false positives on healthy runs, detections per fault kind, and the
    rule's confusion counts (positives: runs of its target faults; negatives: healthy runs; the
    other faults' runs are in neither). In Markdown, as the README's rules section shows it."""

    def fired(run: Run, rule: str) -> bool:  # a finding: IssuesFound, or Error (same policy)
        return outcomes[f"{run.name}|{set_name}|{rule}"]["status"] != "NoIssuesFound"

    healthy = [run for run in runs if run.fault is None]
    by_fault = {fault: [run for run in runs if run.fault == fault] for fault in FAULTS}
    per_fault = ", ".join(f"{fault} {len(by_fault[fault])}" for fault in FAULTS)
    yield f"**{set_name}**: healthy runs {len(healthy)}; runs per fault: {per_fault}\n"
    header = ["rule (policy)", "healthy: fired", *FAULTS, "TP", "FN", "FP", "TN"]
    yield markdown_row(header)
    yield markdown_row(["---"] * len(header))
    for rule in TENSOR_RULES:
        cells = [rate(sum(fired(r, rule) for r in healthy), len(healthy))]
        for fault in FAULTS:
            mark = "*" if fault in TARGET_FAULTS[rule] else ""
            cells.append(
                rate(sum(fired(r, rule) for r in by_fault[fault]), len(by_fault[fault])) + mark
            )
        targets = [r for fault in TARGET_FAULTS[rule] for r in by_fault[fault]]
        caught = sum(fired(r, rule) for r in targets)
        false_alarms = sum(fired(r, rule) for r in healthy)
        counts = (caught, len(targets) - caught, false_alarms, len(healthy) - false_alarms)
        yield markdown_row([f"{rule} ({policy[rule]})", *cells, *map(str, counts)])
    yield ""
    for decision in ("block", "approve"):
        hit = [
            r.name
            for r in healthy
            if any(fired(r, rule) for rule in TENSOR_RULES if policy[rule] == decision)
        ]
        yield f"- healthy runs the default gate policy would {decision}: {len(hit)} {hit}"


def main() -> int:
    args = parse_args()
    runs = healthy_runs(args.healthy) + fault_runs(args.runs_per_fault)
    policy = yaml.safe_load((REPO_ROOT / "include" / "pipeline.yaml").read_text())["rules"][
        "policy"
    ]
    code = code_hashes()
    folders = {run.name: run_folder(args.corpus, run, code) for run in runs}
    missing = [run for run in runs if args.record or not (folders[run.name] / JOB_RECORD).exists()]
    print(f"{len(runs) - len(missing)} of {len(runs)} runs kept in {args.corpus}", flush=True)
    if args.kept_only:
        runs = [run for run in runs if run not in missing]
        folders = {run.name: folders[run.name] for run in runs}
        missing = []
    recorded = record(recording_order(missing), folders, args.jobs) if missing else 0.0
    jobs = {name: json.loads((folder / JOB_RECORD).read_text()) for name, folder in folders.items()}
    failed = {name: job["failure"] for name, job in jobs.items() if job["status"] != "Completed"}
    started = time.monotonic()
    print(f"evaluating the rules, {args.jobs} evaluators at a time ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-rules-") as tmp:
        outcomes, judged = evaluate(folders, args.jobs, Path(tmp))
    evaluated = time.monotonic() - started
    job_seconds = sum(job["seconds"] for job in jobs.values())
    print(
        f"\n{len(runs)} runs: {len(missing)} recorded now in {recorded:.0f} s; the corpus took "
        f"{job_seconds:.0f} s of training job time to record (about "
        f"{job_seconds / args.jobs:.0f} s at {args.jobs} at a time); {judging(judged, evaluated)}"
        f"{speedup(job_seconds / args.jobs / max(len(runs), 1), judged, evaluated)}; "
        f"failed jobs: {failed or 'none'}"
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
                "recorded_seconds": recorded,
                "job_seconds": job_seconds,
                "evaluated_seconds": evaluated,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
