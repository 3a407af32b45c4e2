"""The deferrable gate's trigger: polls the rules' statuses until the gate can decide.

It runs in the triggerer (or in-process under `airflow dags test`) and reads the statuses with
aiobotocore: from DescribeTrainingJob when SageMaker Debugger evaluates the rules, or from each
rule's DescribeProcessingJob when `rules.engine` is `processing`. It fires once, with the
verdict of `gate.decide` (DEPLOY, APPROVE or BLOCK), as a dict.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.triggers.base import BaseTrigger, TriggerEvent
from botocore.exceptions import ClientError

from sagemaker_lifecycle.gate import (
    PROFILER,
    Decision,
    RuleOutcome,
    decide,
    outcomes_from_training_job,
)
from sagemaker_lifecycle.rule_jobs import (
    outcome_from_processing_job,
    profiler_rule_outcome,
    result_uri,
)

# A trigger's first look waits this long. Airflow 3.3's scheduler fails a deferred task whose
# trigger fired, and whose resumed attempt was queued or started, before it had processed the
# executor's event for the deferral ("finished with state success, but the task instance's state
# attribute is queued" or "running": apache/airflow#67287 and #72716, both unfixed in 3.3.2; seen
# here with the gate and quick jobs). The wait narrows that window; on a loaded machine the
# scheduler can lag longer (6 s was seen), so every deferring task except the person's approval
# also has a retry (the gate three), which adopts its job or re-reads the verdict.
DEFERRAL_SETTLE_SECONDS = 3.0


async def async_client(service: str, aws_conn_id: str | None, region_name: str | None):
    """An aiobotocore client of ``service`` for a trigger, from the Airflow connection."""
    hook = AwsBaseHook(aws_conn_id=aws_conn_id, region_name=region_name, client_type=service)
    return await hook.get_async_conn()


async def settle_after_deferral() -> None:
    """Wait before a trigger's first look (see DEFERRAL_SETTLE_SECONDS)."""
    await asyncio.sleep(DEFERRAL_SETTLE_SECONDS)


class RuleOutcomeTrigger(BaseTrigger):
    """Fires with the gate's verdict once no expected rule is still being evaluated.

    :param training_job_name: the job whose rules are gated.
    :param rule_jobs: rule name -> processing job name (engine `processing`); empty when
        SageMaker Debugger evaluates the rules.
    :param expected_rules: every rule the verdict must include -> its kind (debugger, profiler).
    :param policies: rule -> policy (block, approve, warn) of its findings.
    """

    def __init__(
        self,
        *,
        training_job_name: str,
        rule_jobs: Mapping[str, str],
        expected_rules: Mapping[str, str],
        policies: Mapping[str, str],
        poll_interval: float,
        aws_conn_id: str | None,
        region_name: str | None = None,
    ):
        super().__init__()
        self.training_job_name = training_job_name
        self.rule_jobs = dict(rule_jobs)
        self.expected_rules = dict(expected_rules)
        self.policies = dict(policies)
        self.poll_interval = poll_interval
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "training_job_name": self.training_job_name,
                "rule_jobs": self.rule_jobs,
                "expected_rules": self.expected_rules,
                "policies": self.policies,
                "poll_interval": self.poll_interval,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
            },
        )

    async def _training_job_outcomes(self, sagemaker) -> list[RuleOutcome]:
        description = await sagemaker.describe_training_job(TrainingJobName=self.training_job_name)
        return outcomes_from_training_job(description, self.policies, self.expected_rules)

    async def _rule_job_outcomes(self, sagemaker, s3) -> list[RuleOutcome]:
        outcomes = []
        for rule, job_name in self.rule_jobs.items():
            description = await sagemaker.describe_processing_job(ProcessingJobName=job_name)
            result = None
            if description["ProcessingJobStatus"] == "Completed":
                result = await _read_json(s3, result_uri(description))
            outcomes.append(outcome_from_processing_job(
                rule, description, self.policies[rule], result, self.expected_rules[rule]
            ))  # fmt: skip
        outcomes += [
            profiler_rule_outcome(rule, self.policies[rule])
            for rule, kind in self.expected_rules.items()
            if kind == PROFILER and rule not in self.rule_jobs
        ]
        return outcomes

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await settle_after_deferral()
        async with AsyncExitStack() as stack:
            sagemaker = await stack.enter_async_context(await self._client("sagemaker"))
            s3 = (
                await stack.enter_async_context(await self._client("s3"))
                if self.rule_jobs
                else None
            )
            while True:
                outcomes = (
                    await self._rule_job_outcomes(sagemaker, s3)
                    if self.rule_jobs
                    else await self._training_job_outcomes(sagemaker)
                )
                verdict = decide(outcomes, self.expected_rules, self.policies)
                if verdict.decision != Decision.WAIT:
                    yield TriggerEvent(verdict.as_dict())
                    return
                self.log.info("Gate waiting: %s", "; ".join(verdict.reasons))
                await asyncio.sleep(self.poll_interval)

    async def _client(self, service: str):
        return await async_client(service, self.aws_conn_id, self.region_name)


async def _read_json(s3, uri: str) -> dict | None:
    """The JSON object at s3:// `uri`, or None when there is none."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        response = await s3.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise
    async with response["Body"] as stream:
        return json.loads(await stream.read())
