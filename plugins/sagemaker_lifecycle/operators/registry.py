"""The Model Registry's operators: register the run's model version (the provider's operator, made
idempotent and told the real content types) and ask a person about a worse challenger."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerRegisterModelVersionOperator,
)

from sagemaker_lifecycle.approval import TimedApprovalOperator
from sagemaker_lifecycle.hooks import SageMakerLifecycleHook
from sagemaker_lifecycle.registry import Outcome, PromotionDecision, person_answered

# Members of a CreateModelPackage request the provider's operator takes as arguments; the rest
# travel in its `extras`, which replace what it would send (its text/csv content types among them).
OPERATOR_ARGUMENTS = ("ModelPackageGroupName", "ModelPackageDescription", "ModelApprovalStatus")
PROMOTION_OUTCOME_PREFIX = "Promotion outcome:"


class RegisterModelVersionOperator(SageMakerRegisterModelVersionOperator):
    """Registers `registration` (a CreateModelPackage request, `model_version_request`) in its
    group, which the provider's operator creates when missing. A version already registered for
    the same training job (a retried or cleared task) is reused: no second version.

    XCom: the version's ARN, number and group.
    """

    aws_hook_class = SageMakerLifecycleHook
    template_fields = (*SageMakerRegisterModelVersionOperator.template_fields, "registration")

    def __init__(self, *, registration: Mapping[str, Any] | str, **kwargs):
        # The provider's arguments are filled from `registration` once it is rendered.
        super().__init__(image_uri="", model_url="", package_group_name="", **kwargs)
        self.registration = registration

    def execute(self, context) -> dict[str, Any]:
        request = self.registration
        group = request["ModelPackageGroupName"]
        training_job = request["CustomerMetadataProperties"]["training_job"]
        version = self.hook.registered_version(group, training_job)
        if version is not None:
            self.log.info("Reusing version %s of %s, registered for %s by an earlier try",
                          version["ModelPackageVersion"], group, training_job)  # fmt: skip
            return _summary(version)
        container = request["InferenceSpecification"]["Containers"][0]
        self.image_uri, self.model_url = container["Image"], container["ModelDataUrl"]
        self.package_group_name = group
        self.package_desc = request["ModelPackageDescription"]
        self.extras = {k: v for k, v in request.items() if k not in OPERATOR_ARGUMENTS}
        arn = super().execute(context)
        version = self.hook.conn.describe_model_package(ModelPackageName=arn)
        self.log.info("Registered %s as version %s of %s (%s)", training_job,
                      version["ModelPackageVersion"], group, arn)  # fmt: skip
        return _summary(version)


def _summary(version: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "ModelPackageArn": version["ModelPackageArn"],
        "ModelPackageVersion": version["ModelPackageVersion"],
        "ModelPackageGroupName": version["ModelPackageGroupName"],
    }


def promotion_body(decision: Mapping[str, Any], approval: Mapping[str, Any]) -> str:
    """The Markdown the person reads: both versions' metrics side by side, and the reason."""
    metric = decision["metric"]
    versions = (("challenger", decision["challenger_version"]),
                ("champion", decision["champion_version"]))  # fmt: skip
    rows = "\n".join(
        f"| {role} | `{version['arn']}` | {version['value']:.4f} |"
        for role, version in versions
        if version
    )
    return "\n\n".join([
        f"The challenger is worse than the champion on snapshot `{decision['snapshot_id']}`: "
        f"{decision['reason']}.",
        f"| version | ARN | {metric} |\n|---|---|---|\n{rows}",
        "Approve makes the challenger the champion (ModelApprovalStatus Approved); Reject marks "
        f"it Rejected. Without an answer within {approval['timeout_seconds']:g} s, "
        f"**{approval['default']}** applies (registry.approval.default).",
    ])  # fmt: skip


class PromotionApprovalOperator(TimedApprovalOperator):
    """Asks a person about a worse challenger when the promotion decision is ASK (registry.
    when_worse: ask), then sets the version's ModelApprovalStatus from the answer; passes
    through (no request) for any other decision.

    :param decision: the `decide_promotion` task's XCom (templated).
    :param approval: the `registry.approval` settings: timeout_seconds, default (templated).
    """

    template_fields = (*TimedApprovalOperator.template_fields, "decision", "approval")

    def __init__(self, *, decision: Mapping[str, Any] | str, approval: Mapping[str, Any] | str,
                 aws_conn_id: str = "aws_default", **kwargs):  # fmt: skip
        super().__init__(subject="Promote a worse model?", **kwargs)
        self.decision = decision
        self.approval = approval
        self.aws_conn_id = aws_conn_id

    def execute(self, context):
        if self.decision["outcome"] != Outcome.ASK:
            self.log.info("The promotion was decided without a person: %s", self.decision["reason"])
            return None
        challenger = self.decision["challenger_version"]["arn"]
        subject = f"Promote {challenger}? It scored worse than the champion"
        return self.ask(context, subject, promotion_body(self.decision, self.approval),
                        self.approval)  # fmt: skip

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        if "error" not in event:
            answer = event["chosen_options"][0]
            user = event.get("responded_by_user") or {}
            who = ("nobody within the timeout (registry.approval.default)" if event.get("timedout")
                   else user.get("name") or user.get("id") or "an unnamed user")  # fmt: skip
            decision = PromotionDecision.from_dict(self.decision)
            status, reason = person_answered(decision, answer, who)
            arn = self.decision["challenger_version"]["arn"]
            SageMakerLifecycleHook(aws_conn_id=self.aws_conn_id).update_model_version(
                arn, status=status, reason=reason
            )
            self.log.info("%s %s is %s. %s", PROMOTION_OUTCOME_PREFIX, arn, status, reason)
        return super().execute_complete(context, event)
