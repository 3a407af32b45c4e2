"""tar.gz in and out of job trees: safe extraction and packing a folder's contents the way
SageMaker packs /opt/ml/model.

Extraction takes files and folders only, member by member, and never follows a link: tarfile's
``data`` filter checks a link's target with ``os.path.realpath``, which a chain of symlinks
longer than PATH_MAX defeats on Python before 3.11.13 (CVE-2025-4517), so the runtime does not
extract links at all. Sizes are capped before a byte is written (:class:`ArchiveLimits`).
"""

import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MIB = 1024 * 1024


class UnsafeArchiveError(ValueError):
    """The archive holds a member that would escape the target folder, is not a plain file or
    folder, or makes the archive larger than its caps; the message names archive and member."""


@dataclass(frozen=True)
class ArchiveLimits:
    """What one archive may unpack to."""

    max_total_bytes: int = 8 * 1024 * MIB
    max_members: int = 100_000
    # Extracted bytes per archive byte: gzip gets ~3-10x on code and ~1x on weights; a bomb of
    # zeros gets ~1000x. Below ``ratio_floor_bytes`` nothing is big enough to matter.
    max_compression_ratio: float = 100.0
    ratio_floor_bytes: int = 16 * MIB


def _member_path(archive: Path, member: tarfile.TarInfo) -> PurePosixPath:
    """The member's path relative to the target; leading ``/`` dropped as tar does. The archive's
    own root folder (``/`` or ``.``, as the SageMaker SDK's repacked model.tar.gz has) is the
    target itself."""
    relative = PurePosixPath(member.name.lstrip("/"))
    if ".." in relative.parts or not (relative.parts or member.isdir()):
        raise UnsafeArchiveError(
            f"{archive}: refusing unsafe member {member.name!r}: it would land outside the target"
        )
    return relative


def _check_kind(archive: Path, member: tarfile.TarInfo) -> None:
    if member.isdir() or (member.isfile() and not member.issparse()):
        return
    kind = "a link" if member.issym() or member.islnk() else "not a plain file or folder"
    raise UnsafeArchiveError(
        f"{archive}: refusing unsafe member {member.name!r}: it is {kind}; the local runtime "
        "extracts only files and folders"
    )


def _check_size(archive: Path, total: int, members: int, limits: ArchiveLimits) -> None:
    if members > limits.max_members:
        raise UnsafeArchiveError(f"{archive}: more than {limits.max_members} members")
    if total > limits.max_total_bytes:
        raise UnsafeArchiveError(
            f"{archive}: unpacks to more than {limits.max_total_bytes} bytes (the cap)"
        )
    packed = max(archive.stat().st_size, 1)
    if total > limits.ratio_floor_bytes and total / packed > limits.max_compression_ratio:
        raise UnsafeArchiveError(
            f"{archive}: {packed} bytes unpack to more than {total} bytes, a compression ratio "
            f"above {limits.max_compression_ratio:.0f}: refusing a decompression bomb"
        )


def safe_extract_tar(
    archive: Path, destination: Path, limits: ArchiveLimits = ArchiveLimits()
) -> None:
    """Extract ``archive`` (any tar compression) into ``destination``: files and folders only,
    every one inside ``destination``, within ``limits``. Raises UnsafeArchiveError."""
    archive = Path(archive)
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    root = destination.resolve()
    total = 0
    with tarfile.open(archive, "r:*") as tar:
        for count, member in enumerate(tar, start=1):
            relative = _member_path(archive, member)
            _check_kind(archive, member)
            total += member.size
            _check_size(archive, total, count, limits)
            target = destination / relative
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
            # Nothing extracted is a link, but the destination may already hold one.
            if not target.resolve().is_relative_to(root) or target.is_symlink():
                raise UnsafeArchiveError(
                    f"{archive}: refusing unsafe member {member.name!r}: a link in "
                    f"{destination} points it outside"
                )
            if member.isfile():
                with tar.extractfile(member) as source, open(target, "wb") as sink:
                    shutil.copyfileobj(source, sink)
            # Like the data filter: keep the owner's bits and the executable bits, no setuid.
            target.chmod((member.mode & 0o755) | (0o700 if member.isdir() else 0o600))


def pack_directory(directory: Path, archive: Path) -> Path:
    """Write ``directory``'s contents (not the folder itself) to the gzipped tar ``archive``."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(Path(directory).iterdir()):
            tar.add(path, arcname=path.name)
    return archive
