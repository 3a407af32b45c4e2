"""What a notebook user does with the SageMaker Python SDK v3, unpatched, against a real runtime
process: ModelTrainer, HyperparameterTuner and the sagemaker-core resources."""

import io
import tarfile

import boto3
import pytest
from conftest import BUCKET, ROLE_ARN, SOURCE_DIR
from sagemaker.core.helper.session_helper import Session
from sagemaker.core.parameter import ContinuousParameter
from sagemaker.core.resources import Model, Tag, TrainingJob
from sagemaker.core.shapes import ContainerDefinition
from sagemaker.core.shapes import Tag as TagShape
from sagemaker.core.training.configs import Compute, InputData, SourceCode
from sagemaker.train import ModelTrainer
from sagemaker.train.tuner import HyperparameterTuner

pytestmark = pytest.mark.e2e
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-cpu-py311"
VALID_LOSS = {"Name": "valid_loss", "Regex": "valid_loss=([0-9.]+)"}


@pytest.fixture(scope="module")
def session(sdk_environment):
    return Session(boto3.Session(), default_bucket=BUCKET)


@pytest.fixture(scope="module")
def script_mode_trainer(session, runtime, train_data):
    """A ModelTrainer running the PyTorch image's script mode on an uploaded source dir (the
    ``sagemaker_program``/``sagemaker_submit_directory`` hyperparameters the image reads)."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(SOURCE_DIR / "train.py", arcname="train.py")
    runtime.client("s3").put_object(
        Bucket=BUCKET, Key="v3/sourcedir.tar.gz", Body=archive.getvalue()
    )
    return ModelTrainer(
        training_image=IMAGE, role=ROLE_ARN, sagemaker_session=session,
        compute=Compute(instance_type="ml.m5.large", instance_count=1),
        hyperparameters={"epochs": 2, "sagemaker_program": "train.py",
                         "sagemaker_submit_directory": f"s3://{BUCKET}/v3/sourcedir.tar.gz"},
        base_job_name="v3-script-mode",
    )  # fmt: skip


def test_model_trainer_with_source_code_trains(session, train_data):
    trainer = ModelTrainer(
        training_image=IMAGE, role=ROLE_ARN, sagemaker_session=session,
        source_code=SourceCode(source_dir=str(SOURCE_DIR), entry_script="train.py"),
        compute=Compute(instance_type="ml.m5.large", instance_count=1),
        hyperparameters={"epochs": 2}, base_job_name="v3-source-code",
    )  # fmt: skip
    trainer.train(input_data_config=[InputData(channel_name="train", data_source=train_data)],
                  wait=True, logs=False)  # fmt: skip
    assert trainer._latest_training_job.training_job_status == "Completed"


def test_hyperparameter_tuner_tunes_and_reports(script_mode_trainer, train_data):
    tuner = HyperparameterTuner(
        script_mode_trainer, objective_metric_name="valid_loss", objective_type="Minimize",
        metric_definitions=[VALID_LOSS], max_jobs=2, max_parallel_jobs=2,
        hyperparameter_ranges={"lr": ContinuousParameter(0.01, 0.5)},
    )  # fmt: skip
    tuner.tune(inputs=[InputData(channel_name="train", data_source=train_data)], wait=True)
    frame = tuner.analytics().dataframe()
    assert len(frame) == 2 and set(frame["TrainingJobStatus"]) == {"Completed"}
    best = tuner.best_training_job()
    assert best in set(frame["TrainingJobName"])
    job = TrainingJob.get(best)
    assert job.training_job_status == "Completed"
    assert job.tuning_job_arn and job.final_metric_data_list


def test_core_resources_list_get_tag_and_delete(session, runtime):
    listed = runtime.client("sagemaker").list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
    names = {job.training_job_name for job in TrainingJob.get_all()}
    assert names == {summary["TrainingJobName"] for summary in listed}
    model = Model.create(
        model_name="v3-core-model", execution_role_arn=ROLE_ARN,
        primary_container=ContainerDefinition(image=IMAGE),
    )  # fmt: skip
    Tag.add_tags(resource_arn=model.model_arn, tags=[TagShape(key="owner", value="notebook")])
    assert [(tag.key, tag.value) for tag in Tag.get_all(resource_arn=model.model_arn)] == [
        ("owner", "notebook")
    ]
    Tag.delete_tags(resource_arn=model.model_arn, tag_keys=["owner"])
    assert list(Tag.get_all(resource_arn=model.model_arn)) == []
    assert Model.get("v3-core-model").model_arn == model.model_arn
    model.delete()
    assert "v3-core-model" not in [m.model_name for m in Model.get_all()]
