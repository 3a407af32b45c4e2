"""Extra links on the pipeline's tasks: the model-run page against the local runtime, the AWS
console on AWS.

Airflow 3 asks each link for its URL when the task ends (in the worker, where the AWS
connection is at hand) and keeps the answer in XCom; the UI shows it as a button. A connection
with an `endpoint_url` is the local runtime (or another stand-in for AWS), whose consoles do not
exist: the link goes to the plugin's page of the run instead.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import quote

from airflow.configuration import conf
from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.links.base_aws import BaseAwsLink
from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

from sagemaker_lifecycle.ui.records import URL_PREFIX

CONSOLE = "https://console.{domain}"
SAGEMAKER_CONSOLE = CONSOLE + "/sagemaker/home?region={region}#/{resource}/{name}"
# The log group /aws/sagemaker/TrainingJobs, filtered to the job's streams (the console's escaping).
LOGS_CONSOLE = (
    CONSOLE + "/cloudwatch/home?region={region}#logsV2:log-groups/log-group/"
    "$252Faws$252Fsagemaker$252FTrainingJobs$3FlogStreamNameFilter$3D{name}"
)
S3_CONSOLE = CONSOLE + "/s3/object/{bucket}?region={region}&prefix={key}"


def model_run_url(run_id: str, section: str, map_index: int = -1) -> str:
    """The plugin page of a run, at one section (api.base_url first, when it is set); a mapped
    task's (map_index 0 and up) shows that candidate rather than the winner."""
    base = conf.get("api", "base_url", fallback="").rstrip("/")
    candidate = f"?candidate={map_index}" if map_index >= 0 else ""
    return f"{base}{URL_PREFIX}/runs/{quote(run_id, safe='')}{candidate}#{section}"


class ModelRunLink(BaseOperatorLink):
    """A link to `section` of the run's page locally, to `console_url` on AWS."""

    section: ClassVar[str]

    def get_link(self, operator, *, ti_key) -> str:
        hook = AwsBaseHook(aws_conn_id=getattr(operator, "aws_conn_id", "aws_default"),
                           client_type="sagemaker")  # fmt: skip
        if hook.conn_config.endpoint_url:
            return model_run_url(ti_key.run_id, self.section, ti_key.map_index)
        domain = BaseAwsLink.get_aws_domain(hook.conn_partition)
        return self.console_url(operator, ti_key, domain, hook.conn_region_name) or ""

    def console_url(self, operator, ti_key, domain: str, region: str) -> str | None:
        raise NotImplementedError


def _job_name(operator) -> str | None:
    """The SageMaker job a job operator followed (set once its job started or was adopted)."""
    return getattr(operator, "job_name", None)


class RuleTableLink(ModelRunLink):
    """On the gate: the rule table, and the profiler report (the training job's console page
    shows both on AWS)."""

    name = "Rule table and profiler report"
    section = "rules"

    def console_url(self, operator, ti_key, domain, region):
        name = quote(operator.training_job_name, safe="")
        return SAGEMAKER_CONSOLE.format(domain=domain, region=region, resource="jobs", name=name)


class TrainingLogLink(ModelRunLink):
    """On the job tasks: the training job's log (CloudWatch Logs on AWS)."""

    name = "Training log"
    section = "training-log"

    def console_url(self, operator, ti_key, domain, region):
        name = _job_name(operator)
        return name and LOGS_CONSOLE.format(domain=domain, region=region, name=quote(name, safe=""))


class SageMakerJobLink(ModelRunLink):
    """On the tuning and training tasks: the job in the SageMaker console."""

    name = "SageMaker job"
    section = "tuning"
    RESOURCES: ClassVar[dict[str, str]] = {"tuning": "hyper-tuning-jobs", "training": "jobs"}

    def console_url(self, operator, ti_key, domain, region):
        name, resource = _job_name(operator), self.RESOURCES.get(getattr(operator, "job_kind", ""))
        return name and resource and SAGEMAKER_CONSOLE.format(
            domain=domain, region=region, resource=resource, name=quote(name, safe="")
        )  # fmt: skip


class EvaluationReportLink(ModelRunLink):
    """On evaluate: the HTML evaluation report (its S3 console page on AWS)."""

    name = "Evaluation report"
    section = "evaluation"

    def console_url(self, operator, ti_key, domain, region):
        report = XCom.get_value(ti_key=ti_key, key="return_value") or {}
        uri = report.get("html_report_uri")
        if not uri:
            return None
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return S3_CONSOLE.format(domain=domain, region=region, bucket=bucket, key=quote(key))
