"""The project's own inference handlers (sagemaker_code/inference.py) served by the runtime:
an endpoint answering JPEGs and a batch transform over a dataset split, through boto3."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hosting_support import (
    FAST_WAITER,
    build_classifier_model_dir,
    running_runtime,
)

from local_sagemaker.executor.archives import pack_directory

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))
from demo.dataset import class_names, make_dataset  # noqa: E402

pytestmark = pytest.mark.e2e
NUM_CLASSES = 3


def validation_pictures(dataset: Path) -> list[str]:
    """The validation split's picture files, relative to the split's folder, sorted."""
    split = dataset / "valid"
    return sorted(p.relative_to(split).as_posix() for p in split.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    root = tmp_path_factory.mktemp("classifier")
    dataset = make_dataset(
        root / "dataset", NUM_CLASSES, {"train": 1, "valid": 3, "test": 1}, image_size=32
    )
    names = class_names(NUM_CLASSES)
    model_dir = build_classifier_model_dir(root / "model", names)
    archive = pack_directory(model_dir, root / "model.tar.gz")
    with running_runtime(root / "state") as runtime:
        s3, sagemaker = runtime.client("s3"), runtime.client("sagemaker")
        s3.create_bucket(Bucket="pipeline")
        s3.upload_file(str(archive), "pipeline", "jobs/train/output/model.tar.gz")
        for relative in validation_pictures(dataset):
            s3.upload_file(
                str(dataset / "valid" / relative), "pipeline", f"dataset/valid/{relative}"
            )
        sagemaker.create_model(
            ModelName="dog-breeds",
            ExecutionRoleArn="arn:aws:iam::123456789012:role/local",
            PrimaryContainer={
                "Image": "pytorch-inference:2.5-cpu-py311",
                "ModelDataUrl": "s3://pipeline/jobs/train/output/model.tar.gz",
                "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
            },
        )
        yield {
            "runtime": runtime,
            "s3": s3,
            "sagemaker": sagemaker,
            "dataset": dataset,
            "names": names,
        }


def test_endpoint_classifies_a_jpeg(deployed):
    sagemaker = deployed["sagemaker"]
    sagemaker.create_endpoint_config(
        EndpointConfigName="dog-breeds",
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "dog-breeds", "InitialInstanceCount": 1}
        ],
    )
    sagemaker.create_endpoint(EndpointName="dog-breeds", EndpointConfigName="dog-breeds")
    sagemaker.get_waiter("endpoint_in_service").wait(
        EndpointName="dog-breeds", WaiterConfig=FAST_WAITER
    )
    picture = next((deployed["dataset"] / "valid").rglob("*.jpg"))
    response = (
        deployed["runtime"]
        .client("sagemaker-runtime")
        .invoke_endpoint(
            EndpointName="dog-breeds", Body=picture.read_bytes(), ContentType="image/jpeg"
        )
    )
    predictions = json.loads(response["Body"].read())["predictions"]
    assert {p["label"] for p in predictions} <= set(deployed["names"])
    assert sum(p["probability"] for p in predictions) == pytest.approx(1.0, abs=1e-3)
    assert predictions == sorted(predictions, key=lambda p: -p["probability"])


def test_transform_scores_every_validation_image(deployed):
    s3, sagemaker = deployed["s3"], deployed["sagemaker"]
    sagemaker.create_transform_job(
        TransformJobName="dog-breeds-valid",
        ModelName="dog-breeds",
        MaxConcurrentTransforms=2,
        TransformInput={
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://pipeline/dataset/valid/"}
            },
            "ContentType": "application/x-image",
        },
        TransformOutput={"S3OutputPath": "s3://pipeline/transform/", "Accept": "application/json"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )
    sagemaker.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName="dog-breeds-valid", WaiterConfig=FAST_WAITER
    )
    job = sagemaker.describe_transform_job(TransformJobName="dog-breeds-valid")
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    inputs = validation_pictures(deployed["dataset"])
    listed = s3.list_objects_v2(Bucket="pipeline", Prefix="transform/")["Contents"]
    assert sorted(o["Key"] for o in listed) == [f"transform/{key}.out" for key in inputs]
    output = s3.get_object(Bucket="pipeline", Key=f"transform/{inputs[0]}.out")["Body"].read()
    assert json.loads(output)["predictions"][0]["label"] in deployed["names"]
