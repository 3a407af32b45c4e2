"""Requests are routed by the service their signature names: STS and IAM answer for the runtime's
caller, CloudWatch serves training metrics, and any other service gets an error naming it."""

import datetime
import json

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from runtime_support import BUCKET, start_script_job, wait_for_status

SHARES_RUNTIME = True  # names of its own; lists only those (tests/runtime/conftest.py)

METRIC_SCRIPT = """
import time
for epoch, loss in enumerate([0.9, 0.5, 0.25], start=1):
    print(f"epoch={epoch} train_loss={loss}", flush=True)
    time.sleep(0.2)
"""


def _query_client(runtime, service: str, model_dir):
    """A client whose service model offers only the Query protocol (what botocore sent before
    CloudWatch's JSON protocol), loaded from ``model_dir`` as botocore loads any model."""
    session = botocore.session.get_session()
    model = session.get_service_data(service)
    model["metadata"]["protocol"], model["metadata"]["protocols"] = "query", ["query"]
    version_dir = model_dir / service / model["metadata"]["apiVersion"]
    version_dir.mkdir(parents=True)
    (version_dir / "service-2.json").write_text(json.dumps(model))
    session.get_component("data_loader").search_paths.insert(0, str(model_dir))
    key_pair = runtime.key_pair
    return boto3.Session(botocore_session=session).client(
        service, endpoint_url=runtime.url, region_name="us-east-1",
        aws_access_key_id=key_pair.access_key_id, aws_secret_access_key=key_pair.secret_access_key,
        config=Config(retries={"max_attempts": 1}),
    )  # fmt: skip


@pytest.fixture(scope="module")
def metric_job(runtime):
    start_script_job(runtime, BUCKET, "metrics-job", METRIC_SCRIPT)
    return wait_for_status(runtime.client("sagemaker"), "metrics-job")


def test_sts_names_the_runtimes_account_and_caller(runtime):
    identity = runtime.client("sts").get_caller_identity()
    assert identity["Account"] == "123456789012"
    assert identity["Arn"] == "arn:aws:iam::123456789012:user/local-sagemaker"
    assert identity["UserId"].startswith("AIDA") and len(identity["UserId"]) == 21


def test_iam_denies_the_caller_every_action_as_iam_does(runtime):
    iam = runtime.client("iam")
    role = "arn:aws:iam::123456789012:role/LocalSageMakerRole"
    with pytest.raises(ClientError) as denied:
        iam.simulate_principal_policy(PolicySourceArn=role, ActionNames=["s3:GetObject"])
    error = denied.value.response["Error"]
    assert error["Code"] == "AccessDenied"
    assert "iam:SimulatePrincipalPolicy" in error["Message"] and role in error["Message"]
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


@pytest.mark.parametrize("service", ["ecr", "sqs", "lambda"])
def test_an_unserved_service_gets_an_error_naming_it(runtime, service):
    calls = {"ecr": ("describe_repositories", {}), "sqs": ("list_queues", {}),
             "lambda": ("list_functions", {})}  # fmt: skip
    operation, arguments = calls[service]
    with pytest.raises(ClientError) as refused:
        getattr(runtime.client(service), operation)(**arguments)
    assert repr(service) in refused.value.response["Error"]["Message"]
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_s3_still_answers_s3(runtime):
    assert BUCKET in [b["Name"] for b in runtime.client("s3").list_buckets()["Buckets"]]


def _statistics(cloudwatch, job: dict, metric="train_loss", period=60, by_host=False):
    name = job["TrainingJobName"]
    dimension = {"Name": "Host", "Value": f"{name}/algo-1"} if by_host else {
        "Name": "TrainingJobName", "Value": name}  # fmt: skip
    return cloudwatch.get_metric_statistics(
        Namespace="/aws/sagemaker/TrainingJobs", MetricName=metric, Dimensions=[dimension],
        StartTime=job["CreationTime"] - datetime.timedelta(minutes=1),
        EndTime=job["LastModifiedTime"] + datetime.timedelta(minutes=1),
        Period=period, Statistics=["Average", "Minimum", "Maximum", "SampleCount"],
    )["Datapoints"]  # fmt: skip


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_cloudwatch_serves_the_scraped_training_metrics(runtime, metric_job, protocol, tmp_path):
    if protocol == "json":
        cloudwatch = runtime.client("cloudwatch")
    else:
        cloudwatch = _query_client(runtime, "cloudwatch", tmp_path)
    points = _statistics(cloudwatch, metric_job, period=1)
    assert sum(point["SampleCount"] for point in points) == 3
    assert sorted(point["Minimum"] for point in points)[0] == 0.25
    minute = _statistics(cloudwatch, metric_job, period=3600, by_host=True)
    assert minute[0]["Maximum"] == 0.9 and minute[0]["Unit"] == "None"
    listed = cloudwatch.list_metrics(Namespace="/aws/sagemaker/TrainingJobs")["Metrics"]
    host = {"Name": "Host", "Value": "metrics-job/algo-1"}
    by_job = {"Name": "TrainingJobName", "Value": "metrics-job"}
    for dimension in (host, by_job):
        assert {"Namespace": "/aws/sagemaker/TrainingJobs", "MetricName": "train_loss",
                "Dimensions": [dimension]} in listed  # fmt: skip


def test_cloudwatch_metric_data_and_unknown_metrics(runtime, metric_job):
    cloudwatch = runtime.client("cloudwatch")
    metric = {"Namespace": "/aws/sagemaker/TrainingJobs", "MetricName": "train_loss",
              "Dimensions": [{"Name": "Host", "Value": "metrics-job/algo-1"}]}  # fmt: skip
    result = cloudwatch.get_metric_data(
        MetricDataQueries=[{"Id": "loss", "MetricStat": {"Metric": metric, "Period": 3600,
                                                         "Stat": "Average"}}],
        StartTime=metric_job["CreationTime"] - datetime.timedelta(hours=1),
        EndTime=metric_job["LastModifiedTime"] + datetime.timedelta(hours=1),
    )["MetricDataResults"][0]  # fmt: skip
    assert result["Values"] and result["Values"][0] == pytest.approx((0.9 + 0.5 + 0.25) / 3)
    unknown = {**metric_job, "TrainingJobName": "no-such-job"}
    assert _statistics(cloudwatch, unknown) == []


def test_cloudwatch_refuses_what_cloudwatch_refuses(runtime, metric_job):
    cloudwatch = runtime.client("cloudwatch")
    with pytest.raises(ClientError) as refused:
        _statistics(cloudwatch, metric_job, period=45)
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert "Period" in refused.value.response["Error"]["Message"]


def test_a_refused_query_request_is_told_in_querys_form(runtime):
    sts = boto3.client(
        "sts", endpoint_url=runtime.url, region_name="us-east-1",
        aws_access_key_id=runtime.key_pair.access_key_id, aws_secret_access_key="wrong",
    )  # fmt: skip
    with pytest.raises(ClientError) as refused:
        sts.get_caller_identity()
    assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
