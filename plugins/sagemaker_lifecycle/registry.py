"""The Model Registry's part of the pipeline: what a registered version records, and the promotion
decision after the evaluation (pure functions; the calls are `hooks.SageMakerLifecycleHook`'s).

Every model that passes the gate becomes a version of the project's model package group. Its
CustomerMetadataProperties say where it came from (`snapshot_id`, `tuning_job`, `training_job`,
`rule:<Rule>` -> the rule's status), once scored, how it did on each dataset snapshot
(`score:<snapshot id>:<metric>` -> the value), and when an endpoint started serving it
(`served:<ISO time>` -> the endpoint). Scores are per snapshot because a model is only
comparable with another on the same data.

`decide_promotion` compares the challenger (this run's version) with the champion (the newest
Approved version) on `registry.metric` (higher is better: accuracy, macro F1, top-k accuracy):

| situation                                              | outcome                        |
|--------------------------------------------------------|--------------------------------|
| challenger below `registry.min_metric`                 | `registry.when_worse`          |
| no champion yet (the project's first model)            | approve                        |
| champion never scored on this snapshot                 | score the champion first       |
| challenger >= champion - `registry.tolerance`          | approve                        |
| challenger worse than that                             | `registry.when_worse`          |

`registry.when_worse` is `reject` (the version stays PendingManualApproval, with the reason) or
`ask` (a person answers in the Airflow UI, see `PromotionApprovalOperator`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

APPROVED, PENDING, REJECTED = "Approved", "PendingManualApproval", "Rejected"
# registry.metric -> how the evaluation report names it (top-k: `top_<k>_accuracy`, k varies).
METRICS = ("accuracy", "macro_f1", "top_k_accuracy")
WHEN_WORSE = ("reject", "ask")
SCORE_PREFIX = "score:"
RULE_PREFIX = "rule:"
SERVED_PREFIX = "served:"
# How the task log introduces what the endpoint does with the decided challenger.
PROMOTION_PREFIX = "Endpoint after the decision:"


class Outcome(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"  # stays PendingManualApproval, with the reason
    ASK = "ask"  # a person decides
    SCORE_CHAMPION = "score_champion"  # the champion has no score on this snapshot yet


@dataclass(frozen=True)
class PromotionPolicy:
    """`registry.metric`, `.tolerance`, `.min_metric` and `.when_worse` of the settings."""

    metric: str
    tolerance: float
    min_metric: float
    when_worse: str

    @classmethod
    def from_settings(cls, registry: Mapping[str, Any]) -> PromotionPolicy:
        return cls(registry["metric"], float(registry["tolerance"]),
                   float(registry["min_metric"]), registry["when_worse"])  # fmt: skip


@dataclass(frozen=True)
class PromotionDecision:
    """What to do with the challenger, and why (one sentence)."""

    outcome: Outcome
    reason: str
    challenger: float
    champion: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "outcome": self.outcome.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PromotionDecision:
        return cls(Outcome(data["outcome"]), data["reason"], data["challenger"],
                   data.get("champion"))  # fmt: skip

    @property
    def approval_status(self) -> str:
        """The ModelApprovalStatus the challenger gets (ASK: the person's answer sets it)."""
        return APPROVED if self.outcome == Outcome.APPROVE else PENDING


def served_metadata(endpoint: str, since: str) -> dict[str, str]:
    """CustomerMetadataProperties recording that `endpoint` serves a version from `since` (an
    ISO timestamp): the registry's history of which version served when."""
    return {f"{SERVED_PREFIX}{since}": endpoint}


def rollback_target(version: Mapping[str, Any] | None, group: str, number: int) -> str:
    """The ARN of the version a rollback deploys; ValueError naming the version unless it
    exists and is Approved (only an Approved version may serve)."""
    if version is None:
        raise ValueError(f"model package group {group} has no version {number}")
    status = version["ModelApprovalStatus"]
    if status != APPROVED:
        raise ValueError(
            f"version {number} of {group} is {status}: a rollback deploys Approved versions only"
        )
    return version["ModelPackageArn"]


def score_key(snapshot_id: str, metric: str) -> str:
    return f"{SCORE_PREFIX}{snapshot_id}:{metric}"


def report_metric(report: Mapping[str, Any], metric: str) -> float:
    """`metric` (one of METRICS) of an evaluation report (evaluate's XCom)."""
    if metric != "top_k_accuracy":
        return float(report[metric])
    [value] = [v for k, v in report.items() if k.startswith("top_") and k.endswith("_accuracy")]
    return float(value)


def score_metadata(snapshot_id: str, report: Mapping[str, Any]) -> dict[str, str]:
    """CustomerMetadataProperties recording a report's metrics on `snapshot_id`."""
    return {score_key(snapshot_id, m): f"{report_metric(report, m):.6f}" for m in METRICS}


def scores_of(metadata: Mapping[str, str]) -> dict[str, dict[str, float]]:
    """Snapshot id -> metric -> value, read back from a version's CustomerMetadataProperties."""
    scores: dict[str, dict[str, float]] = {}
    for key, value in metadata.items():
        if key.startswith(SCORE_PREFIX):
            snapshot_id, _, metric = key.removeprefix(SCORE_PREFIX).partition(":")
            scores.setdefault(snapshot_id, {})[metric] = float(value)
    return scores


def provenance_metadata(dataset: Mapping, tuning: Mapping, training: Mapping,
                        verdict: Mapping) -> dict[str, str]:  # fmt: skip
    """CustomerMetadataProperties saying where a version came from: the snapshot, the tuning
    and training jobs, and each rule's status."""
    rules = {f"{RULE_PREFIX}{o['rule']}": o["status"] for o in verdict["outcomes"]}
    return {
        "snapshot_id": dataset["snapshot_id"],
        "tuning_job": tuning["TuningJobName"],
        "training_job": training["TrainingJobName"],
        "gate_decision": verdict["decision"],
        **rules,
    }


def _worse(policy: PromotionPolicy, reason: str, challenger: float,
           champion: float | None) -> PromotionDecision:  # fmt: skip
    outcome = Outcome.ASK if policy.when_worse == "ask" else Outcome.REJECT
    return PromotionDecision(outcome, reason, challenger, champion)


def decide_promotion(
    challenger_report: Mapping[str, Any],
    champion_scores: Mapping[str, Mapping[str, float]] | None,
    snapshot_id: str,
    policy: PromotionPolicy,
) -> PromotionDecision:
    """The decision of the module docstring's table. `champion_scores` is the champion's
    `scores_of` (None: there is no champion); `snapshot_id` is the snapshot the challenger was
    evaluated on."""
    metric = policy.metric
    challenger = report_metric(challenger_report, metric)
    if challenger < policy.min_metric:
        return _worse(policy, f"{metric} {challenger:.4f} is below registry.min_metric "
                      f"{policy.min_metric:g}", challenger, None)  # fmt: skip
    if champion_scores is None:
        return PromotionDecision(
            Outcome.APPROVE,
            f"first model of the project: {metric} {challenger:.4f} passes registry.min_metric "
            f"{policy.min_metric:g}",
            challenger,
        )
    on_snapshot = champion_scores.get(snapshot_id, {})
    if metric not in on_snapshot:
        return PromotionDecision(
            Outcome.SCORE_CHAMPION,
            f"the champion was never scored on snapshot {snapshot_id}: score it there first",
            challenger,
        )
    champion = on_snapshot[metric]
    comparison = f"{metric} {challenger:.4f} against the champion's {champion:.4f} on {snapshot_id}"
    if challenger >= champion - policy.tolerance:
        return PromotionDecision(
            Outcome.APPROVE,
            f"{comparison}: at least as good within registry.tolerance {policy.tolerance:g}",
            challenger,
            champion,
        )
    return _worse(policy, f"{comparison}: worse by more than registry.tolerance "
                  f"{policy.tolerance:g}", challenger, champion)  # fmt: skip


def person_answered(decision: PromotionDecision, answer: str, who: str) -> tuple[str, str]:
    """(ModelApprovalStatus, ApprovalDescription) after a person answered an ASK: Approve or
    Reject (Rejected: a person looked at it and said no)."""
    status = APPROVED if answer == "Approve" else REJECTED
    return status, f"{answer} by {who}: {decision.reason}"
