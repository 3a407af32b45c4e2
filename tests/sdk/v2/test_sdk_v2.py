"""What a notebook user does with the SageMaker Python SDK v2 (the seeds' API), unpatched,
against a real runtime process: fit with Debugger and profiler rules, tune, attach, deploy,
transform, logs and analytics."""

import json
import time

import boto3
import pytest
import sagemaker
from conftest import BUCKET, ROLE_ARN, SOURCE_DIR
from sagemaker.analytics import TrainingJobAnalytics
from sagemaker.debugger import ProfilerRule, Rule, rule_configs
from sagemaker.deserializers import JSONDeserializer
from sagemaker.pytorch import PyTorch
from sagemaker.serializers import JSONSerializer
from sagemaker.tuner import ContinuousParameter, HyperparameterTuner

pytestmark = pytest.mark.e2e
METRICS = [
    {"Name": "train_loss", "Regex": "train_loss=([0-9.]+)"},
    {"Name": "valid_loss", "Regex": "valid_loss=([0-9.]+)"},
]
TERMINAL_RULE_STATUSES = {"NoIssuesFound", "IssuesFound", "Error", "Stopped"}


@pytest.fixture(scope="module")
def session(sdk_environment):
    return sagemaker.Session(boto3.Session(), default_bucket=BUCKET)


def pytorch_estimator(session, **extra) -> PyTorch:
    return PyTorch(
        entry_point="train.py", source_dir=str(SOURCE_DIR), role=ROLE_ARN,
        framework_version="2.0", py_version="py310", instance_count=1,
        instance_type="ml.m5.large", hyperparameters={"epochs": 2}, metric_definitions=METRICS,
        sagemaker_session=session, **extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def estimator(session, train_data):
    estimator = pytorch_estimator(
        session,
        rules=[
            Rule.sagemaker(rule_configs.loss_not_decreasing()),
            Rule.sagemaker(rule_configs.overfit()),
            ProfilerRule.sagemaker(rule_configs.LowGPUUtilization()),
        ],
    )
    estimator.fit({"train": train_data}, logs=False)
    return estimator


@pytest.fixture(scope="module")
def tuner(session, train_data):
    tuner = HyperparameterTuner(
        pytorch_estimator(session), objective_metric_name="valid_loss",
        objective_type="Minimize", metric_definitions=[METRICS[1]],
        hyperparameter_ranges={"lr": ContinuousParameter(0.01, 0.5)},
        max_jobs=2, max_parallel_jobs=2,
    )  # fmt: skip
    tuner.fit({"train": train_data}, logs=False)
    return tuner


def test_fit_runs_the_job_to_completion(estimator):
    description = estimator.latest_training_job.describe()
    assert description["TrainingJobStatus"] == "Completed"
    assert estimator.model_data.endswith("/output/model.tar.gz")


def test_rule_job_summary_reports_every_rule(estimator):
    deadline = time.monotonic() + 180
    while True:
        summary = estimator.latest_training_job.rule_job_summary()
        statuses = {rule["RuleConfigurationName"]: rule["RuleEvaluationStatus"] for rule in summary}
        if set(statuses.values()) <= TERMINAL_RULE_STATUSES or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert set(statuses) == {"LossNotDecreasing", "Overfit", "LowGPUUtilization"}
    assert set(statuses.values()) <= TERMINAL_RULE_STATUSES, statuses


def test_logs_for_job_prints_the_training_log(estimator, session, capsys):
    session.logs_for_job(estimator.latest_training_job.name, wait=False)
    assert "train_loss=" in capsys.readouterr().out


def test_training_job_analytics_reads_the_metrics(estimator):
    frame = TrainingJobAnalytics(
        estimator.latest_training_job.name, metric_names=["train_loss", "valid_loss"]
    ).dataframe()
    assert set(frame["metric_name"]) == {"train_loss", "valid_loss"}
    assert (frame["value"] > 0).all()


def test_attach_rebuilds_the_estimator(estimator, session):
    attached = PyTorch.attach(estimator.latest_training_job.name, sagemaker_session=session)
    assert attached.model_data == estimator.model_data


def test_deploy_and_predict(estimator):
    predictor = estimator.deploy(
        initial_instance_count=1, instance_type="ml.m5.large",
        serializer=JSONSerializer(), deserializer=JSONDeserializer(),
    )  # fmt: skip
    try:
        assert predictor.predict([[-1.0, 0.5], [1.0, 0.5]]) == [0, 1]
    finally:
        predictor.delete_endpoint()


def test_transformer_writes_one_output_per_input(estimator, runtime):
    s3 = runtime.client("s3")
    s3.put_object(Bucket=BUCKET, Key="batch/in/rows.json", Body=json.dumps([[1.0, 0.2]]).encode())
    transformer = estimator.transformer(
        instance_count=1, instance_type="ml.m5.large", output_path=f"s3://{BUCKET}/batch/out",
        accept="application/json",
    )  # fmt: skip
    transformer.transform(f"s3://{BUCKET}/batch/in", content_type="application/json", logs=False)
    transformer.wait(logs=False)
    output = s3.get_object(Bucket=BUCKET, Key="batch/out/rows.json.out")["Body"].read()
    assert json.loads(output) == [1]


def test_tuner_fit_and_analytics(tuner):
    frame = tuner.analytics().dataframe()
    assert len(frame) == 2 and set(frame["TrainingJobStatus"]) == {"Completed"}
    assert frame["FinalObjectiveValue"].notna().all()
    assert tuner.best_training_job() in set(frame["TrainingJobName"])


def test_best_estimator_is_the_best_training_job(tuner):
    best = tuner.best_estimator()
    assert best.latest_training_job.name == tuner.best_training_job()
