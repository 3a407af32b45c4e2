"""Hostile inputs to the pipeline's own steps: each is refused with a message naming what is
wrong, and nothing is staged.

- images: decompression bombs and oversized images in a dataset are listed as staging problems
  (Pillow's DecompressionBombError used to crash the task);
- URL dataset sources: only http(s) is fetched, and a download stops at its size cap, whether
  the server announces the size or streams without one;
- DAG params: a trigger user's `overrides` cannot point settings at this machine's files
  (`dataset.cache_dir`) or at images.
"""

from __future__ import annotations

import struct
import sys
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from moto import mock_aws

REPO_ROOT = Path(__file__).resolve().parents[2]
# Airflow puts plugins/ on sys.path; the tests import the plugin package the same way.
if str(REPO_ROOT / "plugins") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "plugins"))

from sagemaker_lifecycle import staging  # noqa: E402
from sagemaker_lifecycle.dataset_source import DatasetSourceError, download  # noqa: E402
from sagemaker_lifecycle.settings import SettingsError, load_settings  # noqa: E402
from sagemaker_lifecycle.tasks import settings_from_params  # noqa: E402

from demo.dataset import make_dataset  # noqa: E402


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` pixels in a few dozen bytes (no pixel data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.fixture
def dataset(tmp_path) -> Path:
    return make_dataset(tmp_path / "dogs", num_classes=2, image_size=32)


@pytest.fixture
def s3(moto_session) -> Iterator:
    """moto's in-process S3, empty for each test."""
    with mock_aws():
        yield moto_session.client("s3")


def staging_settings(source: str, cache: Path) -> dict:
    return load_settings({"dataset": {"source": source, "cache_dir": str(cache)}})


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (30_000, 30_000, "a decompression bomb"),  # past Pillow's own limit: it raises on open
        (10_000, 5_000, "more than dataset.max_image_pixels"),  # under Pillow's, over ours
    ],
)
def test_a_decompression_bomb_is_a_staging_problem_and_nothing_is_uploaded(
    dataset, tmp_path, s3, width, height, expected
):
    bomb = dataset / "train" / next(p.name for p in (dataset / "train").iterdir()) / "bomb.png"
    bomb.write_bytes(png_header_only(width, height))
    with pytest.raises(staging.DatasetError) as refused:
        staging.stage(staging_settings(str(dataset), tmp_path / "cache"), s3)
    [problem] = refused.value.problems
    assert "bomb.png" in problem and expected in problem
    assert s3.list_buckets()["Buckets"] == []  # refused before any upload


@pytest.mark.parametrize(
    "source", ["file:///etc/passwd", "ftp://example.com/dogImages.zip", "FILE:///etc/shadow"]
)
def test_url_sources_other_than_http_are_refused(tmp_path, s3, source):
    with pytest.raises(DatasetSourceError, match="is not allowed; use http://, https://"):
        staging.stage(staging_settings(source, tmp_path / "cache"), s3)


class EndlessZip(BaseHTTPRequestHandler):
    """Streams zeros without a Content-Length, forever (HTTP/1.0: the body ends at close)."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        try:
            while True:
                self.wfile.write(b"\0" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            return


@pytest.fixture
def endless_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EndlessZip)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/dogImages.zip"
    server.shutdown()


def test_a_download_without_a_length_stops_at_the_size_cap(tmp_path, endless_url):
    with pytest.raises(
        DatasetSourceError, match=r"larger than dataset.max_download_bytes \(1000000\)"
    ):
        download(endless_url, tmp_path / "downloads", max_bytes=1_000_000)
    leftovers = [p.stat().st_size for p in (tmp_path / "downloads").iterdir()]
    assert all(size <= 1_000_000 for size in leftovers)


@pytest.mark.parametrize(
    "overrides",
    [
        {"dataset": {"cache_dir": "/etc"}},
        {"images": {"training": "attacker/image:latest"}},
        {"images": {"framework_version": "9.9"}},
        {"images": None},
    ],
)
def test_run_overrides_cannot_point_at_local_paths_or_images(overrides):
    with pytest.raises(SettingsError, match=r"overrides may not set (dataset\.cache_dir|images)"):
        settings_from_params({"overrides": overrides})


def test_run_overrides_still_set_everything_else():
    settings = settings_from_params(
        {"overrides": {"dataset": {"source": "s3://b/dogs"}, "tuning": {"max_jobs": 2}}}
    )
    assert (settings["dataset"]["source"], settings["tuning"]["max_jobs"]) == ("s3://b/dogs", 2)
    with pytest.raises(SettingsError, match="overrides must be a mapping"):
        settings_from_params({"overrides": ["images"]})
