"""The processing family's pure parts: container-path rewriting and request checks."""

import copy
from pathlib import Path

import pytest
from processing_support import processing_request

from local_sagemaker.errors import ValidationException
from local_sagemaker.executor.processing_run import to_local_paths
from local_sagemaker.sagemaker.processing import check_processing_request

ROOT = Path("/data/processing-jobs/job")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/opt/ml/processing/input/code/run.py", f"{ROOT}/processing/input/code/run.py"),
        ("--output=/opt/ml/processing/output", f"--output={ROOT}/processing/output"),
        ("/opt/ml", str(ROOT)),
        ("a /opt/ml/output/message b", f"a {ROOT}/output/message b"),
        ("/opt/mlx/data", "/opt/mlx/data"),  # another folder
        ("/srv/opt/ml/data", "/srv/opt/ml/data"),  # not a path starting at /opt/ml
        ("s3://bucket/opt/ml/x", "s3://bucket/opt/ml/x"),
    ],
)
def test_container_paths_move_into_the_job_tree(text, expected):
    assert to_local_paths(text, ROOT) == expected


def refusal(change) -> str:
    request = copy.deepcopy(processing_request("job", "bucket"))
    request["ProcessingOutputConfig"] = {
        "Outputs": [
            {
                "OutputName": "out",
                "S3Output": {
                    "S3Uri": "s3://bucket/out",
                    "LocalPath": "/opt/ml/processing/output",
                    "S3UploadMode": "EndOfJob",
                },
            }
        ]
    }
    change(request)
    with pytest.raises(ValidationException) as refused:
        check_processing_request(request)
    return refused.value.message


def test_a_well_formed_request_passes():
    check_processing_request(processing_request("job", "bucket"))


@pytest.mark.parametrize(
    ("local_path", "shown"),
    [("relative/path", "'relative/path'"), ("/opt/ml/processing", "'/opt/ml/processing'"),
     ("/opt/ml/processing/../model", "'/opt/ml/processing/../model'"), (None, "None")],
)  # fmt: skip
def test_local_paths_must_lie_under_the_processing_folder(local_path, shown):
    def change(request):
        request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["LocalPath"] = local_path

    assert refusal(change) == (
        f"ProcessingOutputConfig.Outputs.1.S3Output.LocalPath {shown} must be an absolute path "
        "under /opt/ml/processing/."
    )


def test_what_the_local_runtime_cannot_run_is_refused_by_name():
    def two_instances(request):
        request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = 2

    def image_entrypoint(request):
        del request["AppSpecification"]["ContainerEntrypoint"]

    def continuous_upload(request):
        request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3UploadMode"] = "Continuous"

    def manifest(request):
        request["ProcessingInputs"][0]["S3Input"]["S3DataType"] = "ManifestFile"

    unsupported = " is not supported by the local SageMaker runtime."
    assert (
        refusal(two_instances) == f"ProcessingResources.ClusterConfig.InstanceCount 2{unsupported}"
    )
    assert refusal(image_entrypoint).startswith(
        "A processing job without AppSpecification.ContainerEntrypoint"
    )
    assert refusal(continuous_upload) == (
        "ProcessingOutputConfig.Outputs.1.S3Output.S3UploadMode Continuous" + unsupported
    )
    assert refusal(manifest) == (
        "ProcessingInputs.1.S3Input.S3DataType ManifestFile (use S3Prefix)" + unsupported
    )
