"""tar.gz in and out of job trees: safe extraction (no path traversal, no links out, no devices)
and packing a folder's contents the way SageMaker packs /opt/ml/model."""

import tarfile
from pathlib import Path


class UnsafeArchiveError(ValueError):
    """The archive holds a member that would escape the target folder or is not a plain file/dir."""


def safe_extract_tar(archive: Path, destination: Path) -> None:
    """Extract ``archive`` (any tar compression) into ``destination``.

    Uses tarfile's ``data`` filter, which rejects absolute paths, ``..``, links pointing outside
    the destination and device files; raises UnsafeArchiveError naming the archive and member.
    """
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(destination, filter="data")
    except tarfile.FilterError as error:
        raise UnsafeArchiveError(f"{archive}: refusing unsafe member: {error}") from error


def pack_directory(directory: Path, archive: Path) -> Path:
    """Write ``directory``'s contents (not the folder itself) to the gzipped tar ``archive``."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(Path(directory).iterdir()):
            tar.add(path, arcname=path.name)
    return archive
