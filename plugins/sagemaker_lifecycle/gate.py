"""The deployment gate: from the rules' evaluation statuses to deploy, block or keep waiting.

Pure logic over the statuses SageMaker reports (`DebugRuleEvaluationStatuses` and
`ProfilerRuleEvaluationStatuses` of DescribeTrainingJob), or the same statuses derived from the
rule processing jobs when `rules.engine` is `processing`; both decide the same way:

- any expected rule still InProgress, Stopping or not reported yet: WAIT;
- a blocking rule with IssuesFound: BLOCK;
- a rule that ended in Error or Stopped: BLOCK when `on_rule_error` is `block`, else a warning;
- otherwise DEPLOY (IssuesFound in a non-blocking rule, such as a profiler rule, is reported).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum

PENDING_STATUSES = frozenset({"InProgress", "Stopping"})
ERROR_STATUSES = frozenset({"Error", "Stopped"})
ISSUES_FOUND = "IssuesFound"
NO_ISSUES_FOUND = "NoIssuesFound"
NOT_REPORTED = "NotReported"
DEBUGGER, PROFILER = "debugger", "profiler"
# SageMaker's StatusDetails say where a rule fired: "... Evaluation of the rule X at step 7 ..."
STEP_IN_DETAILS = re.compile(r"\bat step (\d+)")
TABLE_HEADER = ("rule", "kind", "status", "step", "blocks deploy", "finding")


class Decision(StrEnum):
    WAIT = "wait"
    DEPLOY = "deploy"
    BLOCK = "block"


@dataclass(frozen=True)
class RuleOutcome:
    """One rule's evaluation as SageMaker reports it; `kind` is debugger or profiler."""

    rule: str
    status: str
    details: str = ""
    blocking: bool = False
    kind: str = DEBUGGER

    @property
    def step(self) -> int | None:
        """The step at which the rule fired, when its StatusDetails name one."""
        found = STEP_IN_DETAILS.search(self.details)
        return int(found.group(1)) if found else None


@dataclass
class Verdict:
    """The gate's decision, the rule outcomes it was made from, and why."""

    decision: Decision
    outcomes: list[RuleOutcome]
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "decision": self.decision.value,
            "outcomes": [asdict(outcome) for outcome in self.outcomes],
            "reasons": self.reasons,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Verdict:
        return cls(
            decision=Decision(data["decision"]),
            outcomes=[RuleOutcome(**outcome) for outcome in data["outcomes"]],
            reasons=list(data["reasons"]),
        )

    def table(self) -> str:
        """The outcomes as an aligned text table (TABLE_HEADER's columns), for task logs."""
        rows = [TABLE_HEADER] + [
            (o.rule, o.kind, o.status, "" if o.step is None else str(o.step),
             "yes" if o.blocking else "no", o.details.strip().replace("\n", " "))
            for o in self.outcomes
        ]  # fmt: skip
        aligned = len(TABLE_HEADER) - 1  # the finding, last, runs on unpadded
        widths = [max(len(row[column]) for row in rows) for column in range(aligned)]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            + f"  {row[aligned]}"
            for row in rows
        ).rstrip()


def expected_rule_kinds(rules: Mapping) -> dict[str, str]:
    """Rule -> kind for every rule in the settings' `rules` section."""
    return {
        **dict.fromkeys(rules["debugger"], DEBUGGER),
        **dict.fromkeys(rules["profiler"], PROFILER),
    }


def outcomes_from_training_job(
    description: Mapping, blocking: Iterable[str], expected_rules: Mapping[str, str] | None = None
) -> list[RuleOutcome]:
    """The rule outcomes in a DescribeTrainingJob response (debugger rules first).

    `expected_rules` maps rule -> kind (debugger or profiler). SageMaker lists every configured
    rule from the job's start, so an expected rule still missing once the job has ended will
    never come: it is reported as an Error.
    """
    blocking, expected_rules = set(blocking), expected_rules or {}
    statuses = [
        (kind, status)
        for kind, member in ((DEBUGGER, "DebugRuleEvaluationStatuses"),
                             (PROFILER, "ProfilerRuleEvaluationStatuses"))
        for status in description.get(member, [])
    ]  # fmt: skip
    outcomes = [
        RuleOutcome(
            rule=status["RuleConfigurationName"],
            status=status["RuleEvaluationStatus"],
            details=status.get("StatusDetails", ""),
            blocking=status["RuleConfigurationName"] in blocking,
            kind=kind,
        )
        for kind, status in statuses
    ]
    job_status = description.get("TrainingJobStatus", "InProgress")
    if job_status not in PENDING_STATUSES:
        reported = {outcome.rule for outcome in outcomes}
        outcomes += [
            RuleOutcome(rule, "Error", f"not evaluated: the training job is {job_status} and "
                        "reports no status for this rule", rule in blocking, kind)
            for rule, kind in expected_rules.items()
            if rule not in reported
        ]  # fmt: skip
    return outcomes


def decide(
    outcomes: list[RuleOutcome],
    expected_rules: Mapping[str, str],
    blocking: Iterable[str],
    on_rule_error: str,
) -> Verdict:
    """The gate's verdict over `outcomes`; rules of `expected_rules` (rule -> kind) not yet
    reported mean WAIT."""
    reported = {outcome.rule for outcome in outcomes}
    blocking = set(blocking)
    outcomes = outcomes + [
        RuleOutcome(rule=rule, status=NOT_REPORTED, blocking=rule in blocking, kind=kind)
        for rule, kind in expected_rules.items()
        if rule not in reported
    ]
    waiting = [o.rule for o in outcomes if o.status in PENDING_STATUSES or o.status == NOT_REPORTED]
    if waiting:
        return Verdict(Decision.WAIT, outcomes, [f"still evaluating: {', '.join(waiting)}"])
    blockers, warnings = [], []
    for outcome in outcomes:
        if outcome.status == ISSUES_FOUND:
            target = blockers if outcome.blocking else warnings
            target.append(f"{outcome.rule} found issues: {outcome.details.strip() or 'no details'}")
        elif outcome.status in ERROR_STATUSES:
            target = blockers if on_rule_error == "block" else warnings
            target.append(
                f"{outcome.rule} ended {outcome.status}: {outcome.details.strip() or 'no details'}"
            )
        elif outcome.status != NO_ISSUES_FOUND:
            blockers.append(f"{outcome.rule} reported an unknown status {outcome.status!r}")
    if blockers:
        return Verdict(Decision.BLOCK, outcomes, blockers + warnings)
    return Verdict(Decision.DEPLOY, outcomes, warnings)
