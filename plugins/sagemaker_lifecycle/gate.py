"""The deployment gate: from the rules' evaluation statuses to deploy, ask, block or keep waiting.

Pure logic over the statuses SageMaker reports (`DebugRuleEvaluationStatuses` and
`ProfilerRuleEvaluationStatuses` of DescribeTrainingJob), or the same statuses derived from the
rule processing jobs when `rules.engine` is `processing`; both decide the same way. Each rule has
a policy (`rules.policy`): `block`, `approve` or `warn`. A rule that found issues, or ended in
Error or Stopped (it could not vouch for the model), is a finding handled by its policy:

- any expected rule still InProgress, Stopping or not reported yet: WAIT;
- a finding of a `block` rule, or a status the gate does not know: BLOCK;
- else a finding of an `approve` rule: APPROVE (a person decides, see approval.py);
- else DEPLOY (findings of `warn` rules, such as the profiler rules, are reported).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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
TABLE_HEADER = ("rule", "kind", "status", "step", "policy", "finding")
# Starts the one log line that says what the gate (or the person it asked) decided.
OUTCOME_PREFIX = "Gate outcome:"


class Policy(StrEnum):
    """What a rule's finding means for deployment."""

    BLOCK = "block"
    APPROVE = "approve"
    WARN = "warn"


class Decision(StrEnum):
    WAIT = "wait"
    DEPLOY = "deploy"
    APPROVE = "approve"  # deploy only if a person approves
    BLOCK = "block"


@dataclass(frozen=True)
class RuleOutcome:
    """One rule's evaluation as SageMaker reports it; `kind` is debugger or profiler, `policy`
    one of Policy's values."""

    rule: str
    status: str
    details: str = ""
    policy: str = Policy.BLOCK
    kind: str = DEBUGGER

    @property
    def finding(self) -> str | None:
        """One sentence when the rule found issues or could not vouch for the model, else None."""
        details = self.details.strip().replace("\n", " ") or "no details"
        if self.status == ISSUES_FOUND:
            return f"{self.rule} found issues: {details}"
        if self.status in ERROR_STATUSES:
            return f"{self.rule} ended {self.status}: {details}"
        return None

    @property
    def step(self) -> int | None:
        """The step at which the rule fired, when its StatusDetails name one."""
        found = STEP_IN_DETAILS.search(self.details)
        return int(found.group(1)) if found else None


@dataclass
class Verdict:
    """The gate's decision, the rule outcomes it was made from, and why (the most severe first:
    `reasons[0]` names the rule and the finding that decided)."""

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

    def _rows(self) -> list[tuple[str, ...]]:
        """TABLE_HEADER's columns, one row per outcome."""
        return [
            (o.rule, o.kind, o.status, "" if o.step is None else str(o.step), o.policy,
             o.details.strip().replace("\n", " "))
            for o in self.outcomes
        ]  # fmt: skip

    def table(self) -> str:
        """The outcomes as an aligned text table (TABLE_HEADER's columns), for task logs."""
        rows = [TABLE_HEADER, *self._rows()]
        aligned = len(TABLE_HEADER) - 1  # the finding, last, runs on unpadded
        widths = [max(len(row[column]) for row in rows) for column in range(aligned)]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            + f"  {row[aligned]}"
            for row in rows
        ).rstrip()

    def markdown_table(self) -> str:
        """The outcomes as a Markdown table, for the approval request in the Airflow UI."""
        rows = [TABLE_HEADER, tuple("---" for _ in TABLE_HEADER), *self._rows()]
        return "\n".join(
            "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows
        )

    def findings(self, policy: str) -> list[str]:
        """The findings of the rules with `policy`, one sentence each."""
        return [o.finding for o in self.outcomes if o.policy == policy and o.finding]


def expected_rule_kinds(rules: Mapping) -> dict[str, str]:
    """Rule -> kind for every rule in the settings' `rules` section."""
    return {
        **dict.fromkeys(rules["debugger"], DEBUGGER),
        **dict.fromkeys(rules["profiler"], PROFILER),
    }


def expected_rule_policies(rules: Mapping) -> dict[str, str]:
    """Rule -> policy for every rule in the settings' `rules` section."""
    return {rule: rules["policy"][rule] for rule in expected_rule_kinds(rules)}


def outcomes_from_training_job(
    description: Mapping,
    policies: Mapping[str, str],
    expected_rules: Mapping[str, str] | None = None,
) -> list[RuleOutcome]:
    """The rule outcomes in a DescribeTrainingJob response (debugger rules first).

    `policies` maps rule -> policy (a rule without one blocks). `expected_rules` maps rule ->
    kind (debugger or profiler). SageMaker lists every configured rule from the job's start, so
    an expected rule still missing once the job has ended will never come: it is reported as an
    Error.
    """
    expected_rules = expected_rules or {}
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
            policy=policies.get(status["RuleConfigurationName"], Policy.BLOCK),
            kind=kind,
        )
        for kind, status in statuses
    ]
    job_status = description.get("TrainingJobStatus", "InProgress")
    if job_status not in PENDING_STATUSES:
        reported = {outcome.rule for outcome in outcomes}
        outcomes += [
            RuleOutcome(rule, "Error", f"not evaluated: the training job is {job_status} and "
                        "reports no status for this rule", policies.get(rule, Policy.BLOCK), kind)
            for rule, kind in expected_rules.items()
            if rule not in reported
        ]  # fmt: skip
    return outcomes


def decide(
    outcomes: list[RuleOutcome], expected_rules: Mapping[str, str], policies: Mapping[str, str]
) -> Verdict:
    """The gate's verdict over `outcomes` (see the module doc); rules of `expected_rules`
    (rule -> kind) not yet reported mean WAIT. `policies` maps rule -> policy."""
    reported = {outcome.rule for outcome in outcomes}
    outcomes = outcomes + [
        RuleOutcome(rule, NOT_REPORTED, policy=policies.get(rule, Policy.BLOCK), kind=kind)
        for rule, kind in expected_rules.items()
        if rule not in reported
    ]
    waiting = [o.rule for o in outcomes if o.status in PENDING_STATUSES or o.status == NOT_REPORTED]
    if waiting:
        return Verdict(Decision.WAIT, outcomes, [f"still evaluating: {', '.join(waiting)}"])
    findings: dict[str, list[str]] = {policy: [] for policy in Policy}
    for outcome in outcomes:
        if outcome.finding:
            findings[outcome.policy].append(outcome.finding)
        elif outcome.status != NO_ISSUES_FOUND:
            findings[Policy.BLOCK].append(
                f"{outcome.rule} reported an unknown status {outcome.status!r}"
            )
    reasons = findings[Policy.BLOCK] + findings[Policy.APPROVE] + findings[Policy.WARN]
    if findings[Policy.BLOCK]:
        return Verdict(Decision.BLOCK, outcomes, reasons)
    if findings[Policy.APPROVE]:
        return Verdict(Decision.APPROVE, outcomes, reasons)
    return Verdict(Decision.DEPLOY, outcomes, reasons)
