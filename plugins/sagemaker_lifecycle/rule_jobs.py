"""Rules as processing jobs (rules.engine: processing), for accounts without SageMaker Debugger.

One processing job per rule runs `sagemaker_code/evaluate_rules.py` over the tensors the training
job's Debugger hook saved; this module builds those requests and reads each job's result back as
the same RuleOutcome that SageMaker Debugger would report, so the gate decides the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

from sagemaker_lifecycle.gate import ISSUES_FOUND, NO_ISSUES_FOUND, RuleOutcome

# ProcessingJobStatus -> RuleEvaluationStatus, for the statuses that say it all.
STATUS_BY_JOB_STATUS = {"InProgress": "InProgress", "Stopping": "Stopping", "Stopped": "Stopped"}


def outcome_from_processing_job(rule: str, description: Mapping, blocking: bool) -> RuleOutcome:
    """The rule outcome a DescribeProcessingJob response of one rule job stands for.

    A Completed job reports its finding in ExitMessage (IssuesFound or NoIssuesFound first);
    a Failed job is a rule Error, with the FailureReason as details.
    """
    status = description["ProcessingJobStatus"]
    message = description.get("ExitMessage", "")
    if status in STATUS_BY_JOB_STATUS:
        return RuleOutcome(rule, STATUS_BY_JOB_STATUS[status], message, blocking)
    if status == "Failed":
        return RuleOutcome(rule, "Error", description.get("FailureReason", ""), blocking)
    finding = ISSUES_FOUND if message.startswith(ISSUES_FOUND) else NO_ISSUES_FOUND
    return RuleOutcome(rule, finding, message, blocking)
