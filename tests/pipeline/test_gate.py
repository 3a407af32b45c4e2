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
from sagemaker_lifecycle.sensors import VERDICT_KEY, RuleGateSensor
from sagemaker_lifecycle.triggers import RuleOutcomeTrigger

STATUSES = ["InProgress", "Stopping", "NoIssuesFound", "IssuesFound", "Error", "Stopped", None]
POLICIES = ["block", "approve", "warn"]
FIRST, SECOND = "Overfit", "LowGPUUtilization"
EXPECTED = {FIRST: "debugger", SECOND: "profiler"}


def expected_verdict(
    statuses: dict[str, str | None], policies: dict[str, str]
) -> tuple[Decision, list[str]]:
    """The module doc's rules, written out independently of gate.decide: the decision and its
    reasons (the block findings first, then those asked about, then the warnings; a finding says
    what the rule found, or that it ended without vouching for the model)."""
    waiting = [rule for rule, status in statuses.items() if status in ("InProgress", "Stopping")]
    waiting += [rule for rule, status in statuses.items() if status is None]  # not reported yet
    if waiting:
        return Decision.WAIT, [f"still evaluating: {', '.join(waiting)}"]
    findings = {"block": [], "approve": [], "warn": []}
    for rule, status in statuses.items():
        if status == "IssuesFound":
            findings[policies[rule]].append(f"{rule} found issues: {rule} details")
        elif status in ("Error", "Stopped"):
            findings[policies[rule]].append(f"{rule} ended {status}: {rule} details")
    reasons = findings["block"] + findings["approve"] + findings["warn"]
    if findings["block"]:
        return Decision.BLOCK, reasons
    return (Decision.APPROVE if findings["approve"] else Decision.DEPLOY), reasons


@pytest.mark.parametrize(
    ("first_status", "second_status", "first_policy", "second_policy"),
    list(itertools.product(STATUSES, STATUSES, POLICIES, POLICIES)),
)
def test_gate_decides_every_policy_and_status_combination(
    first_status, second_status, first_policy, second_policy
):
    statuses = {FIRST: first_status, SECOND: second_status}
    policies = {FIRST: first_policy, SECOND: second_policy}
    outcomes = [
        RuleOutcome(rule, status, f"{rule} details", policies[rule], EXPECTED[rule])
        for rule, status in statuses.items()
        if status is not None  # None: the rule has no status yet
    ]
    verdict = decide(outcomes, EXPECTED, policies)
    assert (verdict.decision, verdict.reasons) == expected_verdict(statuses, policies)
    assert {o.rule for o in verdict.outcomes} == {FIRST, SECOND}


def test_a_warn_finding_deploys_with_a_warning():
    outcomes = [RuleOutcome(FIRST, "NoIssuesFound", "", "block"),
                RuleOutcome(SECOND, "IssuesFound", "GPU idle", "warn", "profiler")]  # fmt: skip
    verdict = decide(outcomes, EXPECTED, {FIRST: "block", SECOND: "warn"})
    assert verdict.decision == Decision.DEPLOY
    assert verdict.reasons == ["LowGPUUtilization found issues: GPU idle"]


def test_unknown_status_blocks_whatever_the_policy():
    verdict = decide(
        [RuleOutcome(FIRST, "Exploded", "", "warn")], {FIRST: "debugger"}, {FIRST: "warn"}
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
POLICY = {"Overfit": "approve", "LossNotDecreasing": "block", "ProfilerReport": "warn"}


def test_outcomes_are_read_from_describe_training_job_and_tabled():
    outcomes = outcomes_from_training_job(DESCRIPTION, POLICY)
    assert [(o.rule, o.kind, o.status, o.step, o.policy) for o in outcomes] == [
        ("Overfit", "debugger", "IssuesFound", 7, "approve"),
        ("LossNotDecreasing", "debugger", "NoIssuesFound", None, "block"),
        ("ProfilerReport", "profiler", "NoIssuesFound", None, "warn"),
    ]
    expected = {"Overfit": "debugger", "LossNotDecreasing": "debugger",
                "ProfilerReport": "profiler"}  # fmt: skip
    verdict = decide(outcomes, expected, POLICY)
    assert verdict.decision == Decision.APPROVE
    assert Verdict.from_dict(verdict.as_dict()) == verdict
    header, overfit, loss, profiler = verdict.table().splitlines()
    assert header.split() == ["rule", "kind", "status", "step", "policy", "finding"]
    assert overfit.split()[:5] == ["Overfit", "debugger", "IssuesFound", "7", "approve"]
    assert "RuleEvaluationConditionMet" in overfit and "\n" not in overfit
    assert loss.split() == ["LossNotDecreasing", "debugger", "NoIssuesFound", "block"]
    assert profiler.split() == ["ProfilerReport", "profiler", "NoIssuesFound", "warn"]
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
    policies = {"Overtraining": "block"}
    outcomes = outcomes_from_training_job(description, policies, expected_rules)
    verdict = decide(outcomes, expected_rules, policies)
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
    outcome = outcome_from_processing_job("Overfit", description, "approve", result, "debugger")
    assert (outcome.status, outcome.kind, outcome.policy) == (expected, "debugger", "approve")


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
        policies={"Overfit": "block", "LossNotDecreasing": "approve"}, poll_interval=0.01,
        aws_conn_id=None,
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


class FakeProcessingJobs:
    """DescribeProcessingJob answers: every rule job Completed with its rule's result."""

    async def describe_processing_job(self, ProcessingJobName):
        return {
            "ProcessingJobStatus": "Completed",
            "ProcessingOutputConfig": {
                "Outputs": [{"S3Output": {"S3Uri": f"s3://b/rule-output/{ProcessingJobName}"}}]
            },
        }


def test_processing_engine_reports_profiler_rules_as_not_evaluable_and_warns(monkeypatch):
    async def no_issues(s3, uri):
        return {"status": "NoIssuesFound", "details": "fine"}

    monkeypatch.setattr("sagemaker_lifecycle.triggers._read_json", no_issues)
    trigger = make_trigger(
        rule_jobs={"Overfit": "job-overfit"},
        expected_rules={"Overfit": "debugger", "LowGPUUtilization": "profiler"},
        policies={"Overfit": "block", "LowGPUUtilization": "warn"},
    )
    outcomes = asyncio.run(trigger._rule_job_outcomes(FakeProcessingJobs(), s3=None))
    by_rule = {outcome.rule: outcome for outcome in outcomes}
    assert by_rule["Overfit"].status == "NoIssuesFound"
    profiler = by_rule["LowGPUUtilization"]
    assert (profiler.status, profiler.kind, profiler.policy) == ("Error", "profiler", "warn")
    assert "ProfilerConfig" in profiler.details
    verdict = decide(outcomes, trigger.expected_rules, trigger.policies)
    assert verdict.decision == Decision.DEPLOY
    assert verdict.reasons == [f"LowGPUUtilization ended Error: {profiler.details}"]


def test_trigger_serializes_to_its_own_arguments():
    classpath, kwargs = make_trigger().serialize()
    assert classpath == "sagemaker_lifecycle.triggers.RuleOutcomeTrigger"
    assert RuleOutcomeTrigger(**kwargs).serialize() == (classpath, kwargs)


def verdict_with_overfit(policy: str) -> Verdict:
    policies = {**POLICY, "Overfit": policy}
    return decide(outcomes_from_training_job(DESCRIPTION, policies), {}, policies)


class PushedXComs(dict):
    """The task instance of a context, as far as the gate uses it: what it pushes to XCom."""

    def xcom_push(self, key, value):
        self[key] = value


def gate_context() -> dict:
    return {"ti": PushedXComs()}


@pytest.mark.parametrize("policy", ["approve", "warn"])
def test_sensor_returns_the_verdict_when_deploying_or_asking(monkeypatch, capsys, policy):
    report = "s3://b/jobs/job/rule-output/ProfilerReport/profiler-output/profiler-report.html"
    monkeypatch.setattr(SageMakerLifecycleHook, "profiler_report_uri", lambda self, job: report)
    sensor = RuleGateSensor(task_id="gate", training_job_name="job", rules={})
    context = gate_context()
    passed = sensor.execute_complete(context, verdict_with_overfit(policy).as_dict())
    decision = {"approve": "approve", "warn": "deploy"}[policy]
    assert (passed["decision"], passed["profiler_report"]) == (decision, report)
    assert context["ti"][VERDICT_KEY] == passed
    outcome = next(line for line in capsys.readouterr().out.splitlines() if "Gate outcome:" in line)
    assert "Overfit found issues: RuleEvaluationConditionMet" in outcome


def test_sensor_fails_without_retry_on_block_naming_rule_and_finding(monkeypatch):
    monkeypatch.setattr(SageMakerLifecycleHook, "profiler_report_uri", lambda self, job: None)
    sensor = RuleGateSensor(task_id="gate", training_job_name="job", rules={})
    context = gate_context()
    with pytest.raises(AirflowFailException, match="Overfit found issues: RuleEvaluation"):
        sensor.execute_complete(context, verdict_with_overfit("block").as_dict())
    # The model-run page shows a blocked run's rule table from this XCom.
    assert context["ti"][VERDICT_KEY]["decision"] == "block"


def test_a_failed_profiler_report_lookup_does_not_hide_the_verdict(monkeypatch):
    from botocore.exceptions import ClientError

    def denied(self, job):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "ListObjectsV2")

    monkeypatch.setattr(SageMakerLifecycleHook, "profiler_report_uri", denied)
    sensor = RuleGateSensor(task_id="gate", training_job_name="job", rules={})
    with pytest.raises(AirflowFailException, match="Overfit found issues"):
        sensor.execute_complete(gate_context(), verdict_with_overfit("block").as_dict())
    passed = sensor.execute_complete(gate_context(), verdict_with_overfit("warn").as_dict())
    assert passed["profiler_report"] is None
