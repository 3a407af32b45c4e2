"""Staging the archives a multi-model model serves (deployment.mode multi_model).

A multi-model model's ModelDataUrl is a prefix; each `<prefix><candidate>.tar.gz` under it is one
model, reached by InvokeEndpoint's TargetModel (`request_builders.target_model`). The trained
archives stay where their training jobs wrote them and are copied under the prefix in S3 itself,
never through the worker.
"""

from __future__ import annotations

from collections.abc import Mapping

from airflow.providers.amazon.aws.hooks.s3 import S3Hook

from sagemaker_lifecycle.naming import RunNames
from sagemaker_lifecycle.request_builders import (
    MULTI_MODEL,
    multi_model_prefix,
    rollback_archives,
    rollback_prefix,
    target_model,
)
from sagemaker_lifecycle.staging import head_or_none

# Set on each staged copy: the ETag of the archive it was copied from. A managed copy of a large
# archive is multipart, so the copy's own ETag differs from its source's even when the bytes match.
SOURCE_ETAG = "source-etag"


def stage_archives(s3, archives: Mapping[str, str], prefix: str) -> list[str]:
    """Copy each candidate's model.tar.gz (`archives`: candidate -> s3 URI) to
    `<prefix><target_model(candidate)>`, server-side (boto3's managed copy, multipart for large
    archives); returns the staged URIs in `archives`' order.

    A copy already staged from the same source (a retried task) is kept, not copied again.
    ValueError naming the candidate when its source archive does not exist; nothing is copied
    then, so a prefix never holds part of a run's candidates because one was missing."""
    if not prefix.startswith("s3://") or not prefix.endswith("/"):
        raise ValueError(f"multi-model prefix {prefix!r} must be an s3:// URI ending with '/'")
    prefix_bucket, prefix_key = S3Hook.parse_s3_url(prefix)
    copies = []
    for candidate, uri in archives.items():
        target = f"{prefix_key}{target_model(candidate)}"
        bucket, key = S3Hook.parse_s3_url(uri)
        head = head_or_none(s3, bucket, key)
        if head is None:
            raise ValueError(f"candidate {candidate}: its model archive {uri} does not exist")
        copies.append((bucket, key, head["ETag"].strip('"'), target))
    staged = []
    for bucket, key, etag, target in copies:
        existing = head_or_none(s3, prefix_bucket, target)
        if existing is None or existing.get("Metadata", {}).get(SOURCE_ETAG) != etag:
            s3.copy(
                {"Bucket": bucket, "Key": key},
                prefix_bucket,
                target,
                ExtraArgs={"Metadata": {SOURCE_ETAG: etag}, "MetadataDirective": "REPLACE"},
            )
        staged.append(f"s3://{prefix_bucket}/{target}")
    return staged


def stage_for_deployment(
    s3, settings: Mapping, names: RunNames, archives: Mapping[str, str]
) -> list[str]:
    """Stage what `request_builders.deployed_model_request` serves: in multi_model mode the
    archives of the candidates that passed (candidate -> model.tar.gz) under the run's
    `multi_model_prefix`; nothing in single_model mode, where the winner's archive serves as
    it is."""
    if settings["deployment"]["mode"] != MULTI_MODEL:
        return []
    return stage_archives(s3, archives, multi_model_prefix(settings, names))


def stage_for_rollback(s3, settings: Mapping, names: RunNames, version: Mapping) -> list[str]:
    """Stage what `request_builders.rollback_model_request` serves: in multi_model mode the
    version's (DescribeModelPackage) archive under its candidate's TargetModel in the rollback
    run's `rollback_prefix`; nothing in single_model mode, where the version's own model
    serves."""
    if settings["deployment"]["mode"] != MULTI_MODEL:
        return []
    return stage_archives(s3, rollback_archives(version), rollback_prefix(settings, names))
