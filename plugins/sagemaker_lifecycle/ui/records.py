"""What the model-run page shows, gathered from what the pipeline records (pure).

A `RunRecord` is one DAG run as its tasks' XComs describe it: the run's settings, the snapshot it
trained on, one `CandidateRecord` per candidate architecture (its tuning and training summaries,
the gate's verdict, the approval and the evaluation headline, and its tasks' states), the
comparison that picked the winner, the model and the endpoint. The record's tuning, training,
verdict, approval and evaluation are the winner's, or candidate 0's before compare has run.
`RunDetails` adds what only the run page needs and the plugin reads from AWS: the catalog entry,
the tuning trials, the training curves, the full evaluation report and the explanation pictures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DAG_ID = "dog_breed_classifier"
# Where Airflow's api-server mounts the plugin's app (model_runs_plugin.py).
URL_PREFIX = "/model-runs"
# Picks the winner among the candidates once each has ended (trigger rule ALL_DONE).
COMPARE_TASK = "compare.compare_candidates"
# The run-level task whose XCom (key return_value, unless named) feeds each part of the record.
SOURCES = {
    "settings": ("resolve_settings", "return_value"),
    "dataset": ("stage.stage_dataset", "return_value"),
    # The winner, the comparison table and its HTML (compare runs once every candidate ended).
    "compared": (COMPARE_TASK, "return_value"),
    "model": ("deploy.create_model", "return_value"),
    # What the endpoint serves once the promotion settled it (deploy_endpoint's config also
    # holds the challenger's weight-0 variant, which no user ever reached).
    "endpoint": ("promote.promote_or_withdraw", "return_value"),
}
# The mapped task group `candidate`: one map index per candidate architecture, in the order of
# the settings' `candidates`. Its tasks' XComs feed each candidate's part of the record.
CANDIDATE_SOURCES = {
    "tuning": ("candidate.train.tune_hyperparameters", "return_value"),
    "training": ("candidate.train.train_best_model", "return_value"),
    "verdict": ("candidate.gate.gate_on_rules", "verdict"),
    "approval": ("candidate.gate.approve_deployment", "return_value"),
    "evaluation": ("candidate.evaluate.evaluate", "return_value"),
}
# Every task of the group in pipeline order: the states shown for a candidate before compare.
CANDIDATE_TASKS = (
    "candidate.train.tune_hyperparameters",
    "candidate.train.train_best_model",
    "candidate.gate.start_rule_jobs",
    "candidate.gate.gate_on_rules",
    "candidate.gate.approve_deployment",
    "candidate.evaluate.create_model",
    "candidate.evaluate.batch_transform",
    "candidate.evaluate.evaluate",
    "candidate.evaluate.explain_predictions",
)
CANDIDATE_GROUP = "candidate."
# The tasks whose states the reader reads: the candidates', and compare's (why no winner yet).
STATE_TASKS = (*CANDIDATE_TASKS, COMPARE_TASK)
XCOM_TASKS = sorted({task for task, _ in (*SOURCES.values(), *CANDIDATE_SOURCES.values())})
APPROVAL_TASK = "candidate.gate.approve_deployment"
UNMAPPED = -1  # the map_index of a task that is not mapped
# The prefixes (under the run's bucket) the plugin may read: what the pipeline writes there.
JOB_OUTPUT_PREFIX = "jobs/"
EVALUATION_PREFIX = "evaluation/"
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg")


@dataclass
class CandidateRecord:
    """One candidate architecture of the run: its map index in the `candidate` group, its name,
    its tasks' XComs and their states (task id -> state)."""

    map_index: int
    name: str
    tuning: dict | None = None
    training: dict | None = None
    verdict: dict | None = None
    approval: dict | None = None
    evaluation: dict | None = None
    states: dict[str, str] = field(default_factory=dict)

    @property
    def approval_state(self) -> str | None:
        return self.states.get(APPROVAL_TASK)

    @property
    def task_states(self) -> list[tuple[str, str]]:
        """(task id within the group, state) in pipeline order, for the tasks that have one."""
        return [(task.removeprefix(CANDIDATE_GROUP), self.states[task])
                for task in CANDIDATE_TASKS if self.states.get(task)]  # fmt: skip


@dataclass
class RunRecord:
    run_id: str
    state: str
    run_after: str
    settings: dict | None = None
    dataset: dict | None = None
    compared: dict | None = None  # compare_candidates' return value
    compare_state: str | None = None
    model: dict | None = None
    endpoint: dict | None = None
    candidates: list[CandidateRecord] = field(default_factory=list)
    selected: int | None = None  # a map index the reader asked for (a mapped task's link)

    @property
    def shown(self) -> CandidateRecord | None:
        """The candidate whose tuning, training, gate and evaluation the page shows: the selected
        one, else the winner once compare named one, else candidate 0 (a run in progress, or one
        stopped before compare)."""
        wanted = next(i for i in (self.selected, self.winner_index, 0) if i is not None)
        return next((c for c in self.candidates if c.map_index == wanted), None)

    @property
    def winner_index(self) -> int | None:
        winner = (self.compared or {}).get("winner")
        return winner["map_index"] if winner else None

    @property
    def comparison(self) -> dict | None:
        return (self.compared or {}).get("comparison")

    @property
    def shown_because(self) -> str:
        """Which candidate the page shows, and why (the first lines of the page)."""
        shown = self.shown
        if shown is None:
            return "No candidate has started in this run."
        which = f"candidate {shown.map_index} ({shown.name})"
        if self.selected is not None:
            return f"Showing {which}, as asked."
        if self.winner_index is not None:
            metric = (self.comparison or {}).get("metric", "the registry metric")
            return f"Showing the winner by {metric}: {which}."
        if self.compared is not None:
            return f"compare_candidates picked no winner: showing {which}."
        if self.compare_state:
            return f"compare_candidates {self.compare_state} without a winner: showing {which}."
        return f"compare_candidates has not run yet: showing {which}."

    tuning = property(lambda self: self.shown and self.shown.tuning)
    training = property(lambda self: self.shown and self.shown.training)
    verdict = property(lambda self: self.shown and self.shown.verdict)
    approval = property(lambda self: self.shown and self.shown.approval)
    approval_state = property(lambda self: self.shown and self.shown.approval_state)
    evaluation = property(lambda self: self.shown and self.shown.evaluation)

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


XComKey = tuple[str, str, int]  # task id, key, map index


def run_record(
    run_id: str,
    state: str,
    run_after: str,
    xcoms: Mapping[XComKey, Any],
    task_states: Mapping[tuple[str, int], str],
) -> RunRecord:
    """The record of one run from its XComs ((task_id, key, map_index) -> value) and its task
    states ((task_id, map_index) -> state)."""
    parts = {name: xcoms.get((*source, UNMAPPED)) for name, source in SOURCES.items()}
    indices = _candidate_indices(parts["settings"], xcoms, task_states)
    candidates = [
        CandidateRecord(
            map_index=i,
            name=_candidate_name(parts["settings"], xcoms, i),
            states={task: s for (task, index), s in task_states.items() if index == i and s},
            **{name: xcoms.get((*source, i)) for name, source in CANDIDATE_SOURCES.items()},
        )
        for i in indices
    ]
    return RunRecord(run_id=run_id, state=state, run_after=run_after, candidates=candidates,
                     compare_state=task_states.get((COMPARE_TASK, UNMAPPED)), **parts)  # fmt: skip


def _candidate_indices(settings, xcoms, task_states) -> list[int]:
    """The settings' candidates, and any map index a candidate task recorded (a run's settings
    may predate the list)."""
    listed = range(len((settings or {}).get("candidates") or []))
    recorded = {index for task, *_, index in (*xcoms, *task_states)
                if task.startswith(CANDIDATE_GROUP) and index != UNMAPPED}  # fmt: skip
    return sorted({*listed, *recorded})


def _candidate_name(settings, xcoms, index: int) -> str:
    listed = (settings or {}).get("candidates") or []
    if index < len(listed):
        return listed[index]["name"]
    evaluation = xcoms.get((*CANDIDATE_SOURCES["evaluation"], index)) or {}
    return evaluation.get("candidate", f"candidate {index}")


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
    """Oldest first: the run, its headline metric and rule statuses (the shown candidate's), its
    number of candidates, the winner's name (None before compare) and whether it deployed."""
    return [
        {"run_id": r.run_id, "run_after": r.run_after, "state": r.state,
         "metric": r.headline_metric, "rules": r.rule_statuses, "deployed": r.deployed,
         "candidates": len(r.candidates),
         "winner": r.shown.name if r.winner_index is not None and r.shown else None}
        for r in sorted(records, key=lambda record: record.run_after)
    ]  # fmt: skip
