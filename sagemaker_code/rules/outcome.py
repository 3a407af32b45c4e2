"""The result of one rule evaluation, in SageMaker's RuleEvaluationStatus terms."""

from __future__ import annotations

from dataclasses import asdict, dataclass

NO_ISSUES_FOUND, ISSUES_FOUND, ERROR = "NoIssuesFound", "IssuesFound", "Error"
# SageMaker's StatusDetails holds at most 1024 characters.
STATUS_DETAILS_LIMIT = 1024


@dataclass(frozen=True)
class RuleOutcome:
    """``status`` is NoIssuesFound, IssuesFound or Error. ``step`` is the global step at which a
    tensor rule's condition was met (for profiler rules, the number of data points examined);
    ``details`` is one human sentence of what was found (or what went wrong, for Error).
    """

    rule: str
    status: str
    details: str
    step: int | None = None

    @property
    def status_details(self) -> str:
        """DescribeTrainingJob's StatusDetails; for IssuesFound, AWS's text (the message of
        smdebug's RuleEvaluationConditionMet) followed by the finding."""
        if self.status == ISSUES_FOUND:
            text = (
                f"RuleEvaluationConditionMet: Evaluation of the rule {self.rule} at step "
                f"{self.step} resulted in the condition being met\n{self.details}"
            )
        else:
            text = self.details
        return text[:STATUS_DETAILS_LIMIT]

    def to_json(self) -> dict:
        return {**asdict(self), "status_details": self.status_details}
