"""The runtime's Model Registry through boto3: model package groups, versions numbered per group,
listing (sort, approval filter, pages), approval changes with their rules, customer metadata,
tags, CreateModel from an Approved version only, and the registry kept across a restart."""

import pytest
from botocore.exceptions import ClientError
from runtime_support import BUCKET, PYTORCH_IMAGE, ROLE_ARN, RuntimeProcess

pytestmark = pytest.mark.e2e
MODEL_URL = f"s3://{BUCKET}/registry/model.tar.gz"
INFERENCE = {
    "Containers": [{"Image": PYTORCH_IMAGE, "ModelDataUrl": MODEL_URL,
                    "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}}],
    "SupportedContentTypes": ["image/jpeg", "application/x-image"],
    "SupportedResponseMIMETypes": ["application/json"],
}  # fmt: skip


def _error(call, **arguments) -> dict:
    with pytest.raises(ClientError) as refused:
        call(**arguments)
    return refused.value.response["Error"]


def _register(sagemaker, group: str, **extra) -> str:
    return sagemaker.create_model_package(
        ModelPackageGroupName=group, InferenceSpecification=INFERENCE, **extra
    )["ModelPackageArn"]


@pytest.fixture(scope="module")
def model_data(s3):
    s3.put_object(Bucket=BUCKET, Key="registry/model.tar.gz", Body=b"not read by CreateModel")


def test_versions_are_numbered_per_group_and_describe_as_aws(sagemaker):
    group_arn = sagemaker.create_model_package_group(
        ModelPackageGroupName="Dog-Breeds", ModelPackageGroupDescription="weekly retrains"
    )["ModelPackageGroupArn"]
    assert group_arn.endswith(":model-package-group/dog-breeds")
    sagemaker.create_model_package_group(ModelPackageGroupName="other-project")
    first = _register(sagemaker, "Dog-Breeds", CustomerMetadataProperties={"snapshot": "s1"})
    second = _register(sagemaker, "Dog-Breeds", ModelApprovalStatus="Approved")
    assert _register(sagemaker, "other-project").endswith(":model-package/other-project/1")
    assert first.endswith(":model-package/dog-breeds/1") and second.endswith("/dog-breeds/2")
    described = sagemaker.describe_model_package(ModelPackageName=first)
    assert described["ModelPackageName"] == "Dog-Breeds"
    assert described["ModelPackageVersion"] == 1
    assert described["ModelApprovalStatus"] == "PendingManualApproval"
    assert described["ModelPackageStatus"] == "Completed"
    assert described["InferenceSpecification"] == INFERENCE
    assert described["CustomerMetadataProperties"] == {"snapshot": "s1"}
    group = sagemaker.describe_model_package_group(ModelPackageGroupName="dog-breeds")
    assert group["ModelPackageGroupArn"] == group_arn
    assert group["ModelPackageGroupStatus"] == "Completed"


def test_group_and_package_errors_name_what_is_wrong(sagemaker):
    sagemaker.create_model_package_group(ModelPackageGroupName="errors-group")
    duplicate = _error(sagemaker.create_model_package_group, ModelPackageGroupName="errors-group")
    # The provider's operator recognises an existing group by this message's start.
    assert duplicate["Message"].startswith("Model Package Group already exists")
    missing = _error(sagemaker.describe_model_package, ModelPackageName="no-such-package")
    assert missing["Code"] == "ValidationException" and "no-such-package" in missing["Message"]
    no_group = _error(sagemaker.create_model_package, ModelPackageGroupName="no-such-group")
    assert "ModelPackageGroup" in no_group["Message"] and "no-such-group" in no_group["Message"]
    both = _error(sagemaker.create_model_package, ModelPackageGroupName="errors-group",
                  ModelPackageName="errors-package")  # fmt: skip
    assert "exactly one of" in both["Message"]
    bad_name = _error(sagemaker.create_model_package_group, ModelPackageGroupName="bad_name")
    assert bad_name["Code"] == "ValidationException" and "pattern" in bad_name["Message"]
    arn = _register(sagemaker, "errors-group")
    held = _error(sagemaker.delete_model_package_group, ModelPackageGroupName="errors-group")
    assert held["Code"] == "ConflictException"
    sagemaker.delete_model_package(ModelPackageName=arn)
    sagemaker.delete_model_package_group(ModelPackageGroupName="errors-group")
    gone = _error(sagemaker.describe_model_package_group, ModelPackageGroupName="errors-group")
    assert "does not exist" in gone["Message"]


def test_list_sorts_filters_by_approval_and_pages(sagemaker):
    sagemaker.create_model_package_group(ModelPackageGroupName="listed")
    arns = [_register(sagemaker, "listed") for _ in range(5)]
    sagemaker.update_model_package(ModelPackageArn=arns[1], ModelApprovalStatus="Approved")
    sagemaker.update_model_package(ModelPackageArn=arns[3], ModelApprovalStatus="Approved")
    ascending = sagemaker.list_model_packages(ModelPackageGroupName="listed")
    assert [s["ModelPackageArn"] for s in ascending["ModelPackageSummaryList"]] == arns
    latest_approved = sagemaker.list_model_packages(
        ModelPackageGroupName="listed", ModelApprovalStatus="Approved",
        SortBy="CreationTime", SortOrder="Descending", MaxResults=1,
    )  # fmt: skip
    assert [s["ModelPackageVersion"] for s in latest_approved["ModelPackageSummaryList"]] == [4]
    pages = sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName="listed", PaginationConfig={"PageSize": 2}
    )
    assert [len(page["ModelPackageSummaryList"]) for page in pages] == [2, 2, 1]
    # Unversioned packages are what ListModelPackages lists by default.
    sagemaker.create_model_package(ModelPackageName="standalone", InferenceSpecification=INFERENCE)
    default = sagemaker.list_model_packages(NameContains="standalone")["ModelPackageSummaryList"]
    assert [s["ModelPackageName"] for s in default] == ["standalone"]
    groups = sagemaker.list_model_package_groups(NameContains="listed")
    assert [g["ModelPackageGroupName"] for g in groups["ModelPackageGroupSummaryList"]] == [
        "listed"
    ]


def test_update_changes_approval_and_metadata_of_versions_only(sagemaker):
    sagemaker.create_model_package_group(ModelPackageGroupName="updated")
    arn = _register(sagemaker, "updated", CustomerMetadataProperties={"a": "1", "b": "2"})
    sagemaker.update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Rejected", ApprovalDescription="worse accuracy",
        CustomerMetadataProperties={"c": "3"}, CustomerMetadataPropertiesToRemove=["a"],
    )  # fmt: skip
    package = sagemaker.describe_model_package(ModelPackageName=arn)
    assert package["ModelApprovalStatus"] == "Rejected"
    assert package["ApprovalDescription"] == "worse accuracy"
    assert package["CustomerMetadataProperties"] == {"b": "2", "c": "3"}
    assert package["LastModifiedTime"] >= package["CreationTime"]
    bad_status = _error(sagemaker.update_model_package, ModelPackageArn=arn,
                        ModelApprovalStatus="Maybe")  # fmt: skip
    assert "Approved" in bad_status["Message"]
    sagemaker.update_model_package(ModelPackageArn=arn, ApprovalDescription="re-checked")
    package = sagemaker.describe_model_package(ModelPackageName=arn)
    assert (package["ModelApprovalStatus"], package["ApprovalDescription"]) == (
        "Rejected",
        "re-checked",
    )
    unversioned = sagemaker.create_model_package(
        ModelPackageName="unversioned-one", InferenceSpecification=INFERENCE
    )["ModelPackageArn"]
    refused = _error(sagemaker.update_model_package, ModelPackageArn=unversioned,
                     ModelApprovalStatus="Approved")  # fmt: skip
    assert "versioned model packages only" in refused["Message"]
    too_many = {f"k{n}": "v" for n in range(50)}
    full = _error(sagemaker.update_model_package, ModelPackageArn=arn,
                  CustomerMetadataProperties=too_many)  # fmt: skip
    assert "at most 50" in full["Message"]


def test_create_model_from_an_approved_version_only(sagemaker, model_data):
    sagemaker.create_model_package_group(ModelPackageGroupName="deployed")
    arn = _register(sagemaker, "deployed")
    pending = _error(sagemaker.create_model, ModelName="from-pending", ExecutionRoleArn=ROLE_ARN,
                     PrimaryContainer={"ModelPackageName": arn})  # fmt: skip
    assert "PendingManualApproval" in pending["Message"] and arn in pending["Message"]
    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    sagemaker.create_model(ModelName="from-package", ExecutionRoleArn=ROLE_ARN,
                           PrimaryContainer={"ModelPackageName": arn})  # fmt: skip
    container = sagemaker.describe_model(ModelName="from-package")["PrimaryContainer"]
    assert container["ModelPackageName"] == arn
    assert container["Image"] == PYTORCH_IMAGE and container["ModelDataUrl"] == MODEL_URL
    assert container["Environment"] == {"SAGEMAKER_PROGRAM": "inference.py"}


def test_tags_of_groups_and_versions(sagemaker):
    group = sagemaker.create_model_package_group(
        ModelPackageGroupName="tagged-group", Tags=[{"Key": "team", "Value": "vision"}]
    )["ModelPackageGroupArn"]
    version = _register(sagemaker, "tagged-group", Tags=[{"Key": "run", "Value": "r1"}])
    assert sagemaker.list_tags(ResourceArn=group)["Tags"] == [{"Key": "team", "Value": "vision"}]
    assert sagemaker.list_tags(ResourceArn=version)["Tags"] == [{"Key": "run", "Value": "r1"}]


def test_the_registry_survives_a_restart(tmp_path):
    runtime = RuntimeProcess(tmp_path / "state").start()
    try:
        sagemaker = runtime.client("sagemaker")
        sagemaker.create_model_package_group(ModelPackageGroupName="durable")
        first = _register(sagemaker, "durable")
        sagemaker.update_model_package(ModelPackageArn=first, ModelApprovalStatus="Approved")
        sagemaker.delete_model_package(ModelPackageName=_register(sagemaker, "durable"))
        runtime.kill_hard()
        runtime.start()
        sagemaker = runtime.client("sagemaker")
        described = sagemaker.describe_model_package(ModelPackageName=first)
        assert described["ModelApprovalStatus"] == "Approved"
        # Version 2 was deleted; its number is not given out again.
        assert _register(sagemaker, "durable").endswith("/durable/3")
    finally:
        runtime.stop()
