"""The deployment gate: every combination of rule statuses, the trigger, the sensor's outcome."""

import asyncio
import itertools

import pytest
from airflow.sdk.exceptions import AirflowFailException
from sagemaker_lifecycle.gate import (
    Decision,
    RuleOutcome,
    Verdict,
    decide,
    outcomes_from_training_job,
)
from sagemaker_lifecycle.hooks import SageMakerLifecycleHook
from sagemaker_lifecycle.rule_jobs import outcome_from_processing_job
from sagemaker_lifecycle.sensors import RuleGateSensor
from sagemaker_lifecycle.triggers import RuleOutcomeTrigger

STATUSES = ["InProgress", "Stopping", "NoIssuesFound", "IssuesFound", "Error", "Stopped", None]
BLOCKING, REPORTED_ONLY = "Overfit", "LowGPUUtilization"
EXPECTED = {BLOCKING: "debugger", REPORTED_ONLY: "profiler"}


def expected_decision(blocking_status, other_status, on_rule_error):
    statuses = (blocking_status, other_status)
    if any(status in ("InProgress", "Stopping", None) for status in statuses):
        return Decision.WAIT
    if blocking_status == "IssuesFound":
        return Decision.BLOCK
    if on_rule_error == "block" and any(status in ("Error", "Stopped") for status in statuses):
        return Decision.BLOCK
    return Decision.DEPLOY


@pytest.mark.parametrize(
    ("blocking_status", "other_status", "on_rule_error"),
    list(itertools.product(STATUSES, STATUSES, ["block", "warn"])),
)
def test_gate_decides_every_status_combination(blocking_status, other_status, on_rule_error):
    outcomes = [
        RuleOutcome(rule, status, f"{rule} details", rule == BLOCKING)
        for rule, status in ((BLOCKING, blocking_status), (REPORTED_ONLY, other_status))
        if status is not None  # None: the rule has no status yet
    ]
    verdict = decide(outcomes, EXPECTED, [BLOCKING], on_rule_error)
    assert verdict.decision == expected_decision(blocking_status, other_status, on_rule_error)
    assert {o.rule for o in verdict.outcomes} == {BLOCKING, REPORTED_ONLY}
    if verdict.decision == Decision.BLOCK:
        assert verdict.reasons and all("details" in r for r in verdict.reasons[:1])


def test_non_blocking_issue_deploys_with_a_warning():
    outcomes = [RuleOutcome(BLOCKING, "NoIssuesFound", "", True),
                RuleOutcome(REPORTED_ONLY, "IssuesFound", "GPU idle", False)]  # fmt: skip
    verdict = decide(outcomes, EXPECTED, [BLOCKING], "block")
    assert verdict.decision == Decision.DEPLOY
    assert verdict.reasons == ["LowGPUUtilization found issues: GPU idle"]


def test_unknown_status_blocks():
    verdict = decide(
        [RuleOutcome(BLOCKING, "Exploded", "", True)], {BLOCKING: "debugger"}, [BLOCKING], "warn"
    )
    assert verdict.decision == Decision.BLOCK
    assert "unknown status 'Exploded'" in verdict.reasons[0]


DESCRIPTION = {
    "TrainingJobStatus": "Completed",
    "DebugRuleEvaluationStatuses": [
        {"RuleConfigurationName": "Overfit", "RuleEvaluationStatus": "IssuesFound",
         "StatusDetails": "RuleEvaluationConditionMet: Evaluation of the rule Overfit at step 7 "
                          "resulted in the condition being met\n"},
        {"RuleConfigurationName": "LossNotDecreasing", "RuleEvaluationStatus": "NoIssuesFound"},
    ],
    "ProfilerRuleEvaluationStatuses": [
        {"RuleConfigurationName": "ProfilerReport", "RuleEvaluationStatus": "NoIssuesFound"},
    ],
}  # fmt: skip


def test_outcomes_are_read_from_describe_training_job_and_tabled():
    outcomes = outcomes_from_training_job(DESCRIPTION, ["Overfit", "LossNotDecreasing"])
    assert [(o.rule, o.kind, o.status, o.step, o.blocking) for o in outcomes] == [
        ("Overfit", "debugger", "IssuesFound", 7, True),
        ("LossNotDecreasing", "debugger", "NoIssuesFound", None, True),
        ("ProfilerReport", "profiler", "NoIssuesFound", None, False),
    ]
    expected = {"Overfit": "debugger", "LossNotDecreasing": "debugger",
                "ProfilerReport": "profiler"}  # fmt: skip
    verdict = decide(outcomes, expected, ["Overfit"], "block")
    assert Verdict.from_dict(verdict.as_dict()) == verdict
    header, overfit, loss, profiler = verdict.table().splitlines()
    assert header.split() == ["rule", "kind", "status", "step", "blocks", "deploy", "finding"]
    assert overfit.split()[:5] == ["Overfit", "debugger", "IssuesFound", "7", "yes"]
    assert "RuleEvaluationConditionMet" in overfit and "\n" not in overfit
    assert loss.split() == ["LossNotDecreasing", "debugger", "NoIssuesFound", "yes"]
    assert profiler.split() == ["ProfilerReport", "profiler", "NoIssuesFound", "no"]
    # Columns line up: every row's status starts where the header's does.
    assert {row.index(status) for row, status in ((header, "status"), (overfit, "IssuesFound"),
                                                   (profiler, "NoIssuesFound"))} == {
        header.index("status")
    }  # fmt: skip


@pytest.mark.parametrize(("job_status", "expected"), [("InProgress", "NotReported"),
                                                      ("Completed", "Error")])  # fmt: skip
def test_a_rule_missing_from_the_statuses_waits_until_training_ends(job_status, expected):
    description = {**DESCRIPTION, "TrainingJobStatus": job_status}
    expected_rules = {"Overtraining": "debugger"}
    outcomes = outcomes_from_training_job(description, ["Overtraining"], expected_rules)
    verdict = decide(outcomes, expected_rules, ["Overtraining"], "block")
    missing = next(o for o in verdict.outcomes if o.rule == "Overtraining")
    assert (missing.status, missing.kind) == (expected, "debugger")
    assert verdict.decision == (Decision.WAIT if job_status == "InProgress" else Decision.BLOCK)


@pytest.mark.parametrize(
    ("job_status", "result", "expected"),
    [
        ("InProgress", None, "InProgress"),
        ("Stopped", None, "Stopped"),
        ("Failed", None, "Error"),
        ("Completed", None, "Error"),  # completed without a result.json
        ("Completed", {"status": "IssuesFound", "status_details": "met at step 3"}, "IssuesFound"),
        ("Completed", {"status": "NoIssuesFound", "details": "fine"}, "NoIssuesFound"),
    ],
)
def test_rule_processing_jobs_map_to_debugger_statuses(job_status, result, expected):
    description = {"ProcessingJobStatus": job_status, "FailureReason": "boom"}
    outcome = outcome_from_processing_job("Overfit", description, True, result, "debugger")
    assert (outcome.status, outcome.kind) == (expected, "debugger")


class FakeSageMaker:
    """Answers describe_training_job with a scripted sequence (the trigger's only call)."""

    def __init__(self, responses):
        self.responses = list(responses)

    async def describe_training_job(self, TrainingJobName):
        return self.responses.pop(0)


def make_trigger(**overrides):
    arguments = dict(
        training_job_name="job", rule_jobs={},
        expected_rules={"Overfit": "debugger", "LossNotDecreasing": "debugger"},
        blocking=["Overfit"], on_rule_error="block", poll_interval=0.01, aws_conn_id=None,
    )  # fmt: skip
    return RuleOutcomeTrigger(**{**arguments, **overrides})


def test_trigger_waits_while_rules_run_then_fires_once_with_the_verdict(monkeypatch):
    running = {"DebugRuleEvaluationStatuses": [
        {"RuleConfigurationName": "Overfit", "RuleEvaluationStatus": "InProgress"}]}  # fmt: skip
    client = FakeSageMaker([running, running, DESCRIPTION])
    trigger = make_trigger()

    async def fake_client(service):
        class Context:
            async def __aenter__(self):
                return client

            async def __aexit__(self, *exc):
                return False

        return Context()

    monkeypatch.setattr(trigger, "_client", fake_client)

    async def first_event():
        return [event async for event in trigger.run()]

    events = asyncio.run(first_event())
    assert len(events) == 1 and client.responses == []
    assert events[0].payload["decision"] == "block"


def test_trigger_serializes_to_its_own_arguments():
    classpath, kwargs = make_trigger().serialize()
    assert classpath == "sagemaker_lifecycle.triggers.RuleOutcomeTrigger"
    assert RuleOutcomeTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_sensor_fails_without_retry_on_block_and_returns_the_verdict_on_deploy(monkeypatch):
    report = "s3://b/jobs/job/rule-output/ProfilerReport/profiler-output/profiler-report.html"
    monkeypatch.setattr(SageMakerLifecycleHook, "profiler_report_uri", lambda self, job: report)
    sensor = RuleGateSensor(task_id="gate", training_job_name="job", rules={})
    blocked = decide(outcomes_from_training_job(DESCRIPTION, ["Overfit"]),
                     {}, ["Overfit"], "block")  # fmt: skip
    with pytest.raises(AirflowFailException, match="Overfit found issues"):
        sensor.execute_complete({}, blocked.as_dict())
    deploy = decide(outcomes_from_training_job(DESCRIPTION, []), {}, [], "block")
    passed = sensor.execute_complete({}, deploy.as_dict())
    assert (passed["decision"], passed["profiler_report"]) == ("deploy", report)


def test_a_failed_profiler_report_lookup_does_not_hide_the_verdict(monkeypatch):
    from botocore.exceptions import ClientError

    def denied(self, job):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "ListObjectsV2")

    monkeypatch.setattr(SageMakerLifecycleHook, "profiler_report_uri", denied)
    sensor = RuleGateSensor(task_id="gate", training_job_name="job", rules={})
    blocked = decide(outcomes_from_training_job(DESCRIPTION, ["Overfit"]), {}, ["Overfit"], "block")
    with pytest.raises(AirflowFailException, match="Overfit found issues"):
        sensor.execute_complete({}, blocked.as_dict())
    deploy = decide(outcomes_from_training_job(DESCRIPTION, []), {}, [], "block")
    assert sensor.execute_complete({}, deploy.as_dict())["profiler_report"] is None
