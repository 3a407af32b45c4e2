"""The deployment gate as a deferrable sensor over the rules' evaluation statuses."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException
from botocore.exceptions import ClientError

from sagemaker_lifecycle.gate import (
    OUTCOME_PREFIX,
    Decision,
    Verdict,
    expected_rule_kinds,
    expected_rule_policies,
)
from sagemaker_lifecycle.hooks import SageMakerLifecycleHook
from sagemaker_lifecycle.triggers import RuleOutcomeTrigger
from sagemaker_lifecycle.ui.links import RuleTableLink

VERDICT_KEY = "verdict"


class RuleGateSensor(BaseSensorOperator):
    """Waits (deferred) for every rule of a training job, then lets deployment through or not.

    Succeeds when the verdict is DEPLOY or APPROVE (the approval task then asks a person) and
    returns the verdict dict (XCom) with the profiler report's location added (`profiler_report`:
    an s3:// URI, or None when the job has none); fails without retry (AirflowFailException: a
    retry cannot change a rule's outcome) when it is BLOCK, naming each rule that blocked and its
    finding. Either way the same dict is pushed under the XCom key VERDICT_KEY. The rule table
    (rule, kind, status, step, policy, finding) and the profiler report's location go to the task
    log either way.

    :param training_job_name: the job whose rules are gated (templated).
    :param rule_jobs: rule name -> processing job name when rules run as processing jobs
        (templated; empty when SageMaker Debugger evaluates them).
    :param rules: the `rules` section of the pipeline settings (templated).
    :param poll_interval: seconds between status checks (templated).
    :param max_wait: seconds to wait for the verdict before failing (templated).
    """

    template_fields = ("training_job_name", "rule_jobs", "rules", "poll_interval", "max_wait")
    operator_extra_links = (RuleTableLink(),)

    def __init__(
        self,
        *,
        training_job_name: str,
        rules: Mapping[str, Any] | str,
        rule_jobs: Mapping[str, str] | str | None = None,
        poll_interval: float | str = 30,
        max_wait: float | str = timedelta(days=1).total_seconds(),
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.training_job_name = training_job_name
        self.rule_jobs = rule_jobs or {}
        self.rules = rules
        self.poll_interval = poll_interval
        self.max_wait = max_wait
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name

    def execute(self, context) -> None:
        rules = self.rules
        self.defer(
            trigger=RuleOutcomeTrigger(
                training_job_name=self.training_job_name,
                rule_jobs=self.rule_jobs,
                expected_rules=expected_rule_kinds(rules),
                policies=expected_rule_policies(rules),
                poll_interval=float(self.poll_interval),
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.max_wait)),
        )

    def execute_complete(self, context, event: Mapping[str, Any]) -> dict[str, Any]:
        verdict = Verdict.from_dict(event)
        self.log.info("Rule outcomes of %s:\n%s", self.training_job_name, verdict.table())
        profiler_report = self._profiler_report()
        self.log.info("Profiler report: %s", profiler_report or "none written")
        for reason in verdict.reasons:
            self.log.warning("%s", reason)
        self.log.info("%s %s", OUTCOME_PREFIX, _outcome(verdict))
        result = {**verdict.as_dict(), "profiler_report": profiler_report}
        # Kept for the model-run page also when the run stops here (no return value then).
        context["ti"].xcom_push(key=VERDICT_KEY, value=result)
        if verdict.decision == Decision.BLOCK:
            raise AirflowFailException(
                f"Deployment blocked by the rules of {self.training_job_name}: "
                + "; ".join(verdict.reasons)
            )
        return result

    def _profiler_report(self) -> str | None:
        """The report's s3:// URI; None (with a warning) when it cannot be looked up, since the
        lookup must not hide the verdict."""
        hook = SageMakerLifecycleHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)
        try:
            return hook.profiler_report_uri(self.training_job_name)
        except ClientError as error:
            self.log.warning("Could not look up the profiler report: %s", error)
            return None


def _outcome(verdict: Verdict) -> str:
    """The gate's decision in one line, most severe finding first."""
    reasons = "; ".join(verdict.reasons)
    if verdict.decision == Decision.BLOCK:
        return f"deployment blocked. {reasons}"
    if verdict.decision == Decision.APPROVE:
        return f"deployment waits for a person's approval. {reasons}"
    return f"deploying. {reasons or 'No rule found issues.'}"
