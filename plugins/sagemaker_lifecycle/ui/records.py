"""What the model-run page shows, gathered from what the pipeline records (pure).

A `RunRecord` is one DAG run as its tasks' XComs describe it: the run's settings, the snapshot it
trained on, the tuning and training summaries, the gate's verdict, the approval, the model, the
endpoint and the evaluation headline. `RunDetails` adds what only the run page needs and the
plugin reads from AWS: the catalog entry, the tuning trials, the training curves, the full
evaluation report and the explanation pictures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DAG_ID = "dog_breed_classifier"
# Where Airflow's api-server mounts the plugin's app (model_runs_plugin.py).
URL_PREFIX = "/model-runs"
# The task whose XCom (key return_value, unless named) feeds each part of the record.
SOURCES = {
    "settings": ("resolve_settings", "return_value"),
    "dataset": ("stage.stage_dataset", "return_value"),
    "tuning": ("train.tune_hyperparameters", "return_value"),
    "training": ("train.train_best_model", "return_value"),
    "verdict": ("gate.gate_on_rules", "verdict"),
    "approval": ("gate.approve_deployment", "return_value"),
    "model": ("deploy.create_model", "return_value"),
    # What the endpoint serves once the promotion settled it (deploy_endpoint's config also
    # holds the challenger's weight-0 variant, which no user ever reached).
    "endpoint": ("promote.promote_or_withdraw", "return_value"),
    "evaluation": ("evaluate.evaluate", "return_value"),
}
XCOM_TASKS = sorted({task for task, _ in SOURCES.values()})
APPROVAL_TASK = "gate.approve_deployment"
# The prefixes (under the run's bucket) the plugin may read: what the pipeline writes there.
JOB_OUTPUT_PREFIX = "jobs/"
EVALUATION_PREFIX = "evaluation/"
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg")


@dataclass
class RunRecord:
    run_id: str
    state: str
    run_after: str
    settings: dict | None = None
    dataset: dict | None = None
    tuning: dict | None = None
    training: dict | None = None
    verdict: dict | None = None
    approval: dict | None = None
    approval_state: str | None = None
    model: dict | None = None
    endpoint: dict | None = None
    evaluation: dict | None = None

    @property
    def bucket(self) -> str | None:
        return (self.settings or {}).get("aws", {}).get("bucket")

    @property
    def deployed(self) -> bool:
        """Whether this run's endpoint deployment went through."""
        return self.endpoint is not None

    @property
    def rule_statuses(self) -> dict[str, str]:
        return {o["rule"]: o["status"] for o in (self.verdict or {}).get("outcomes", [])}

    @property
    def headline_metric(self) -> tuple[str, float] | None:
        """The metric to compare runs by: evaluation accuracy, else the training's valid_acc."""
        if self.evaluation:
            return "accuracy", self.evaluation["accuracy"]
        metrics = (self.training or {}).get("FinalMetrics", {})
        return ("valid_acc", metrics["valid_acc"]) if "valid_acc" in metrics else None

    def readable_prefixes(self) -> tuple[str, ...]:
        """Key prefixes of the run's bucket the plugin streams (anything else is refused)."""
        dataset_prefix = (self.settings or {}).get("dataset", {}).get("s3_prefix", "datasets")
        return (JOB_OUTPUT_PREFIX, EVALUATION_PREFIX, f"{dataset_prefix.strip('/')}/catalog/")


def run_record(
    run_id: str,
    state: str,
    run_after: str,
    xcoms: Mapping[tuple[str, str], Any],
    task_states: Mapping[str, str],
) -> RunRecord:
    """The record of one run from its XComs ((task_id, key) -> value) and task states."""
    parts = {name: xcoms.get(source) for name, source in SOURCES.items()}
    return RunRecord(run_id=run_id, state=state, run_after=run_after,
                     approval_state=task_states.get(APPROVAL_TASK), **parts)  # fmt: skip


@dataclass
class RunDetails:
    """What the run page adds to the record, read from S3, SageMaker and CloudWatch."""

    catalog_entry: dict | None = None
    trials: list[dict] = field(default_factory=list)  # TrainingJobSummaries of the tuning job
    # metric -> (epoch, value), one point per epoch
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    report: dict | None = None  # evaluation report.json
    pictures: list[str] = field(default_factory=list)  # s3:// URIs of explanation pictures
    log_tail: list[str] = field(default_factory=list)  # the training job's last log lines
    problems: list[str] = field(default_factory=list)  # what could not be read, and why


def checked_key(requested: str, prefixes: tuple[str, ...]) -> str:
    """`requested` when it is a plain S3 key under one of `prefixes`; ValueError saying why not.

    Refused: empty, absolute or `.`/`..` segments (no traversal out of a prefix, even though S3
    itself would take such a key literally), backslashes, and keys outside every prefix."""
    segments = requested.split("/")
    if not requested or requested.startswith("/") or "\\" in requested:
        raise ValueError(f"{requested!r} is not a plain S3 key")
    if any(segment in ("", ".", "..") for segment in segments[:-1]) or segments[-1] in (".", ".."):
        raise ValueError(f"{requested!r} has an empty, '.' or '..' segment")
    if not requested.startswith(prefixes):
        raise ValueError(f"{requested!r} is outside the project's prefixes {', '.join(prefixes)}")
    return requested


def history_rows(records: list[RunRecord]) -> list[dict[str, Any]]:
    """Oldest first: the run, its headline metric, rule statuses and whether it deployed."""
    return [
        {"run_id": r.run_id, "run_after": r.run_after, "state": r.state,
         "metric": r.headline_metric, "rules": r.rule_statuses, "deployed": r.deployed}
        for r in sorted(records, key=lambda record: record.run_after)
    ]  # fmt: skip
