"""One job that really trains: the project's ``sagemaker_code/train.py`` on a generated dataset,
in the local runtime, with Debugger hook config; the artifact and metrics are the real ones."""

import io
import tarfile
from pathlib import Path

import pytest
from runtime_support import BUCKET, training_request, wait_for_status

from demo.dataset import make_dataset

pytestmark = pytest.mark.e2e
SAGEMAKER_CODE = Path(__file__).resolve().parents[2] / "sagemaker_code"


def sagemaker_code_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(SAGEMAKER_CODE.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                tar.add(path, arcname=path.relative_to(SAGEMAKER_CODE).as_posix())
    return buffer.getvalue()


def test_train_py_trains_and_produces_a_model(runtime, sagemaker, s3, tmp_path):
    dataset = make_dataset(
        tmp_path / "dataset",
        num_classes=2,
        images_per_class={"train": 8, "valid": 4, "test": 2},
        image_size=32,
    )
    for path in sorted(p for p in dataset.rglob("*") if p.is_file()):
        s3.put_object(
            Bucket=BUCKET,
            Key=f"dogs/{path.relative_to(dataset).as_posix()}",
            Body=path.read_bytes(),
        )
    s3.put_object(Bucket=BUCKET, Key="code/real/sourcedir.tar.gz", Body=sagemaker_code_archive())
    request = training_request("real", BUCKET, "")
    request["HyperParameters"].update(
        {
            "backbone": '"simplecnn"',
            "epochs": "2",
            "batch-size": "8",
            "image-size": "32",
            "lr": "0.01",
            "seed": "0",
            "num-workers": "1",
        }
    )
    request["InputDataConfig"] = [
        {
            "ChannelName": split,
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/dogs/{split}"}
            },
        }
        for split in ("train", "valid")
    ]
    request["DebugHookConfig"] = {
        "S3OutputPath": f"s3://{BUCKET}/debug",
        "CollectionConfigurations": [
            {"CollectionName": "losses", "CollectionParameters": {"save_interval": "1"}}
        ],
    }
    request["Environment"] = {"OMP_NUM_THREADS": "1"}
    sagemaker.create_training_job(**request)

    described = wait_for_status(sagemaker, "real", timeout=240)
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    metrics = {m["MetricName"] for m in described["FinalMetricDataList"]}
    assert metrics == {"valid_acc", "train_loss"}
    body = s3.get_object(Bucket=BUCKET, Key="output/real/output/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        names = tar.getnames()
    assert "model.pt" in names
    assert any(name.startswith("code/") for name in names)
    debug_keys = s3.list_objects_v2(Bucket=BUCKET, Prefix="debug/real/debug-output/")
    assert debug_keys["KeyCount"] > 0, "smdebug wrote no tensors for the rules to read"
    local_debug = runtime.data_dir / "jobs" / "real" / "debug-output"
    assert (local_debug / "training_job_end.ts").exists()
