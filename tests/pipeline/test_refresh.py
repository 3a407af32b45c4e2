"""Refresh detection: one refresh per real change of a local folder, an s3:// prefix or a URL;
nothing for an unchanged source or one touched without a content change; content hashed only
when the cheap fingerprint moved."""

import os
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sagemaker_lifecycle import refresh
from sagemaker_lifecycle.settings import load_settings
from sagemaker_lifecycle.snapshots import SnapshotCatalog, new_entry
from sagemaker_lifecycle.staging import stage

BUCKET = "dog-breed-classifier"


@pytest.fixture
def hashes(monkeypatch) -> list[str]:
    """The sources whose content was hashed, in order (the real function still runs)."""
    seen = []

    def counted(dataset, s3):
        seen.append(dataset["source"])
        return real(dataset, s3)

    real = refresh.fetch_and_verify
    monkeypatch.setattr(refresh, "fetch_and_verify", counted)
    return seen


def poll(source: str, s3, cache: Path) -> refresh.RefreshCheck:
    """One poll of the watcher: check, then save what it saw (as its two tasks do)."""
    settings = load_settings({"dataset": {"source": source, "cache_dir": str(cache)}})
    check = refresh.check_source(settings, s3)
    refresh.SourceWatch(s3, BUCKET, "datasets", source).save(check.state)
    return check


def refreshes(source, s3, cache, times) -> list[bool]:
    return [poll(source, s3, cache).refreshed for _ in range(times)]


@pytest.fixture
def bucket(s3):
    s3.create_bucket(Bucket=BUCKET)
    return s3


def replace_an_image(root: Path) -> None:
    first, second = sorted((root / "train" / "001.Affenpinscher").iterdir())[:2]
    first.write_bytes(second.read_bytes())


def test_a_local_folder_fires_once_per_change_and_not_when_unchanged(
    tiny_dataset, bucket, tmp_path, hashes
):
    source, cache = str(tiny_dataset), tmp_path / "cache"
    assert refreshes(source, bucket, cache, 3) == [True, False, False]  # never staged before
    assert len(hashes) == 1  # the unchanged polls only walked the folder
    replace_an_image(tiny_dataset)
    assert refreshes(source, bucket, cache, 2) == [True, False]
    assert len(hashes) == 2


def test_a_touched_file_with_the_same_content_fires_nothing(tiny_dataset, bucket, tmp_path, hashes):
    source, cache = str(tiny_dataset), tmp_path / "cache"
    poll(source, bucket, cache)
    image = next((tiny_dataset / "valid" / "002.Afghan_hound").iterdir())
    os.utime(image, (1_700_000_000, 1_700_000_000))
    check = poll(source, bucket, cache)
    assert not check.refreshed and "touched, but its content is still" in check.reason
    assert refreshes(source, bucket, cache, 1) == [False] and len(hashes) == 2


def test_a_source_the_catalog_already_has_does_not_fire_at_the_first_poll(
    tiny_dataset, bucket, tmp_path
):
    settings = load_settings(
        {"dataset": {"source": str(tiny_dataset), "cache_dir": str(tmp_path / "c")}}
    )
    staged = stage(settings, bucket).as_dict()
    SnapshotCatalog(bucket, BUCKET, "datasets").record(new_entry(staged, {"run_id": "r"}, None))
    check = poll(str(tiny_dataset), bucket, tmp_path / "c")
    assert not check.refreshed and check.reason.endswith("already staged")


def upload(s3, root: Path, prefix: str) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        s3.upload_file(str(path), "incoming", f"{prefix}/{path.relative_to(root).as_posix()}")


def test_an_s3_prefix_fires_once_per_change_seen_in_its_listing(
    tiny_dataset, bucket, tmp_path, hashes
):
    bucket.create_bucket(Bucket="incoming")
    upload(bucket, tiny_dataset, "dogs")
    source, cache = "s3://incoming/dogs", tmp_path / "cache"
    assert refreshes(source, bucket, cache, 2) == [True, False]
    upload(bucket, tiny_dataset, "dogs")  # the same bytes again: same ETags and sizes
    assert refreshes(source, bucket, cache, 1) == [False] and len(hashes) == 1
    replace_an_image(tiny_dataset)
    upload(bucket, tiny_dataset, "dogs")
    assert refreshes(source, bucket, cache, 2) == [True, False]


class CountingHandler(SimpleHTTPRequestHandler):
    """A static file server (Last-Modified from the file's mtime) that counts its requests."""

    requests: list[str] = []

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        type(self).requests.append("HEAD")
        super().do_HEAD()

    def do_GET(self):
        type(self).requests.append("GET")
        super().do_GET()


@pytest.fixture
def served(tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()
    CountingHandler.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(CountingHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/dogImages.zip"
    server.shutdown()


def zip_to(root: Path, target: Path, mtime: int) -> None:
    with zipfile.ZipFile(target, "w") as bundle:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            bundle.write(path, f"dogImages/{path.relative_to(root).as_posix()}")
    os.utime(target, (mtime, mtime))


def test_a_url_is_polled_with_head_requests_and_fires_once_per_content_change(
    tiny_dataset, bucket, tmp_path, served
):
    folder, url = served
    cache = tmp_path / "cache"
    zip_to(tiny_dataset, folder / "dogImages.zip", 1_700_000_000)
    assert refreshes(url, bucket, cache, 3) == [True, False, False]
    assert CountingHandler.requests.count("GET") == 1  # the confirming download, once
    # Re-published with a new date but the same images: Last-Modified moves, the content not.
    zip_to(tiny_dataset, folder / "dogImages.zip", 1_700_100_000)
    assert refreshes(url, bucket, cache, 1) == [False]
    replace_an_image(tiny_dataset)
    zip_to(tiny_dataset, folder / "dogImages.zip", 1_700_200_000)
    assert refreshes(url, bucket, cache, 2) == [True, False]
    assert CountingHandler.requests.count("GET") == 3


def test_a_source_that_cannot_be_fingerprinted_is_named(bucket, tmp_path):
    with pytest.raises(refresh.DatasetSourceError, match="neither a folder nor a file"):
        refresh.source_fingerprint(str(tmp_path / "nowhere"), bucket)
    with pytest.raises(refresh.DatasetSourceError, match="no object under s3://dog-breed"):
        refresh.source_fingerprint(f"s3://{BUCKET}/empty", bucket)
