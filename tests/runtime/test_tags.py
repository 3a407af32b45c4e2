"""AddTags, ListTags and DeleteTags on the runtime's resources, with AWS's limits and paging."""

import pytest
from botocore.exceptions import ClientError
from runtime_support import PYTORCH_IMAGE, ROLE_ARN

SHARES_RUNTIME = True  # names of its own; lists only those (tests/runtime/conftest.py)


def _create_model(sagemaker, name: str, **extra) -> str:
    return sagemaker.create_model(
        ModelName=name, ExecutionRoleArn=ROLE_ARN, PrimaryContainer={"Image": PYTORCH_IMAGE},
        **extra,
    )["ModelArn"]  # fmt: skip


def _all_tags(sagemaker, arn: str) -> list[dict]:
    pages = sagemaker.get_paginator("list_tags").paginate(ResourceArn=arn)
    return [tag for page in pages for tag in page["Tags"]]


def _error(call, **arguments) -> dict:
    with pytest.raises(ClientError) as refused:
        call(**arguments)
    return refused.value.response["Error"]


def test_tags_given_at_create_are_listed_and_can_change(sagemaker):
    arn = _create_model(sagemaker, "tagged-Model", Tags=[{"Key": "team", "Value": "vision"}])
    assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "vision"}]
    sagemaker.add_tags(
        ResourceArn=arn, Tags=[{"Key": "team", "Value": "ml"}, {"Key": "x", "Value": ""}]
    )
    sagemaker.delete_tags(ResourceArn=arn, TagKeys=["x", "not-there"])
    assert _all_tags(sagemaker, arn) == [{"Key": "team", "Value": "ml"}]


def test_list_tags_pages_as_aws_does(sagemaker):
    arn = _create_model(sagemaker, "many-tags")
    tags = [{"Key": f"k{number:02d}", "Value": str(number)} for number in range(50)]
    sagemaker.add_tags(ResourceArn=arn, Tags=tags)
    first = sagemaker.list_tags(ResourceArn=arn, MaxResults=50)
    assert len(first["Tags"]) == 50 and "NextToken" not in first
    sagemaker.delete_tags(ResourceArn=arn, TagKeys=["k00"])
    sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "k00", "Value": "again"}])
    assert len(_all_tags(sagemaker, arn)) == 50


def test_aws_limits_fail_as_validation_errors(sagemaker):
    arn = _create_model(sagemaker, "limited")
    sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": f"k{n}", "Value": "v"} for n in range(50)])
    too_many = _error(sagemaker.add_tags, ResourceArn=arn, Tags=[{"Key": "one-more", "Value": "v"}])
    assert too_many["Code"] == "ValidationException" and "at most 50" in too_many["Message"]
    reserved = _error(
        sagemaker.add_tags, ResourceArn=arn, Tags=[{"Key": "aws:owner", "Value": "v"}]
    )
    assert reserved["Code"] == "ValidationException" and "aws:" in reserved["Message"]
    long_key = _error(sagemaker.add_tags, ResourceArn=arn, Tags=[{"Key": "k" * 129, "Value": "v"}])
    assert long_key["Code"] == "ValidationException" and "128" in long_key["Message"]
    bad_text = _error(sagemaker.add_tags, ResourceArn=arn, Tags=[{"Key": "a;b", "Value": "v"}])
    assert bad_text["Code"] == "ValidationException" and "'a;b'" in bad_text["Message"]


def test_a_reserved_tag_at_create_makes_no_resource(sagemaker):
    error = _error(sagemaker.create_model, ModelName="never-made", ExecutionRoleArn=ROLE_ARN,
                   PrimaryContainer={"Image": PYTORCH_IMAGE},
                   Tags=[{"Key": "aws:cloudformation", "Value": "x"}])  # fmt: skip
    assert error["Code"] == "ValidationException"
    assert sagemaker.list_models(NameContains="never-made")["Models"] == []


def test_unknown_and_recreated_resources(sagemaker, runtime):
    missing = "arn:aws:sagemaker:us-east-1:123456789012:model/no-such-model"
    assert "Could not find resource" in _error(sagemaker.list_tags, ResourceArn=missing)["Message"]
    other = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p"
    assert "tags" in _error(sagemaker.list_tags, ResourceArn=other)["Message"]
    arn = _create_model(sagemaker, "reborn", Tags=[{"Key": "old", "Value": "1"}])
    sagemaker.delete_model(ModelName="reborn")
    assert _create_model(sagemaker, "reborn") == arn
    assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == []
