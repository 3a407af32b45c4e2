"""The in-process S3 helpers executors use: channel-style downloads and their safety."""

import threading

import pytest

from local_sagemaker.s3 import S3Error, S3Service


@pytest.fixture
def s3(tmp_path):
    service = S3Service(tmp_path / "state", "us-east-1", "123456789012")
    service.create_bucket("helpers")
    return service


def test_download_strips_the_prefix_like_an_s3prefix_channel(s3, tmp_path):
    s3.write("helpers", "data/train/a.jpg", b"a")
    s3.write("helpers", "data/train/dogs/b.jpg", b"b")
    s3.write("helpers", "data/trainer.txt", b"not in the channel")
    files = s3.download("s3://helpers/data/train/", tmp_path / "channel")
    assert sorted(p.relative_to(tmp_path / "channel").as_posix() for p in files) == [
        "a.jpg",
        "dogs/b.jpg",
    ]


def test_download_of_one_object_keeps_its_name(s3, tmp_path):
    s3.write("helpers", "weights/resnet18.pt", b"w")
    [path] = s3.download("s3://helpers/weights/resnet18.pt", tmp_path / "pretrained")
    assert path == tmp_path / "pretrained" / "resnet18.pt"


def test_download_refuses_keys_that_climb_out(s3, tmp_path):
    s3.write("helpers", "data/../../escape.txt", b"x")
    with pytest.raises(S3Error, match="would land outside the target folder"):
        s3.download("s3://helpers/data/", tmp_path / "channel")
    assert not (tmp_path / "escape.txt").exists()


def test_missing_data_is_named(s3, tmp_path):
    with pytest.raises(S3Error, match="s3://helpers/none: no objects under this S3 URI"):
        s3.download("s3://helpers/none", tmp_path / "x")
    with pytest.raises(S3Error, match="s3://nobucket: the bucket does not exist"):
        s3.read("nobucket", "key")
    with pytest.raises(S3Error, match="is not an S3 URI"):
        s3.download("https://example.com/x", tmp_path / "x")


def test_helper_writes_are_journaled(s3, tmp_path):
    s3.write("helpers", "model.tar.gz", b"model", content_type="application/gzip")
    reopened = S3Service(tmp_path / "state", "us-east-1", "123456789012")
    assert reopened.read("helpers", "model.tar.gz") == b"model"
    assert reopened.backend.get_object("helpers", "model.tar.gz").metadata == {
        "content-type": "application/gzip"
    }


def test_listing_a_prefix_while_another_job_uploads_is_safe(s3):
    """Two training jobs of the rule corpus failed with "dictionary changed size during
    iteration": one listed its channel's keys while another job's upload added keys."""
    stop = threading.Event()

    def upload():
        for i in range(20000):
            if stop.is_set():
                return
            s3.write("helpers", f"output/other-job/{i}.bin", b"x")

    for i in range(500):
        s3.write("helpers", f"data/train/{i}.jpg", b"a")
    writer = threading.Thread(target=upload)
    writer.start()
    try:
        for _ in range(100):
            assert len(s3.list_keys("helpers", "data/train/")) == 500
    finally:
        stop.set()
        writer.join()
