"""Staging: dataset checks, content-addressed snapshots in S3, code bundles, zips and URLs."""

import hashlib
import io
import shutil
import tarfile
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from sagemaker_lifecycle import staging
from sagemaker_lifecycle.dataset_source import (
    DatasetSourceError,
    download,
    extract_zip,
    fetch_dataset,
)
from sagemaker_lifecycle.settings import load_settings

EXTENSIONS = [".jpg", ".jpeg", ".png"]
MAX_PIXELS = 40_000_000
MAX_BYTES = 1 << 30


def verify(root: Path, min_images: int = 1, max_pixels: int = MAX_PIXELS) -> dict:
    return staging.verify_dataset(root, EXTENSIONS, min_images, max_pixels)


def problems_of(root: Path, min_images: int = 1, max_pixels: int = MAX_PIXELS) -> list[str]:
    with pytest.raises(staging.DatasetError) as raised:
        verify(root, min_images, max_pixels)
    return raised.value.problems


def test_valid_dataset_lists_its_images_by_split_and_class(tiny_dataset):
    layout = verify(tiny_dataset, 2)
    assert sorted(layout["train"]) == ["001.Affenpinscher", "002.Afghan_hound"]
    assert [len(images) for images in layout["valid"].values()] == [2, 2]


def test_every_problem_of_a_broken_dataset_is_listed(tiny_dataset):
    shutil.rmtree(tiny_dataset / "test")
    valid = tiny_dataset / "valid"
    (valid / "002.Afghan_hound").rename(valid / "Afghan_hound")  # bad folder name
    train_class = tiny_dataset / "train" / "001.Affenpinscher"
    (train_class / "notes.txt").write_text("not an image")
    (train_class / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    (tiny_dataset / "train" / "003.Akita").mkdir()  # empty class
    problems = problems_of(tiny_dataset)
    assert "test/ is missing" in problems
    assert "valid/Afghan_hound: expected class folders named NNN.Class_name" in problems
    assert any(
        p.startswith("train/001.Affenpinscher/notes.txt: not an image file") for p in problems
    )
    assert any("broken.jpg: not a readable image" in p for p in problems)
    assert "train/003.Akita: 0 image(s), fewer than 1 required" in problems
    assert any(
        p.startswith("valid/ lacks classes that train/ has: 002.Afghan_hound") for p in problems
    )


def test_an_image_that_opens_but_does_not_decode_is_a_problem(tiny_dataset):
    """Image.verify() would pass this file: its header is intact, its pixel data cut short."""
    from PIL import Image

    picture = tiny_dataset / "train" / "001.Affenpinscher" / "cut.jpg"
    buffer = io.BytesIO()
    Image.effect_noise((256, 256), 64).convert("RGB").save(buffer, "JPEG", quality=95)
    picture.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with Image.open(picture) as image:
        image.verify()  # the header check alone finds nothing wrong
    assert any("cut.jpg: not a readable image" in p for p in problems_of(tiny_dataset))


def test_the_task_log_lists_every_problem_beyond_the_messages_forty(tiny_dataset, caplog):
    train_class = tiny_dataset / "train" / "001.Affenpinscher"
    for index in range(45):
        (train_class / f"note{index:02}.txt").write_text("not an image")
    with caplog.at_level("ERROR", logger="sagemaker_lifecycle.staging"):
        problems = problems_of(tiny_dataset)
    assert len(problems) == 45
    logged = caplog.text
    assert all(f"note{index:02}.txt" in logged for index in range(45))


def test_too_few_images_per_class_is_a_problem(tiny_dataset):
    problems = problems_of(tiny_dataset, min_images=3)
    assert "valid/001.Affenpinscher: 2 image(s), fewer than 3 required" in problems


def test_snapshot_id_depends_on_content_only(tiny_dataset, tmp_path):
    layout = verify(tiny_dataset, 1)
    first = staging.snapshot_id(staging.build_manifest(tiny_dataset, layout))
    copy = shutil.copytree(tiny_dataset, tmp_path / "copy")
    assert staging.snapshot_id(staging.build_manifest(copy, verify(copy, 1))) == first
    image = next((copy / "train" / "001.Affenpinscher").iterdir())
    image.write_bytes(
        (tiny_dataset / "valid" / "001.Affenpinscher").glob("*").__next__().read_bytes()
    )
    changed = staging.build_manifest(copy, verify(copy, 1))
    assert staging.snapshot_id(changed) != first


def test_staging_a_broken_dataset_uploads_nothing(tiny_dataset, s3, tmp_path):
    (tiny_dataset / "train" / "001.Affenpinscher" / "broken.jpg").write_bytes(b"\xff\xd8 cut")
    settings = load_settings(
        {"dataset": {"source": str(tiny_dataset), "cache_dir": str(tmp_path / "c")}}
    )
    bucket = settings["aws"]["bucket"]
    s3.create_bucket(Bucket=bucket)
    with pytest.raises(staging.DatasetError) as raised:
        staging.stage(settings, s3)
    assert any("broken.jpg: not a readable image" in p for p in raised.value.problems)
    # Neither the images that passed, nor a manifest, nor the code bundle.
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_stage_uploads_once_and_reuses_an_unchanged_snapshot(tiny_dataset, s3, tmp_path):
    settings = load_settings(
        {"dataset": {"source": str(tiny_dataset), "cache_dir": str(tmp_path / "c")}}
    )
    first = staging.stage(settings, s3)
    assert not first.reused_snapshot
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=settings["aws"]["bucket"])["Contents"]]
    prefix = f"datasets/{first.snapshot_id}/"
    assert sum(k.startswith(prefix + "train/") for k in keys) == 8
    assert prefix + "manifest.json" in keys
    assert first.channels["valid"] == f"s3://dog-breed-classifier/{prefix}valid/"
    second = staging.stage(settings, s3)
    assert second.reused_snapshot and second.snapshot_id == first.snapshot_id
    assert second.sourcedir_uri == first.sourcedir_uri


def test_code_bundle_is_reproducible_and_has_train_py_at_its_top(s3):
    payload = staging.package_source_dir(staging.SOURCE_DIR)
    assert payload == staging.package_source_dir(staging.SOURCE_DIR)
    with tarfile.open(fileobj=io.BytesIO(payload)) as tar:
        names = tar.getnames()
    assert "train.py" in names and "inference.py" in names
    assert not any("__pycache__" in name for name in names)
    s3.create_bucket(Bucket="code-bucket")
    archive_uri, files_uri = staging.upload_code(s3, "code-bucket", "code")
    assert archive_uri.endswith("/sourcedir.tar.gz") and files_uri.endswith("/files/")
    bucket_keys = [o["Key"] for o in s3.list_objects_v2(Bucket="code-bucket")["Contents"]]
    assert any(key.endswith("/files/train.py") for key in bucket_keys)


def zip_of(root: Path, target: Path, wrapper: str = "dogImages") -> Path:
    with zipfile.ZipFile(target, "w") as bundle:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                bundle.write(path, f"{wrapper}/{path.relative_to(root).as_posix()}")
    return target


def test_zip_source_is_extracted_and_its_wrapper_folder_found(tiny_dataset, tmp_path):
    archive = zip_of(tiny_dataset, tmp_path / "data.zip")
    root = staging.find_dataset_root(
        fetch_dataset(str(archive), tmp_path / "cache", max_download_bytes=MAX_BYTES)
    )
    assert root.name == "dogImages"
    assert verify(root, 1)


@pytest.mark.parametrize("member", ["../escape.txt", "/abs/escape.txt", "a/../../escape.txt"])
def test_zip_with_a_path_escaping_the_target_is_refused(tmp_path, member):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr(member, "x")
    with pytest.raises(DatasetSourceError, match="outside"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "out").exists()


def test_zip_with_a_symlink_is_refused(tmp_path):
    archive = tmp_path / "link.zip"
    info = zipfile.ZipInfo("link")
    info.external_attr = 0o120777 << 16
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr(info, "/etc/passwd")
    with pytest.raises(DatasetSourceError, match="symbolic link"):
        extract_zip(archive, tmp_path / "out")


class FlakyRangeHandler(SimpleHTTPRequestHandler):
    """Serves files with Range support and an ETag of their content; the first full GET breaks
    off after half the bytes."""

    broken_once = False
    ranges_seen: list[str] = []
    gets = 0

    def log_message(self, *args):
        pass

    def _etag(self, data: bytes) -> str:
        return f'"{hashlib.sha256(data).hexdigest()[:16]}"'

    def do_HEAD(self):
        data = Path(self.translate_path(self.path)).read_bytes()
        self.send_response(200)
        self.send_header("ETag", self._etag(data))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()

    def do_GET(self):
        type(self).gets += 1
        data = Path(self.translate_path(self.path)).read_bytes()
        range_header = self.headers.get("Range")
        if range_header:
            type(self).ranges_seen.append(range_header)
            start = int(range_header.removeprefix("bytes=").rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            body = data[start:]
        else:
            self.send_response(200)
            body = data
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", self._etag(data))
        self.end_headers()
        if not range_header and not type(self).broken_once:
            type(self).broken_once = True
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def http_server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    FlakyRangeHandler.broken_once, FlakyRangeHandler.ranges_seen = False, []
    FlakyRangeHandler.gets = 0
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(FlakyRangeHandler, directory=str(served))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_url_download_resumes_a_broken_transfer_with_a_range_request(
    tiny_dataset, tmp_path, http_server
):
    served, url = http_server
    archive = zip_of(tiny_dataset, served / "dogImages.zip")
    downloaded = download(f"{url}/dogImages.zip", tmp_path / "downloads", MAX_BYTES)
    assert downloaded.read_bytes() == archive.read_bytes()
    half = archive.stat().st_size // 2
    assert FlakyRangeHandler.ranges_seen == [f"bytes={half}-"]
    # A second fetch uses the cache: a HEAD finds the same ETag, nothing is downloaded.
    assert download(f"{url}/dogImages.zip", tmp_path / "downloads", MAX_BYTES) == downloaded
    assert FlakyRangeHandler.ranges_seen == [f"bytes={half}-"] and FlakyRangeHandler.gets == 2


def test_a_zip_changed_at_its_url_is_downloaded_again(tiny_dataset, tmp_path, http_server):
    served, url = http_server
    FlakyRangeHandler.broken_once = True  # no broken transfer here
    zip_of(tiny_dataset, served / "dogImages.zip")
    first = download(f"{url}/dogImages.zip", tmp_path / "downloads", MAX_BYTES).read_bytes()
    (tiny_dataset / "train" / "001.Affenpinscher" / "extra.txt").write_text("new file")
    changed = zip_of(tiny_dataset, served / "dogImages.zip").read_bytes()
    assert changed != first
    again = download(f"{url}/dogImages.zip", tmp_path / "downloads", MAX_BYTES)
    assert again.read_bytes() == changed and FlakyRangeHandler.gets == 2


def test_a_download_larger_than_the_cap_is_refused(tiny_dataset, tmp_path, http_server):
    served, url = http_server
    size = zip_of(tiny_dataset, served / "dogImages.zip").stat().st_size
    with pytest.raises(DatasetSourceError, match=f"{size} bytes, more than dataset.max_download"):
        download(f"{url}/dogImages.zip", tmp_path / "downloads", size - 1)
    assert not list((tmp_path / "downloads").glob("*.zip"))


@pytest.mark.parametrize(
    "source", ["file:///etc/passwd", "ftp://example.com/dogs.zip", "gopher://x/1"]
)
def test_url_sources_of_other_schemes_are_refused(tmp_path, source):
    with pytest.raises(DatasetSourceError, match=r"scheme '\w+' is not allowed; use http://"):
        fetch_dataset(source, tmp_path / "cache", max_download_bytes=MAX_BYTES)


def test_url_source_is_staged_like_a_folder(tiny_dataset, tmp_path, http_server, s3):
    served, url = http_server
    zip_of(tiny_dataset, served / "dogImages.zip")
    settings = load_settings(
        {"dataset": {"source": f"{url}/dogImages.zip", "cache_dir": str(tmp_path / "c")}}
    )
    staged = staging.stage(settings, s3)
    assert staged.image_counts == {"train": 8, "valid": 4, "test": 4}


def test_s3_source_is_copied_and_staged(tiny_dataset, tmp_path, s3):
    s3.create_bucket(Bucket="incoming")
    for path in (p for p in tiny_dataset.rglob("*") if p.is_file()):
        s3.upload_file(str(path), "incoming", f"dogs/{path.relative_to(tiny_dataset).as_posix()}")
    cache = str(tmp_path / "c")
    settings = load_settings({"dataset": {"source": "s3://incoming/dogs", "cache_dir": cache}})
    staged = staging.stage(settings, s3)
    assert staged.image_counts == {"train": 8, "valid": 4, "test": 4}
    local = staging.stage(
        load_settings({"dataset": {"source": str(tiny_dataset), "cache_dir": cache}}), s3
    )
    assert local.snapshot_id == staged.snapshot_id and local.reused_snapshot


def test_missing_source_is_named(tmp_path):
    with pytest.raises(DatasetSourceError, match="neither a folder, a file nor a URL"):
        fetch_dataset(str(tmp_path / "nowhere"), tmp_path / "cache", max_download_bytes=MAX_BYTES)


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_a_missing_bucket_is_created_in_the_clients_region(s3, region):
    regional = boto3.client("s3", region_name=region)
    staging.ensure_bucket(regional, "fresh-bucket", create=True)
    location = regional.get_bucket_location(Bucket="fresh-bucket")["LocationConstraint"]
    assert (location or "us-east-1") == region


@pytest.fixture
def reads(monkeypatch) -> dict[str, list[Path]]:
    """The images staging decoded and hashed (the real functions still run)."""
    seen = {"decoded": [], "hashed": []}
    image_problem, sha256 = staging._image_problem, staging._sha256

    def decoded(path, max_pixels):
        seen["decoded"].append(path)
        return image_problem(path, max_pixels)

    def hashed(path):
        seen["hashed"].append(path)
        return sha256(path)

    monkeypatch.setattr(staging, "_image_problem", decoded)
    monkeypatch.setattr(staging, "_sha256", hashed)
    return seen


def dataset_settings(root: Path, cache: Path, max_pixels: int = MAX_PIXELS) -> dict:
    settings = load_settings({"dataset": {"source": str(root), "cache_dir": str(cache),
                                          "max_image_pixels": max_pixels}})  # fmt: skip
    return settings["dataset"]


def test_an_unchanged_dataset_is_checked_again_without_reading_an_image(
    tiny_dataset, tmp_path, reads
):
    first = staging.fetch_and_verify(dataset_settings(tiny_dataset, tmp_path / "c"), None)
    assert len(reads["decoded"]) == len(reads["hashed"]) == 16
    again = staging.fetch_and_verify(dataset_settings(tiny_dataset, tmp_path / "c"), None)
    assert again[2] == first[2] and len(reads["decoded"]) == len(reads["hashed"]) == 16


def test_a_changed_file_is_decoded_again_and_its_problem_listed(tiny_dataset, tmp_path, reads):
    staging.fetch_and_verify(dataset_settings(tiny_dataset, tmp_path / "c"), None)
    broken = sorted((tiny_dataset / "train" / "001.Affenpinscher").iterdir())[0]
    broken.write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(staging.DatasetError) as raised:
        staging.fetch_and_verify(dataset_settings(tiny_dataset, tmp_path / "c"), None)
    assert [p for p in raised.value.problems if "not a readable image" in p] == [
        p for p in raised.value.problems if broken.name in p
    ]
    assert reads["decoded"][16:] == [broken]


def test_a_lower_pixel_limit_checks_every_image_again(tiny_dataset, tmp_path, reads):
    staging.fetch_and_verify(dataset_settings(tiny_dataset, tmp_path / "c"), None)
    with pytest.raises(staging.DatasetError) as raised:
        staging.fetch_and_verify(dataset_settings(tiny_dataset, tmp_path / "c", 100), None)
    assert len(raised.value.problems) == 16
    assert all("more than dataset.max_image_pixels (100)" in p for p in raised.value.problems)
