"""deployment.mode multi_model: the run's model serves every candidate that passed from one S3
prefix (TargetModel `<candidate>.tar.gz`), its archives are copied there server-side, and a
rollback serves the version's archive under its candidate's TargetModel."""

from __future__ import annotations

import botocore.session
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.validate import validate_parameters
from sagemaker_lifecycle import multi_model
from sagemaker_lifecycle import request_builders as rb
from sagemaker_lifecycle.settings import SettingsError

SERVICE = botocore.session.get_session().get_service_model("sagemaker")
BUCKET = "dog-breed-classifier"
ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/dogbreed-models/3"


def assert_valid_model(request: dict) -> None:
    validate_parameters(request, SERVICE.operation_model("CreateModel").input_shape)


def version(candidate: str | None = "resnet50") -> dict:
    """DescribeModelPackage of a version registered by model_version_request."""
    metadata = {"training_job": "t"} | ({} if candidate is None else {"Candidate": candidate})
    container = {"Image": "inference:1", "ImageDigest": "sha256:0",
                 "ModelDataUrl": f"s3://{BUCKET}/jobs/t/output/model.tar.gz",
                 "Environment": {"SAGEMAKER_PROGRAM": "inference.py",
                                 "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}}  # fmt: skip
    return {"ModelPackageArn": ARN, "InferenceSpecification": {"Containers": [container]},
            "CustomerMetadataProperties": metadata}  # fmt: skip


def test_multi_model_is_the_default_mode_and_an_unknown_mode_is_refused(settings, settings_with):
    assert settings["deployment"]["mode"] == "multi_model"
    assert settings_with({"deployment": {"mode": "single_model"}})["deployment"]["mode"]
    with pytest.raises(SettingsError, match=r"deployment\.mode is 'multi'; expected one of "
                                            r"multi_model, single_model"):  # fmt: skip
        settings_with({"deployment": {"mode": "multi"}})


def test_the_multi_model_request_serves_the_runs_prefix_with_the_inference_container(
    settings, names
):
    request = rb.multi_model_request(settings, names)
    assert_valid_model(request)
    prefix = f"s3://{BUCKET}/models/{names.run_stamp}/"
    assert rb.multi_model_prefix(settings, names) == prefix
    single = rb.model_request(settings, names, "s3://b/model.tar.gz")
    container = request["PrimaryContainer"]
    assert container["Mode"] == "MultiModel" and container["ModelDataUrl"] == prefix
    assert request["ModelName"] == single["ModelName"] == names.model
    assert container["Image"] == single["PrimaryContainer"]["Image"]
    # Each model is extracted to its own folder; the toolkit finds its code/ there.
    expected_environment = dict(single["PrimaryContainer"]["Environment"])
    del expected_environment["SAGEMAKER_SUBMIT_DIRECTORY"]
    assert container["Environment"] == expected_environment


def test_the_deployed_model_follows_the_mode(settings, settings_with, names):
    winner = "s3://b/jobs/w/output/model.tar.gz"
    assert rb.deployed_model_request(settings, names, winner) == rb.multi_model_request(
        settings, names
    )
    single = settings_with({"deployment": {"mode": "single_model"}})
    request = rb.deployed_model_request(single, names, winner)
    assert request == rb.model_request(single, names, winner)
    assert "Mode" not in request["PrimaryContainer"]


@pytest.mark.parametrize("candidate", ["resnet50", "mobilenet_v2", "vit-b.16"])
def test_a_candidates_target_model_is_its_archive_under_the_prefix(candidate):
    assert rb.target_model(candidate) == f"{candidate}.tar.gz"


def test_a_request_names_its_candidate_only_in_multi_model_mode(settings, settings_with):
    assert rb.invocation_target(settings, "resnet50") == {"TargetModel": "resnet50.tar.gz"}
    single = settings_with({"deployment": {"mode": "single_model"}})
    assert rb.invocation_target(single, "resnet50") == {}


@pytest.mark.parametrize("candidate", ["", "a/b", "../x", "res net", "-x", "x" * 101, None])
def test_a_name_that_cannot_be_a_target_model_is_refused(candidate):
    with pytest.raises(ValueError, match="cannot name a TargetModel"):
        rb.target_model(candidate)


def test_the_version_records_its_candidate_only_when_given(settings, names, staged_dataset):
    tuning, verdict = {"TuningJobName": "tu"}, {"decision": "deploy", "outcomes": []}
    training = {"TrainingJobName": "tr", "ModelArtifact": "s3://b/m.tar.gz"}
    arguments = (settings, names, staged_dataset, tuning, training, verdict)
    with_candidate = rb.model_version_request(*arguments, candidate="mobilenet_v2")
    validate_parameters(with_candidate, SERVICE.operation_model("CreateModelPackage").input_shape)
    assert with_candidate["CustomerMetadataProperties"]["Candidate"] == "mobilenet_v2"
    assert "Candidate" not in rb.model_version_request(*arguments)["CustomerMetadataProperties"]


def test_a_multi_model_rollback_serves_the_versions_archive_under_its_target_model(settings, names):
    request = rb.rollback_model_request(settings, names, version())
    assert_valid_model(request)
    container = request["PrimaryContainer"]
    prefix = rb.rollback_prefix(settings, names)
    assert prefix == f"s3://{BUCKET}/models/{names.run_stamp}-rollback/"
    assert container == {"Image": "inference:1", "ModelDataUrl": prefix, "Mode": "MultiModel",
                         "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}}  # fmt: skip
    assert rb.rollback_archives(version()) == {
        "resnet50": f"s3://{BUCKET}/jobs/t/output/model.tar.gz"
    }


def test_a_single_model_rollback_makes_the_versions_own_model(settings_with, names):
    single = settings_with({"deployment": {"mode": "single_model"}})
    request = rb.rollback_model_request(single, names, version(candidate=None))
    assert request == rb.model_from_version_request(single, names.model, ARN)


def test_a_multi_model_rollback_to_a_version_without_a_candidate_says_what_to_do(settings, names):
    with pytest.raises(ValueError, match=r"records no 'Candidate'.*deployment\.mode single_model"):
        rb.rollback_model_request(settings, names, version(candidate=None))


# ---- staging the archives -------------------------------------------------------------------

PREFIX = f"s3://{BUCKET}/models/261202-1a2b3c4d/"


@pytest.fixture
def archives(s3) -> dict[str, str]:
    s3.create_bucket(Bucket=BUCKET)
    uris = {}
    for candidate in ("resnet50", "mobilenet_v2"):
        key = f"jobs/{candidate}/output/model.tar.gz"
        s3.put_object(Bucket=BUCKET, Key=key, Body=candidate.encode() * 1000)
        uris[candidate] = f"s3://{BUCKET}/{key}"
    return uris


def body(s3, uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_each_candidates_archive_is_copied_under_its_target_model(s3, archives):
    staged = multi_model.stage_archives(s3, archives, PREFIX)
    assert staged == [f"{PREFIX}resnet50.tar.gz", f"{PREFIX}mobilenet_v2.tar.gz"]
    for candidate, uri in zip(archives, staged, strict=True):
        assert body(s3, uri) == candidate.encode() * 1000


def test_a_retried_staging_copies_nothing_again_unless_the_source_changed(
    s3, archives, monkeypatch
):
    multi_model.stage_archives(s3, archives, PREFIX)
    copies = []
    original = s3.copy
    monkeypatch.setattr(s3, "copy", lambda *a, **k: copies.append(a[2]) or original(*a, **k))
    assert multi_model.stage_archives(s3, archives, PREFIX) == [
        f"{PREFIX}resnet50.tar.gz", f"{PREFIX}mobilenet_v2.tar.gz"
    ]  # fmt: skip
    assert copies == []
    s3.put_object(Bucket=BUCKET, Key="jobs/resnet50/output/model.tar.gz", Body=b"retrained")
    multi_model.stage_archives(s3, archives, PREFIX)
    assert copies == ["models/261202-1a2b3c4d/resnet50.tar.gz"]
    assert body(s3, f"{PREFIX}resnet50.tar.gz") == b"retrained"


def test_a_missing_archive_is_named_and_nothing_is_staged(s3, archives):
    archives = {**archives, "vit": f"s3://{BUCKET}/jobs/vit/output/model.tar.gz"}
    with pytest.raises(ValueError, match=r"candidate vit: its model archive s3://\S+/jobs/vit/"
                                         r"output/model.tar.gz does not exist"):  # fmt: skip
        multi_model.stage_archives(s3, archives, PREFIX)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="models/")


def test_a_prefix_that_is_not_a_folder_is_refused(s3, archives):
    with pytest.raises(ValueError, match="must be an s3:// URI ending with '/'"):
        multi_model.stage_archives(s3, archives, PREFIX.rstrip("/"))


def test_a_large_archive_is_copied_in_parts_and_still_found_staged_on_a_retry(s3, monkeypatch):
    """boto3's managed copy goes multipart over its threshold: the copy's ETag is then not its
    source's, so staging recognises its own copy by the source ETag it recorded."""
    s3.create_bucket(Bucket=BUCKET)
    large = bytes(range(256)) * (6 * 1024 * 4)  # 6 MiB: two 5 MiB parts
    s3.put_object(Bucket=BUCKET, Key="jobs/big/model.tar.gz", Body=large)
    small_parts = TransferConfig(multipart_threshold=5 * 1024 * 1024,
                                 multipart_chunksize=5 * 1024 * 1024)  # fmt: skip
    original = s3.copy
    copies = []

    def copy_in_parts(*arguments, **keywords):
        copies.append(arguments[2])
        return original(*arguments, Config=small_parts, **keywords)

    monkeypatch.setattr(s3, "copy", copy_in_parts)
    archives = {"big": f"s3://{BUCKET}/jobs/big/model.tar.gz"}
    (staged,) = multi_model.stage_archives(s3, archives, PREFIX)
    head = s3.head_object(Bucket=BUCKET, Key="models/261202-1a2b3c4d/big.tar.gz")
    assert "-" in head["ETag"]  # a multipart ETag
    assert body(s3, staged) == large
    multi_model.stage_archives(s3, archives, PREFIX)
    assert len(copies) == 1


def test_staging_follows_the_mode(s3, archives, settings, settings_with, names):
    single = settings_with({"deployment": {"mode": "single_model"}})
    assert multi_model.stage_for_deployment(s3, single, names, archives) == []
    assert multi_model.stage_for_rollback(s3, single, names, version()) == []
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="models/")
    prefix = rb.multi_model_prefix(settings, names)
    assert multi_model.stage_for_deployment(s3, settings, names, archives) == [
        f"{prefix}resnet50.tar.gz", f"{prefix}mobilenet_v2.tar.gz"
    ]  # fmt: skip
