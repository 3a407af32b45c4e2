"""The approval step: what the person is shown, when nobody is asked, and the outcome lines."""

from datetime import UTC, datetime

import pytest
from sagemaker_lifecycle.approval import RuleApprovalOperator, approval_body
from sagemaker_lifecycle.gate import RuleOutcome, Verdict, decide

POLICIES = {"Overtraining": "approve", "VanishingGradient": "block", "ProfilerReport": "warn"}
EXPECTED = {
    "Overtraining": "debugger",
    "VanishingGradient": "debugger",
    "ProfilerReport": "profiler",
}
FINDING = "The training loss has not improved by 0.01 for 5 saved steps (best 0.056 at step 12)"
TUNING = {
    "TuningJobName": "dogbreed-tune-1",
    "BestTrainingJobName": "dogbreed-tune-1-002-abcd1234",
    "ObjectiveMetric": {"MetricName": "valid_acc", "Value": 0.94},
}
TRAINING = {
    "TrainingJobName": "dogbreed-train-1",
    "FinalMetrics": {"valid_acc": 0.94, "valid_loss": 0.21},
}
APPROVAL = {"timeout_seconds": 20, "default": "Approve"}
REPORT = "s3://b/jobs/dogbreed-train-1/rule-output/ProfilerReport/profiler-output/report.html"


def verdict(overtraining_status: str) -> dict:
    outcomes = [
        RuleOutcome("Overtraining", overtraining_status,
                    f"RuleEvaluationConditionMet: Evaluation of the rule Overtraining at step 12 "
                    f"resulted in the condition being met\n{FINDING}", "approve"),
        RuleOutcome("VanishingGradient", "NoIssuesFound", "", "block"),
        RuleOutcome("ProfilerReport", "NoIssuesFound", "", "warn", "profiler"),
    ]  # fmt: skip
    return {**decide(outcomes, EXPECTED, POLICIES).as_dict(), "profiler_report": REPORT}


def operator(overtraining_status: str = "IssuesFound") -> RuleApprovalOperator:
    return RuleApprovalOperator(
        task_id="approve_deployment", verdict=verdict(overtraining_status), approval=APPROVAL,
        tuning=TUNING, training=TRAINING,
    )  # fmt: skip


def test_the_request_shows_rules_findings_steps_objective_metrics_and_report():
    body = approval_body(
        Verdict.from_dict(verdict("IssuesFound")), REPORT, TUNING, TRAINING, APPROVAL
    )
    assert "- Overtraining found issues: RuleEvaluationConditionMet" in body
    assert "| rule | kind | status | step | policy | finding |" in body
    assert "| Overtraining | debugger | IssuesFound | 12 | approve |" in body
    assert FINDING in body
    assert "valid_acc = 0.94" in body and "`dogbreed-tune-1-002-abcd1234`" in body
    assert "valid_acc 0.94, valid_loss 0.21" in body
    assert REPORT in body
    assert "within 20 s, **Approve** applies" in body


def test_nobody_is_asked_when_no_approve_rule_found_issues():
    # Asking would write a Human-in-the-loop request, which needs a running task: returning
    # at once is the proof that nothing was asked.
    assert operator("NoIssuesFound").execute({}) is None


class TaskInstance:
    """What the operator reads of its task instance: the map index, and its XCom pushes."""

    def __init__(self, map_index: int):
        self.map_index, self.pushed = map_index, {}

    def xcom_push(self, key: str, value) -> None:
        self.pushed[key] = value


def event(answer: str, user: str | None, timed_out: bool) -> dict:
    return {
        "chosen_options": [answer],
        "params_input": {},
        "responded_at": datetime(2026, 12, 1, tzinfo=UTC),
        "responded_by_user": {"id": user, "name": user} if user else None,
        "timedout": timed_out,
    }


@pytest.mark.parametrize(
    ("answer", "user", "timed_out", "expected"),
    [
        ("Approve", "alice", False, "Gate outcome: Approve by alice, deploying. Overtraining"),
        ("Reject", "bob", False, "Gate outcome: Reject by bob, deployment skipped. Overtraining"),
        ("Approve", None, True, "Gate outcome: no answer within 20 s, so the default Approve "
                                "applied on the person's behalf (rules.approval.default), "
                                "deploying. Overtraining found issues"),
    ],
)  # fmt: skip
def test_each_answer_is_logged_in_one_line_with_the_finding(
    capsys, answer, user, timed_out, expected
):
    result = operator().execute_complete({"ti": TaskInstance(-1)}, event(answer, user, timed_out))
    assert result["chosen_options"] == [answer]
    line = next(line for line in capsys.readouterr().out.splitlines() if "Gate outcome:" in line)
    assert expected in line and FINDING in line


def test_a_rejected_candidate_skips_itself_and_keeps_the_answer():
    # A candidate's approval is a mapped task instance, whose SkipMixin skips nothing downstream
    # in Airflow 3.3.2: skipping itself is what stops the candidate's evaluation (test_dag.py:
    # the approval is its evaluation's only upstream).
    from airflow.sdk.exceptions import AirflowSkipException

    ti = TaskInstance(1)
    with pytest.raises(AirflowSkipException, match="Reject by bob, deployment skipped"):
        operator().execute_complete({"ti": ti}, event("Reject", "bob", False))
    assert ti.pushed["return_value"]["chosen_options"] == ["Reject"]
    approved = TaskInstance(1)
    assert operator().execute_complete({"ti": approved}, event("Approve", "al", False))
    assert "return_value" not in approved.pushed  # returned as usual, pushed by Airflow
