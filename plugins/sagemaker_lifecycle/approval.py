"""A person in the gate: Airflow's Human-in-the-loop approval for findings of `approve` rules.

When the gate's verdict is APPROVE, `RuleApprovalOperator` puts a request under Required Actions
in the Airflow UI: the rule table with findings and steps, the tuning objective, the final
metrics and the profiler report's location. Approve: the run deploys. Reject: the tasks after it
are skipped, so nothing after the gate is created or billed. No answer within
`rules.approval.timeout_seconds`: Airflow applies `rules.approval.default` (its scheduler does,
on Airflow 3.3+; under `airflow dags test` something must run that sweep, see demo/approvals.py).
Every outcome is logged in one line that starts with OUTCOME_PREFIX and names the rules' findings.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowSkipException

from sagemaker_lifecycle.gate import OUTCOME_PREFIX, Decision, Policy, Verdict


def approval_body(
    verdict: Verdict,
    profiler_report: str | None,
    tuning: Mapping[str, Any],
    training: Mapping[str, Any],
    approval: Mapping[str, Any],
) -> str:
    """The Markdown the person reads before answering."""
    objective = tuning.get("ObjectiveMetric") or {}
    metrics = ", ".join(f"{name} {value:.4g}" for name, value in sorted(
        training.get("FinalMetrics", {}).items()))  # fmt: skip
    findings = "\n".join(f"- {finding}" for finding in verdict.findings(Policy.APPROVE))
    return "\n\n".join([
        f"Rules with the `approve` policy found issues in training job "
        f"`{training['TrainingJobName']}`:\n\n{findings}",
        verdict.markdown_table(),
        f"**Tuning objective** (best of `{tuning.get('TuningJobName')}`: "
        f"`{tuning.get('BestTrainingJobName')}`): {objective.get('MetricName')} = "
        f"{objective.get('Value')}",
        f"**Final metrics** of `{training['TrainingJobName']}`: {metrics or 'none reported'}",
        f"**Profiler report:** {profiler_report or 'none written'}",
        f"Approve deploys this model; Reject skips deployment. Without an answer within "
        f"{approval['timeout_seconds']:g} s, **{approval['default']}** applies "
        "(rules.approval.default).",
    ])  # fmt: skip


class TimedApprovalOperator(ApprovalOperator):
    """An ApprovalOperator whose question is decided at run time: `ask` sets the subject, the
    body and, from an approval setting (`timeout_seconds`, `default`), the default answer and
    the timeout, then asks."""

    def ask(self, context, subject: str, body: str, approval: Mapping[str, Any]):
        self.subject, self.body = subject, body
        self.defaults = [approval["default"]]
        self.validate_defaults()
        self.response_timeout = timedelta(seconds=float(approval["timeout_seconds"]))
        self.log.info("Asking (Required Actions): %s", subject)
        return super().execute(context)


class RuleApprovalOperator(TimedApprovalOperator):
    """Asks a person whether to deploy when the gate's verdict is APPROVE; passes through (no
    request, downstream runs) when it is DEPLOY.

    Returns the Human-in-the-loop result (chosen option, who answered, when), or None when no
    approval was needed.

    :param verdict: the gate's XCom: a verdict dict with `profiler_report` (templated).
    :param approval: the `rules.approval` settings: timeout_seconds, default (templated).
    :param tuning: the tuning task's XCom: the best trial and its objective (templated).
    :param training: the training task's XCom: job name and final metrics (templated).
    """

    template_fields = (*TimedApprovalOperator.template_fields, "verdict", "approval", "tuning",
                       "training")  # fmt: skip

    def __init__(
        self,
        *,
        verdict: Mapping[str, Any] | str,
        approval: Mapping[str, Any] | str,
        tuning: Mapping[str, Any] | str,
        training: Mapping[str, Any] | str,
        **kwargs,
    ):
        super().__init__(subject="Deploy a model whose rules found issues?", **kwargs)
        self.verdict = verdict
        self.approval = approval
        self.tuning = tuning
        self.training = training

    def execute(self, context):
        verdict = Verdict.from_dict(self.verdict)
        if verdict.decision != Decision.APPROVE:
            self.log.info("No rule with the approve policy found issues: nothing to ask")
            return None
        job = self.training["TrainingJobName"]
        subject = f"Deploy {job}? {', '.join(self._asking_rules(verdict))} found issues"
        body = approval_body(
            verdict, self.verdict.get("profiler_report"), self.tuning, self.training, self.approval
        )
        return self.ask(context, subject, body, self.approval)

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        # Logged first: on Reject, the parent skips what follows by raising (Airflow's SkipMixin).
        if "error" not in event:
            self.log.info("%s %s", OUTCOME_PREFIX, self._outcome(event))
        result = super().execute_complete(context, event)
        if context["ti"].map_index >= 0 and not self.hitl_summary_extra["approved"]:
            # SkipMixin skips nothing downstream of a mapped task instance (Airflow 3.3.2: it
            # leaves that to a dependency check that lets the candidate's next task run), so a
            # rejected candidate skips itself, and its later tasks follow by trigger rule. The
            # answer stays readable as the task's XCom.
            context["ti"].xcom_push(key="return_value", value=result)
            raise AirflowSkipException(self._outcome(event))
        return result

    def _outcome(self, event: Mapping[str, Any]) -> str:
        verdict = Verdict.from_dict(self.verdict)
        answer = event["chosen_options"][0]
        findings = "; ".join(verdict.findings(Policy.APPROVE))
        deploys = "deploying" if answer == self.APPROVE else "deployment skipped"
        if event.get("timedout"):
            who = (
                f"no answer within {self.approval['timeout_seconds']:g} s, so the default "
                f"{answer} applied on the person's behalf (rules.approval.default)"
            )
        else:
            user = event.get("responded_by_user") or {}
            who = f"{answer} by {user.get('name') or user.get('id') or 'an unnamed user'}"
        return f"{who}, {deploys}. {findings}"

    @staticmethod
    def _asking_rules(verdict: Verdict) -> list[str]:
        return [o.rule for o in verdict.outcomes if o.policy == Policy.APPROVE and o.finding]
