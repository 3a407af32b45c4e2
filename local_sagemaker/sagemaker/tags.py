"""Tags: AddTags, ListTags and DeleteTags for every resource the runtime creates, and the Tags a
Create* request gives (kept by :meth:`Tags.tag_created_resource`).

Tags are kept per resource ARN with the resource's CreationTime, so a resource deleted and made
again under the same name starts untagged, as on AWS. A resource is found through its family's
List* operation (the ARN's name is lower-cased, so the name alone cannot find it). AWS's limits:
at most 50 tags per resource, keys of 1-128 and values of 0-256 characters from letters, digits,
spaces and ``_.:/=+-@`` (lengths are checked with the rest of the request against botocore's
shapes), and keys starting with ``aws:`` are reserved. Each limit fails as ValidationException.
"""

from collections.abc import Callable, Mapping

import regex

from local_sagemaker.errors import ValidationException
from local_sagemaker.paging import every_item, paginate

TAGS = "tags"
MAX_TAGS_PER_RESOURCE = 50
# botocore's Tag.Key/Value pattern uses Unicode classes Python's re lacks; `regex` has them.
TAG_TEXT = regex.compile(r"^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$")
RESERVED_PREFIX = "aws:"
# ARN resource type -> (the family's List* operation, its list member, the summary's ARN member).
TAGGABLE = {
    "training-job": ("ListTrainingJobs", "TrainingJobSummaries", "TrainingJobArn"),
    "processing-job": ("ListProcessingJobs", "ProcessingJobSummaries", "ProcessingJobArn"),
    "transform-job": ("ListTransformJobs", "TransformJobSummaries", "TransformJobArn"),
    "hyper-parameter-tuning-job": (
        "ListHyperParameterTuningJobs",
        "HyperParameterTuningJobSummaries",
        "HyperParameterTuningJobArn",
    ),
    "model": ("ListModels", "Models", "ModelArn"),
    "endpoint-config": ("ListEndpointConfigs", "EndpointConfigs", "EndpointConfigArn"),
    "endpoint": ("ListEndpoints", "Endpoints", "EndpointArn"),
    "model-package-group": (
        "ListModelPackageGroups",
        "ModelPackageGroupSummaryList",
        "ModelPackageGroupArn",
    ),
    "model-package": ("ListModelPackages", "ModelPackageSummaryList", "ModelPackageArn"),
}
# What a List* operation needs beyond NameContains to list every resource of its type.
LIST_EVERY = {"model-package": {"ModelPackageType": "Both"}}


def check_tags(tags: list[dict]) -> None:
    """ValidationException naming the first tag AWS would refuse (characters, reserved prefix)."""
    for tag in tags:
        for member in ("Key", "Value"):
            if not TAG_TEXT.match(tag.get(member, "")):
                raise ValidationException(
                    f"Tag {member.lower()} {tag[member]!r} may contain only Unicode letters, "
                    "digits, white space and _ . : / = + - @"
                )
        if tag["Key"].lower().startswith(RESERVED_PREFIX):
            raise ValidationException(
                f"Tag key {tag['Key']!r} uses the prefix 'aws:', which is reserved for AWS use"
            )


def _record_name(arn: str) -> str:
    """The store name of an ARN's tags: ``<resource type>.<name>`` (both ``[a-z0-9-]``), and
    ``.<version>`` for a model package version."""
    return arn.split(":", 5)[5].replace("/", ".")


class Tags:
    """The tags family of the SageMaker backend (see the module docstring): given the services
    and the backend's operation table, whose List* operations find the tagged resources."""

    def __init__(self, services, operations: Mapping[str, Callable[[dict], dict]]):
        self.store = services.store
        self.config = services.config
        self.operations = operations

    def recover(self) -> None:
        """Tags are plain records: nothing runs, nothing to recover."""

    def shutdown(self) -> None:
        """Nothing runs, nothing to end."""

    def add_tags(self, request: dict) -> dict:
        arn = request["ResourceArn"]
        check_tags(request["Tags"])
        created = self._resource_creation_time(arn)
        merged = {tag["Key"]: tag["Value"] for tag in self._current_tags(arn, created)}
        merged.update({tag["Key"]: tag.get("Value", "") for tag in request["Tags"]})
        if len(merged) > MAX_TAGS_PER_RESOURCE:
            raise ValidationException(
                f"Resource {arn} would have {len(merged)} tags; a resource has at most "
                f"{MAX_TAGS_PER_RESOURCE}"
            )
        tags = [{"Key": key, "Value": value} for key, value in merged.items()]
        self.store.put(TAGS, _record_name(arn), {"ResourceArn": arn, "CreationTime": created,
                                                 "Tags": tags})  # fmt: skip
        return {"Tags": request["Tags"]}

    def list_tags(self, request: dict) -> dict:
        arn = request["ResourceArn"]
        tags = self._current_tags(arn, self._resource_creation_time(arn))
        return paginate(tags, request, "ListTags")

    def delete_tags(self, request: dict) -> dict:
        arn = request["ResourceArn"]
        created = self._resource_creation_time(arn)
        removed = set(request["TagKeys"])
        kept = [tag for tag in self._current_tags(arn, created) if tag["Key"] not in removed]
        self.store.put(TAGS, _record_name(arn), {"ResourceArn": arn, "CreationTime": created,
                                                 "Tags": kept})  # fmt: skip
        return {}

    def tag_created_resource(self, arn: str, tags: list[dict]) -> None:
        """Keep the Tags a Create* request gave (checked with :func:`check_tags` beforehand)."""
        self.add_tags({"ResourceArn": arn, "Tags": tags})

    def _current_tags(self, arn: str, created) -> list[dict]:
        record = self.store.get(TAGS, _record_name(arn))
        if record is None or record["CreationTime"] != created:
            return []  # never tagged, or tags of an earlier resource of the same name
        return record["Tags"]

    def _resource_creation_time(self, arn: str):
        """The CreationTime of the resource ``arn`` names; ValidationException when none does."""
        _, _, service, region, account, resource = (arn.split(":", 5) + [""] * 6)[:6]
        resource_type, _, name = resource.partition("/")
        if resource_type not in TAGGABLE or not name:
            kinds = ", ".join(TAGGABLE)
            raise ValidationException(
                f"{arn} is not the ARN of a resource the local SageMaker runtime tags ({kinds})"
            )
        list_operation, list_key, arn_key = TAGGABLE[resource_type]
        if (service, region, account) == ("sagemaker", self.config.region, self.config.account):
            summaries = every_item(
                self.operations[list_operation],
                list_key,
                # A model package version's ARN ends <group>/<version>; its name is the group's.
                {"NameContains": name.partition("/")[0], **LIST_EVERY.get(resource_type, {})},
            )
            for summary in summaries:
                if summary[arn_key] == arn:
                    return summary["CreationTime"]
        raise ValidationException(f"Could not find resource {arn}.")
