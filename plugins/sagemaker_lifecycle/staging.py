"""Staging: verify a local dataset, snapshot it by content, upload the snapshot and the code.

A snapshot is identified by the SHA-256 of its manifest (every file's split/class/name, size and
SHA-256), so the same images always map to the same S3 prefix
`s3://<bucket>/<dataset.s3_prefix>/<snapshot id>/<split>/<class>/<file>`. The manifest is uploaded
last and marks a complete snapshot: a run that finds it uploads nothing (a run over an unchanged
dataset costs one HEAD request). `use_recorded_snapshot` stages a snapshot the catalog
(`snapshots.py`) names instead, for backfills and pinned runs, without reading the source. The
training code (`sagemaker_code/`) is packed the same
way into a content-addressed `sourcedir.tar.gz`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import re
import tarfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from botocore.exceptions import ClientError
from PIL import Image, UnidentifiedImageError

from sagemaker_lifecycle.checked_files import CheckedFiles
from sagemaker_lifecycle.dataset_source import fetch_dataset
from sagemaker_lifecycle.snapshots import CatalogEntry, SnapshotChoiceError

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
CLASS_FOLDER = re.compile(r"^\d{3}\.\w+$")
SOURCE_DIR = Path(__file__).resolve().parents[2] / "sagemaker_code"
MANIFEST_NAME = "manifest.json"
UPLOAD_THREADS = 8
CHECK_THREADS = 4
MAX_PROBLEMS_SHOWN = 40
# The side to which JPEGs are decoded when checking that they decode (a draft, for speed).
DECODE_CHECK_SIDE = 256


class DatasetError(ValueError):
    """The dataset is not usable; `problems` lists every reason, one sentence each.

    The message shows the first MAX_PROBLEMS_SHOWN; the task log gets all of them.
    """

    def __init__(self, root: Path, problems: list[str]):
        self.problems = problems
        log.error("Dataset at %s has %d problem(s):\n- %s", root, len(problems),
                  "\n- ".join(problems))  # fmt: skip
        shown = problems[:MAX_PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        text = "\n- ".join(shown) + (f"\n- ... and {more} more" if more else "")
        super().__init__(f"dataset at {root} has {len(problems)} problem(s):\n- {text}")


@dataclass(frozen=True)
class ManifestEntry:
    key: str  # <split>/<class>/<file name>, relative to the dataset root
    size: int
    sha256: str


@dataclass
class StagedDataset:
    """What the rest of the pipeline needs to know about the uploaded snapshot."""

    snapshot_id: str
    classes: list[str]
    image_counts: dict[str, int]
    channels: dict[str, str]  # split -> s3:// prefix (ending in /)
    sourcedir_uri: str  # the packed training code (script mode)
    code_uri: str  # the same code unpacked, an s3:// prefix
    reused_snapshot: bool
    source: str = ""
    manifest_uri: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_dataset_root(folder: Path) -> Path:
    """`folder` if it holds the splits, else its only sub-folder that does (zips wrap a folder)."""
    if (folder / "train").is_dir():
        return folder
    candidates = [child for child in folder.iterdir() if (child / "train").is_dir()]
    if len(candidates) == 1:
        return candidates[0]
    raise DatasetError(folder, [f"no train/ folder in {folder} or in exactly one sub-folder"])


def _in_parallel(function, items: list) -> list:
    """`function` of each item, in order, on CHECK_THREADS threads (Pillow's decoders and
    hashlib release the GIL, so both cores work)."""
    with ThreadPoolExecutor(CHECK_THREADS) as pool:
        return list(pool.map(function, items))


def _image_problem(path: Path, max_pixels: int) -> str | None:
    """Why `path` is no usable image, or None: it must open, be at most `max_pixels` large, and
    decode (JPEGs at reduced scale, which still reads all of their compressed data)."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                return (
                    f"{path}: {width}x{height} pixels, more than dataset.max_image_pixels "
                    f"({max_pixels}); a decompression bomb, or far larger than training needs"
                )
            image.draft("RGB", (DECODE_CHECK_SIDE, DECODE_CHECK_SIDE))
            image.load()
    except Image.DecompressionBombError as error:  # past Pillow's own limit, before our check
        return f"{path}: a decompression bomb ({error})"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        return f"{path}: not a readable image ({error})"
    return None


def _split_problems(
    root: Path,
    split: str,
    extensions: set[str],
    min_images: int,
    max_pixels: int,
    checked: CheckedFiles | None,
) -> tuple[list[str], dict[str, list[Path]]]:
    """Problems found in one split, and its images by class folder (files `checked` knows
    unchanged are not decoded again)."""
    split_dir = root / split
    if not split_dir.is_dir():
        return [f"{split}/ is missing"], {}
    problems, images_by_class = [], {}
    for entry in sorted(split_dir.iterdir()):
        if entry.name.startswith("."):
            continue  # .DS_Store and friends
        if not entry.is_dir() or not CLASS_FOLDER.match(entry.name):
            problems.append(f"{split}/{entry.name}: expected class folders named NNN.Class_name")
            continue
        files = [f for f in sorted(entry.iterdir()) if not f.name.startswith(".")]
        images = [f for f in files if f.is_file() and f.suffix.lower() in extensions]
        problems += [
            f"{split}/{entry.name}/{f.name}: not an image file ({', '.join(sorted(extensions))})"
            for f in files
            if f not in images
        ]
        unchecked = [f for f in images if not (checked and checked.sha256(f))]
        problems += [
            problem
            for problem in _in_parallel(lambda f: _image_problem(f, max_pixels), unchecked)
            if problem
        ]
        if len(images) < min_images:
            problems.append(
                f"{split}/{entry.name}: {len(images)} image(s), fewer than {min_images} required"
            )
        images_by_class[entry.name] = images
    if not images_by_class and split_dir.is_dir():
        problems.append(f"{split}/ has no class folders")
    return problems, images_by_class


def verify_dataset(
    root: Path,
    extensions: list[str],
    min_images: int,
    max_pixels: int,
    checked: CheckedFiles | None = None,
) -> dict[str, dict]:
    """Images by split and class; DatasetError listing every problem when the layout is wrong.

    Checks: all three splits exist, hold only `NNN.Class_name` folders, the same classes in each,
    at least `min_images` images per class, only files with `extensions`, each an image of at
    most `max_pixels` pixels that decodes (unless `checked` has it unchanged since it did).
    """
    wanted = {extension.lower() for extension in extensions}
    problems, layout = [], {}
    for split in SPLITS:
        split_problems, layout[split] = _split_problems(
            root, split, wanted, min_images, max_pixels, checked
        )
        problems += split_problems
    reference = set(layout["train"])
    for split in SPLITS[1:]:
        if layout[split] and set(layout[split]) != reference:
            missing = sorted(reference - set(layout[split]))
            extra = sorted(set(layout[split]) - reference)
            if missing:
                problems.append(f"{split}/ lacks classes that train/ has: {', '.join(missing)}")
            if extra:
                problems.append(f"{split}/ has classes that train/ lacks: {', '.join(extra)}")
    if problems:
        raise DatasetError(root, problems)
    return layout


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest_entry(root: Path, path: Path, checked: CheckedFiles | None) -> ManifestEntry:
    info = path.stat()
    digest = (checked and checked.sha256(path)) or _sha256(path)
    if checked:
        checked.add(path, info.st_size, info.st_mtime_ns, digest)
    return ManifestEntry(key=path.relative_to(root).as_posix(), size=info.st_size, sha256=digest)


def build_manifest(
    root: Path,
    layout: Mapping[str, Mapping[str, list[Path]]],
    checked: CheckedFiles | None = None,
) -> list[ManifestEntry]:
    """One entry per image, sorted by key, so equal content gives an equal manifest. Files
    `checked` knows unchanged are not read again; every file is recorded in it."""
    paths = [path for classes in layout.values() for images in classes.values() for path in images]
    entries = _in_parallel(lambda path: _manifest_entry(root, path, checked), paths)
    return sorted(entries, key=lambda entry: entry.key)


def manifest_bytes(entries: list[ManifestEntry]) -> bytes:
    return json.dumps([asdict(entry) for entry in entries], sort_keys=True, indent=0).encode()


def snapshot_id(entries: list[ManifestEntry]) -> str:
    """The first 16 hex digits of the manifest's SHA-256."""
    return hashlib.sha256(manifest_bytes(entries)).hexdigest()[:16]


def head_or_none(s3, bucket: str, key: str) -> dict | None:
    """HeadObject of `bucket`/`key`, or None when there is no such object."""
    try:
        return s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _object_exists(s3, bucket: str, key: str) -> bool:
    return head_or_none(s3, bucket, key) is not None


def ensure_bucket(s3, bucket: str, create: bool) -> None:
    """Create `bucket` if it is missing and `create` allows it; a clear error otherwise."""
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("404", "NoSuchBucket", "NotFound"):
            raise
        if not create:
            raise ValueError(
                f"S3 bucket {bucket!r} does not exist; create it or set aws.create_bucket: true"
            ) from error
        region = s3.meta.region_name
        log.info("Creating S3 bucket %s in %s", bucket, region)
        # us-east-1 is S3's default location; every other region must be named.
        location = {} if region == "us-east-1" else {
            "CreateBucketConfiguration": {"LocationConstraint": region}
        }  # fmt: skip
        s3.create_bucket(Bucket=bucket, **location)


def upload_snapshot(
    s3, bucket: str, prefix: str, root: Path, entries: list[ManifestEntry]
) -> tuple[str, bool]:
    """Upload the snapshot unless already complete; returns (its s3:// prefix, reused?)."""
    base_key = f"{prefix.strip('/')}/{snapshot_id(entries)}"
    manifest_key = f"{base_key}/{MANIFEST_NAME}"
    base_uri = f"s3://{bucket}/{base_key}/"
    if _object_exists(s3, bucket, manifest_key):
        log.info("Snapshot %s is already complete in S3; nothing to upload", base_uri)
        return base_uri, True
    log.info("Uploading %d images to %s", len(entries), base_uri)

    def upload(entry: ManifestEntry) -> None:
        s3.upload_file(str(root / entry.key), bucket, f"{base_key}/{entry.key}")

    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        list(pool.map(upload, entries))
    # Written last: its presence means every image above is in place.
    s3.put_object(Bucket=bucket, Key=manifest_key, Body=manifest_bytes(entries))
    return base_uri, False


def package_source_dir(source_dir: Path) -> bytes:
    """A reproducible sourcedir.tar.gz of `source_dir` (sorted, zeroed times and owners)."""
    buffer = io.BytesIO()
    # gzip's header holds a timestamp too: pin it, so equal code gives equal bytes.
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w") as tar,
    ):
        for path in _source_files(source_dir):
            info = tar.gettarinfo(str(path), arcname=path.relative_to(source_dir).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with open(path, "rb") as handle:
                tar.addfile(info, handle)
    return buffer.getvalue()


def _source_files(source_dir: Path) -> list[Path]:
    """The files of `source_dir` that belong in the code bundle (no caches, no dot files)."""
    return [
        path
        for path in sorted(source_dir.rglob("*"))
        if path.is_file()
        and path.suffix != ".pyc"
        and not any(
            part == "__pycache__" or part.startswith(".")
            for part in path.relative_to(source_dir).parts
        )
    ]


def upload_code(s3, bucket: str, prefix: str, source_dir: Path = SOURCE_DIR) -> tuple[str, str]:
    """Upload `source_dir` under a content hash, packed and unpacked; returns both URIs.

    The packed sourcedir.tar.gz is what training jobs run (`sagemaker_submit_directory`); the
    unpacked copy under `files/` is what rule processing jobs mount as their code input. The
    archive is written last, so its presence means both are complete.
    """
    if not (source_dir / "train.py").is_file():
        raise FileNotFoundError(f"{source_dir} has no train.py; it is not the training source dir")
    payload = package_source_dir(source_dir)
    base_key = f"{prefix.strip('/')}/{hashlib.sha256(payload).hexdigest()[:16]}"
    archive_key = f"{base_key}/sourcedir.tar.gz"
    if not _object_exists(s3, bucket, archive_key):
        for path in _source_files(source_dir):
            relative = path.relative_to(source_dir).as_posix()
            s3.upload_file(str(path), bucket, f"{base_key}/files/{relative}")
        s3.put_object(Bucket=bucket, Key=archive_key, Body=payload)
    return f"s3://{bucket}/{archive_key}", f"s3://{bucket}/{base_key}/files/"


def fetch_and_verify(dataset: Mapping, s3) -> tuple[Path, dict[str, dict], list[ManifestEntry]]:
    """The dataset settings' source fetched and verified: its root, layout and manifest. Files
    unchanged since an earlier check are neither decoded nor hashed again (CheckedFiles)."""
    fetched = fetch_dataset(
        dataset["source"], Path(dataset["cache_dir"]), s3, dataset["max_download_bytes"]
    )
    root = find_dataset_root(fetched)
    checked = CheckedFiles.for_root(
        Path(dataset["cache_dir"]).expanduser(), root, dataset["max_image_pixels"]
    )
    layout = verify_dataset(
        root,
        dataset["image_extensions"],
        dataset["min_images_per_class"],
        dataset["max_image_pixels"],
        checked,
    )
    entries = build_manifest(root, layout, checked)
    checked.save()
    return root, layout, entries


def stage(settings: Mapping, s3) -> StagedDataset:
    """Fetch, verify, snapshot and upload the configured dataset (dataset.source as it is now),
    and upload the code."""
    dataset, aws = settings["dataset"], settings["aws"]
    root, layout, entries = fetch_and_verify(dataset, s3)
    ensure_bucket(s3, aws["bucket"], aws["create_bucket"])
    base_uri, reused = upload_snapshot(s3, aws["bucket"], dataset["s3_prefix"], root, entries)
    sourcedir_uri, code_uri = upload_code(s3, aws["bucket"], "code")
    return StagedDataset(
        snapshot_id=snapshot_id(entries),
        classes=sorted(layout["train"]),
        image_counts={split: sum(map(len, layout[split].values())) for split in SPLITS},
        channels={split: f"{base_uri}{split}/" for split in SPLITS},
        sourcedir_uri=sourcedir_uri,
        code_uri=code_uri,
        reused_snapshot=reused,
        source=dataset["source"],
        manifest_uri=f"{base_uri}{MANIFEST_NAME}",
    )


def use_recorded_snapshot(settings: Mapping, s3, entry: CatalogEntry) -> StagedDataset:
    """The already published snapshot `entry` names, checked complete (its manifest is there);
    the source is not read. Uploads the code as `stage` does."""
    base_uri = entry.snapshot_uri
    if not _object_exists(s3, *S3Hook.parse_s3_url(entry.manifest_uri)):
        raise SnapshotChoiceError(
            f"snapshot {entry.snapshot_id} is in the catalog, but its manifest "
            f"{entry.manifest_uri} is gone (a lifecycle rule, or a different aws.bucket?)"
        )
    sourcedir_uri, code_uri = upload_code(s3, settings["aws"]["bucket"], "code")
    return StagedDataset(
        snapshot_id=entry.snapshot_id,
        classes=list(entry.classes),
        image_counts=dict(entry.image_counts),
        channels={split: f"{base_uri}{split}/" for split in SPLITS},
        sourcedir_uri=sourcedir_uri,
        code_uri=code_uri,
        reused_snapshot=True,
        source=entry.source,
        manifest_uri=entry.manifest_uri,
    )
