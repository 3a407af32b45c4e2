"""Crafted source dirs and model archives: each job or endpoint fails with a reason naming the
archive, and nothing lands outside the folder it was meant for."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import pytest
from hostile_support import BUCKET
from runtime_support import ROLE_ARN, training_request, wait_for_status

from local_sagemaker.executor.archives import UnsafeArchiveError, safe_extract_tar

pytestmark = pytest.mark.e2e
MIB = 1024 * 1024


class Zeros(io.RawIOBase):
    """``size`` zero bytes, read without holding them in memory."""

    def __init__(self, size: int):
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def archive(*members: tuple[tarfile.TarInfo, bytes | io.RawIOBase | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        for info, content in members:
            data = io.BytesIO(content) if isinstance(content, bytes) else content
            tar.addfile(info, data)
    return buffer.getvalue()


def member(name: str, kind=tarfile.REGTYPE, size: int = 0, link: str = "", mode=0o644):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname, info.mode = kind, size, link, mode
    return info


def file(name: str, text: bytes = b"print('x')\n"):
    return member(name, size=len(text)), text


def cve_2025_4517_chain(destination: Path) -> bytes:
    """The published realpath-overflow attack on tarfile's ``data`` filter, sized for
    ``destination``: symlinks through directories whose expanded path exceeds PATH_MAX, then a
    link and a hardlink through them to a file outside, and a write through that hardlink
    (CPython's test_realpath_limit_attack)."""
    steps = "abcdefghijklmnop"
    room = os.pathconf("/", "PC_PATH_MAX") - (len(str(destination)) + 1)
    component = "d" * (room // (len(steps) + 1))
    members, path = [], ""
    for step in steps:
        members.append((member(os.path.join(path, component), tarfile.DIRTYPE, mode=0o777), None))
        members.append((member(os.path.join(path, step), tarfile.SYMTYPE, link=component), None))
        path = os.path.join(path, component)
    link_path = os.path.join(*steps, "l" * 254)
    members.append((member(link_path, tarfile.SYMTYPE, link=os.path.join(*[".."] * len(steps))),
                    None))  # fmt: skip
    members.append((member("escape", tarfile.SYMTYPE, link=os.path.join(link_path, "..")), None))
    members.append((member("flaglink", tarfile.LNKTYPE, link="escape/flag"), None))
    members.append(file("flaglink", b"overwritten"))
    members.append(file("escape/newfile", b"new"))
    return archive(*members)


HOSTILE_ARCHIVES = {
    "member path with ..": lambda: archive(file("../../escaped.py"), file("train.py")),
    "symlink to /etc/passwd": lambda: archive(
        (member("train.py", tarfile.SYMTYPE, link="/etc/passwd"), None)),
    "symlink to a parent folder": lambda: archive(
        (member("up", tarfile.SYMTYPE, link="../.."), None), file("up/escaped.py")),
    "hardlink to a file outside": lambda: archive(
        (member("train.py", tarfile.LNKTYPE, link="../../../../etc/hostname"), None)),
    "device node": lambda: archive((member("train.py", tarfile.CHRTYPE), None)),
    "CVE-2025-4517 symlink chain": cve_2025_4517_chain,  # given the job's code dir
    "1 MiB gzip bomb of 1 GiB": lambda: archive(
        (member("train.py", size=1024 * MIB), Zeros(1024 * MIB))),
}  # fmt: skip


@pytest.fixture(scope="module")
def archive_runtime(runtime):
    runtime.client("s3").put_object(Bucket=BUCKET, Key="data/train/x", Body=b"x")
    return runtime


def files_outside(data_dir: Path, since: set[Path]) -> set[Path]:
    """Files that appeared next to the data dir (where ``..`` members would land)."""
    return {p for p in data_dir.parent.rglob("*") if not p.is_relative_to(data_dir)} - since


@pytest.mark.parametrize("name", HOSTILE_ARCHIVES)
def test_a_hostile_source_dir_fails_the_job_and_writes_nothing_outside(
    archive_runtime, ledger, name
):
    runtime = archive_runtime
    before = files_outside(runtime.data_dir, set())
    job = "archive-" + "".join(c if c.isalnum() else "-" for c in name.lower())[:40].strip("-")
    code_dir = runtime.data_dir / "jobs" / job / "algo-1" / "code"
    build = HOSTILE_ARCHIVES[name]
    body = build(code_dir) if build is cve_2025_4517_chain else build()
    runtime.client("s3").put_object(Bucket=BUCKET, Key=f"code/{job}/sourcedir.tar.gz", Body=body)
    sagemaker = runtime.client("sagemaker")
    sagemaker.create_training_job(**training_request(job, BUCKET, ""))
    described = wait_for_status(sagemaker, job, timeout=60)
    escaped = files_outside(runtime.data_dir, before)
    ledger.found("files outside the data dir", len(escaped))
    assert escaped == set()
    assert described["TrainingJobStatus"] == "Failed"
    assert described["FailureReason"].startswith("ClientError: sagemaker_submit_directory")
    assert "refusing" in described["FailureReason"] or "unpack" in described["FailureReason"]
    ledger.failed_cleanly(f"sourcedir: {name}")
    assert not Path("/etc/passwd").read_text().startswith("print")


def test_a_hostile_model_archive_fails_the_endpoint(archive_runtime, ledger):
    runtime = archive_runtime
    sagemaker = runtime.client("sagemaker")
    chain = cve_2025_4517_chain(runtime.data_dir / "endpoints")
    runtime.client("s3").put_object(Bucket=BUCKET, Key="models/bad/model.tar.gz", Body=chain)
    sagemaker.create_model(
        ModelName="bad-archive", ExecutionRoleArn=ROLE_ARN,
        PrimaryContainer={"Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/"
                          "pytorch-inference:2.5-cpu-py311",
                          "ModelDataUrl": f"s3://{BUCKET}/models/bad/model.tar.gz"},
    )  # fmt: skip
    sagemaker.create_endpoint_config(EndpointConfigName="bad-archive", ProductionVariants=[{
        "VariantName": "all", "ModelName": "bad-archive", "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 1}])  # fmt: skip
    sagemaker.create_endpoint(EndpointName="bad-archive", EndpointConfigName="bad-archive")
    for _ in range(150):
        described = sagemaker.describe_endpoint(EndpointName="bad-archive")
        if described["EndpointStatus"] != "Creating":
            break
        time.sleep(0.2)
    assert described["EndpointStatus"] == "Failed"
    assert "refusing unsafe member" in described["FailureReason"]
    ledger.failed_cleanly("model.tar.gz: CVE-2025-4517 symlink chain")


def test_the_realpath_overflow_chain_cannot_overwrite_a_file_next_to_the_target(tmp_path, ledger):
    """The chain that gets past tarfile's ``data`` filter on Python 3.11.7 (measured: it
    overwrites ``flag`` and creates ``newfile`` beside the destination) is refused here."""
    (tmp_path / "flag").write_text("original")
    destination = tmp_path / "dest"
    archive_path = tmp_path / "chain.tar.gz"
    archive_path.write_bytes(cve_2025_4517_chain(destination))
    with pytest.raises(UnsafeArchiveError, match="is a link"):
        safe_extract_tar(archive_path, destination)
    outside = {p.name for p in tmp_path.iterdir()} - {"flag", "dest", "chain.tar.gz"}
    assert ledger.found("files outside the data dir", len(outside)) == 0
    assert (tmp_path / "flag").read_text() == "original"
