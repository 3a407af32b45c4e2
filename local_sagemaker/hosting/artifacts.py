"""Turning a model's container definition into a model dir a model server can load.

What SageMaker does before an inference container starts (sagemaker-behaviour.md 5.5):
``ModelDataUrl`` (a ``.tar.gz`` in S3) is extracted into the model dir; ``ModelDataSource`` with an
uncompressed S3 prefix is copied into it. When ``SAGEMAKER_SUBMIT_DIRECTORY`` is an S3
``sourcedir.tar.gz`` (the SDK's non-repacked script mode), it is extracted to ``<model dir>/code``
and the variable is pointed there, as the toolkit does in the container.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from local_sagemaker.executor.archives import UnsafeArchiveError, safe_extract_tar
from local_sagemaker.s3 import S3Error, S3Service, parse_s3_uri


class ModelArtifactError(RuntimeError):
    """The model's artifacts could not be fetched or unpacked; the message says which and why."""


def fetch_archive(s3: S3Service, uri: str, destination: Path, scratch: Path) -> None:
    """Download one ``.tar.gz`` object from S3 and extract it into ``destination``."""
    bucket, key = parse_s3_uri(uri)
    try:
        body = s3.read(bucket, key)
    except S3Error as error:
        raise ModelArtifactError(f"Could not download {uri}: {error}") from error
    scratch.mkdir(parents=True, exist_ok=True)
    archive = scratch / Path(key).name
    archive.write_bytes(body)
    try:
        safe_extract_tar(archive, destination)
    except (UnsafeArchiveError, tarfile.TarError, OSError) as error:
        raise ModelArtifactError(f"Could not extract {uri}: {error}") from error
    finally:
        archive.unlink()


def prepare_model_dir(s3: S3Service, container: dict, work_dir: Path) -> tuple[Path, dict]:
    """Materialise ``container`` (a ContainerDefinition) under ``work_dir``.

    Returns ``(model_dir, environment)``: the directory to pass to the model server and the
    container's Environment with SAGEMAKER_SUBMIT_DIRECTORY rewritten to a local path when it
    named an S3 archive. Raises ModelArtifactError.
    """
    model_dir = work_dir / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    environment = dict(container.get("Environment") or {})
    if container.get("ModelDataUrl"):
        fetch_archive(s3, container["ModelDataUrl"], model_dir, work_dir)
    source = (container.get("ModelDataSource") or {}).get("S3DataSource")
    if source:
        copy_model_prefix(s3, source, model_dir)
    submit = environment.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
    if submit.startswith("s3://"):
        fetch_archive(s3, submit, model_dir / "code", work_dir)
        environment["SAGEMAKER_SUBMIT_DIRECTORY"] = str(model_dir / "code")
    return model_dir, environment


def copy_model_prefix(s3: S3Service, source: dict, model_dir: Path) -> None:
    """ModelDataSource.S3DataSource: a compressed archive or an uncompressed S3 prefix."""
    uri = source["S3Uri"]
    if source.get("CompressionType") == "Gzip":
        fetch_archive(s3, uri, model_dir, model_dir.parent)
        return
    try:
        s3.download(uri, model_dir)
    except S3Error as error:
        raise ModelArtifactError(f"Could not download model data {uri}: {error}") from error
