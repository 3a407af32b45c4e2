"""Getting a dataset onto local disk: a folder as it is, a zip extracted, a URL downloaded,
an s3:// prefix copied.

URLs may be http:// or https:// (any other scheme is refused), and a download stops at a size
cap. Downloads resume where an interrupted one stopped (HTTP Range requests), so a flaky link to
the 1.1 GB Udacity zip costs only the missing bytes. A cached download is revalidated on every
run (its ETag or Last-Modified, by a HEAD request), so a zip changed at its URL is fetched
again. Zips are extracted member by member into a
temporary folder that is renamed into place at the end, and a member whose path would land outside
the target (absolute, `..`, a symlink) aborts the extraction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
DOWNLOAD_ATTEMPTS = 5
HTTP_TIMEOUT_SECONDS = 60


class DatasetSourceError(RuntimeError):
    """The dataset source could not be fetched or unpacked; the message says which and why."""


URL_SCHEMES = ("http", "https")
# Response headers that identify a version of a file; a cached download keeps them beside it.
VALIDATORS = ("ETag", "Last-Modified")


def is_url(source: str) -> bool:
    """True for an http(s) URL; DatasetSourceError for a URL of any other scheme (file:, ftp:,
    ...), which could read from places a dataset source has no business reading."""
    scheme, separator, _ = source.partition("://")
    if not separator or scheme == "s3":
        return False
    if scheme.lower() not in URL_SCHEMES:
        raise DatasetSourceError(
            f"dataset source {source!r}: scheme {scheme!r} is not allowed; use "
            f"{', '.join(f'{s}://' for s in URL_SCHEMES)}, s3:// or a local path"
        )
    return True


def _cache_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _copy_capped(response, out, already: int, max_bytes: int, url: str) -> None:
    """Copy `response` into `out`, refusing to let the file grow past `max_bytes`."""
    written = already
    while chunk := response.read(CHUNK_BYTES):
        written += len(chunk)
        if written > max_bytes:
            raise DatasetSourceError(
                f"{url} is larger than dataset.max_download_bytes ({max_bytes}); refusing it"
            )
        out.write(chunk)


def _download_once(url: str, partial: Path, max_bytes: int) -> tuple[int | None, dict]:
    """Fetch what `partial` lacks of `url`; returns the total size when the server says it, and
    the response's validators (ETag, Last-Modified)."""
    offset = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        if error.code == 416:  # Range Not Satisfiable: the partial file is already complete.
            return offset, {}
        raise
    with response:
        if offset and response.status != 206:
            log.info("%s ignored the Range request; downloading from the start", url)
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        if total is not None and total > max_bytes:
            raise DatasetSourceError(
                f"{url} is {total} bytes, more than dataset.max_download_bytes ({max_bytes})"
            )
        with open(partial, "ab" if offset else "wb") as out:
            _copy_capped(response, out, offset, max_bytes, url)
        validators = {
            name: response.headers[name] for name in VALIDATORS if name in response.headers
        }
    return total, validators


def _validators_file(target: Path) -> Path:
    return target.with_name(target.name + ".validators.json")


def _still_current(url: str, target: Path) -> bool:
    """Whether the cached `target` is still what `url` serves (HEAD: same ETag/Last-Modified).

    A server that gives no validators cannot be asked: the cached file is kept, with a warning.
    An unreachable server keeps it too, so a cached dataset still stages offline.
    """
    stored = _validators_file(target)
    known = json.loads(stored.read_text()) if stored.exists() else {}
    if not known:
        log.warning("%s gave no ETag or Last-Modified; using the cached %s", url, target)
        return True
    try:
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
            current = {name: response.headers.get(name) for name in known}
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        log.warning("Could not revalidate %s (%s); using the cached %s", url, error, target)
        return True
    return current == known


def download(url: str, cache_dir: Path, max_bytes: int) -> Path:
    """The file at `url`, downloaded into `cache_dir` (reused while the server still serves the
    same version), at most `max_bytes` large.

    A broken transfer is resumed from the bytes already on disk, up to DOWNLOAD_ATTEMPTS times.
    """
    name = PurePosixPath(urllib.request.urlparse(url).path).name or "download"
    target = cache_dir / f"{_cache_key(url)}-{name}"
    if target.exists():
        if _still_current(url, target):
            log.info("Using the cached download %s", target)
            return target
        log.info("%s changed since it was downloaded; downloading it again", url)
        target.unlink()
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    last_error: Exception | None = None
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            total, validators = _download_once(url, partial, max_bytes)
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            last_error = error
            log.warning("Download of %s broke on attempt %d: %s", url, attempt, error)
            continue
        size = partial.stat().st_size
        if total is None or size == total:
            partial.rename(target)
            if validators:
                _validators_file(target).write_text(json.dumps(validators))
            return target
        last_error = DatasetSourceError(f"got {size} of {total} bytes")
        log.warning("Download of %s stopped at %d of %d bytes; resuming", url, size, total)
    raise DatasetSourceError(
        f"could not download {url} after {DOWNLOAD_ATTEMPTS} attempts: {last_error}"
    )


def _checked_member_path(member: zipfile.ZipInfo, target: Path) -> Path:
    """Where `member` would be written, or DatasetSourceError if that leaves `target`."""
    mode = member.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise DatasetSourceError(f"zip member {member.filename!r} is a symbolic link; refusing it")
    relative = PurePosixPath(member.filename.replace("\\", "/"))
    destination = (target / relative).resolve()
    if relative.is_absolute() or ".." in relative.parts or not destination.is_relative_to(target):
        raise DatasetSourceError(
            f"zip member {member.filename!r} would be written outside {target}; refusing the zip"
        )
    return destination


def extract_zip(archive: Path, target: Path) -> Path:
    """`archive` extracted into `target` (reused when already there); refuses path traversal."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent)).resolve()
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.infolist():
                destination = _checked_member_path(member, staging)
                if member.is_dir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(member) as source, open(destination, "wb") as out:
                    shutil.copyfileobj(source, out, CHUNK_BYTES)
        staging.rename(target)
    except zipfile.BadZipFile as error:
        raise DatasetSourceError(f"{archive} is not a readable zip file: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def copy_s3_prefix(s3, uri: str, target: Path) -> Path:
    """Every object under the s3:// prefix `uri`, copied below `target` (same relative keys).

    Files already there with the object's size are kept, so a re-run copies only what changed.
    """
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    objects = [item for page in pages for item in page.get("Contents", [])]
    if not objects:
        raise DatasetSourceError(f"no object under {uri}")
    for item in objects:
        relative = PurePosixPath(item["Key"][len(prefix) :])
        if relative.is_absolute() or ".." in relative.parts:
            raise DatasetSourceError(f"S3 key {item['Key']!r} would be copied outside {target}")
        destination = target / relative
        if destination.is_file() and destination.stat().st_size == item["Size"]:
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, item["Key"], str(destination))
    return target


def fetch_dataset(source: str, cache_dir: Path, s3=None, max_download_bytes: int = 0) -> Path:
    """A local folder holding the dataset named by `source`: a folder, a .zip path, a URL of a
    zip (at most `max_download_bytes`), or an s3:// prefix (read with the `s3` client)."""
    cache_dir = Path(cache_dir).expanduser()
    if source.startswith("s3://"):
        return copy_s3_prefix(s3, source, cache_dir / "s3" / _cache_key(source))
    if is_url(source):
        archive = download(source, cache_dir / "downloads", max_download_bytes)
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            return path
        if not path.is_file():
            raise DatasetSourceError(
                f"dataset source {source!r} is neither a folder, a file nor a URL"
            )
        archive = path
    # Keyed by path, size and mtime, so a zip replaced in place is extracted again.
    info = archive.stat()
    key = _cache_key(f"{archive.resolve()}:{info.st_size}:{info.st_mtime_ns}")
    return extract_zip(archive, cache_dir / "extracted" / key)
