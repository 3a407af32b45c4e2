"""What the run page reads from AWS, against moto's S3, CloudWatch and CloudWatch Logs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from moto import mock_aws
from sagemaker_lifecycle.ui.reader import LOG_GROUP, run_details
from sagemaker_lifecycle.ui.records import CANDIDATE_SOURCES, SOURCES, UNMAPPED, run_record

JOB = "dogbreed-train-1"
# moto's in-process services only: no real AWS account is involved.
MOTO_ENVIRONMENT = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip


@pytest.fixture
def clients(monkeypatch, moto_session):
    for name, value in MOTO_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield {service: moto_session.client(service)
               for service in ("s3", "sagemaker", "logs", "cloudwatch")}  # fmt: skip


def record_training(clients) -> None:
    """What SageMaker leaves behind for a finished training job: metrics per epoch, its log."""
    now = datetime.now(UTC)
    for epoch, (loss, accuracy) in enumerate([(1.2, 0.4), (0.8, 0.6), (0.5, 0.8)]):
        when = now - timedelta(minutes=30) + timedelta(seconds=20 * epoch)
        clients["cloudwatch"].put_metric_data(Namespace=LOG_GROUP, MetricData=[
            {"MetricName": name, "Value": value, "Timestamp": when,
             "Dimensions": [{"Name": "TrainingJobName", "Value": JOB}]}
            for name, value in (("train_loss", loss), ("valid_acc", accuracy))
        ])  # fmt: skip
    logs = clients["logs"]
    logs.create_log_group(logGroupName=LOG_GROUP)
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=f"{JOB}/algo-1-1")
    logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=f"{JOB}/algo-1-1", logEvents=[
        {"timestamp": int(now.timestamp() * 1000) + i, "message": f"epoch {i} done"}
        for i in range(3)
    ])  # fmt: skip


def test_the_run_page_reads_the_catalog_entry_the_curves_and_the_log(clients):
    clients["s3"].create_bucket(Bucket="bucket")
    clients["s3"].put_object(Bucket="bucket", Key="datasets/catalog/0123456789abcdef.json",
                             Body=json.dumps({"source": "demo", "published_at": "x"}))  # fmt: skip
    record_training(clients)
    record = run_record("r", "success", "x", {
        (*SOURCES["settings"], UNMAPPED): {"aws": {"bucket": "bucket"},
                                           "dataset": {"s3_prefix": "datasets"}},
        (*SOURCES["dataset"], UNMAPPED): {"snapshot_id": "0123456789abcdef", "classes": ["a", "b"]},
        # the shown candidate's (map index 0 before compare)
        (*CANDIDATE_SOURCES["training"], 0): {"TrainingJobName": JOB, "FinalMetrics": {}},
    }, {})  # fmt: skip
    details = run_details(record, clients["s3"], clients["sagemaker"], clients["logs"],
                          clients["cloudwatch"])  # fmt: skip
    assert details.problems == []
    assert details.catalog_entry["source"] == "demo"
    assert details.curves == {"train_loss": [(1, 1.2), (2, 0.8), (3, 0.5)],
                              "valid_acc": [(1, 0.4), (2, 0.6), (3, 0.8)]}  # fmt: skip
    assert details.log_tail == ["epoch 0 done", "epoch 1 done", "epoch 2 done"]


def test_a_read_that_fails_is_one_line_on_the_page_not_an_error(clients):
    record = run_record("r", "success", "x", {
        (*SOURCES["settings"], UNMAPPED): {"aws": {"bucket": "no-such-bucket"},
                                           "dataset": {"s3_prefix": "datasets"}},
        (*SOURCES["dataset"], UNMAPPED): {"snapshot_id": "0123456789abcdef", "classes": ["a"]},
    }, {})  # fmt: skip
    details = run_details(record, clients["s3"], clients["sagemaker"], clients["logs"],
                          clients["cloudwatch"])  # fmt: skip
    assert len(details.problems) == 1
    assert details.problems[0].startswith("Could not read the catalog entry: ")
    assert "NoSuchBucket" in details.problems[0]
