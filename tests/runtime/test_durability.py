"""State survives ``kill -9`` of the runtime: S3 objects (through the journal, any key, form
POSTs too), training job records, log events; a PUT or a multipart upload cut off by the crash
leaves no partial object and every other object whole; and jobs cut off by the crash end Failed
with their processes killed."""

import hashlib
import http.client
import json
import os
import time

import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from runtime_access import REGION, s3v4_client
from runtime_support import (
    RuntimeProcess,
    process_alive,
    start_script_job,
    wait_for_log_line,
    wait_for_status,
)

pytestmark = pytest.mark.e2e
BUCKET = "durable"


@pytest.fixture
def crashed_and_restarted(tmp_path):
    """A runtime with state, killed with SIGKILL and restarted on the same data dir."""
    runtime = RuntimeProcess(tmp_path / "state").start()
    yield runtime
    runtime.stop()


def _create_bucket_with_data(runtime: RuntimeProcess) -> None:
    s3 = runtime.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="data/train/x", Body=b"x")


def _restart_after_kill(runtime: RuntimeProcess) -> None:
    runtime.kill_hard()
    runtime.start()


def test_s3_state_survives_kill_9(crashed_and_restarted):
    runtime = crashed_and_restarted
    s3 = runtime.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.create_bucket(Bucket="short-lived")
    s3.delete_bucket(Bucket="short-lived")
    s3.put_object(Bucket=BUCKET, Key="plain.txt", Body=b"plain")
    s3.put_object(
        Bucket=BUCKET,
        Key="meta.json",
        Body=b"{}",
        ContentType="application/json",
        Metadata={"owner": "runtime-tests"},
    )
    s3.put_object(Bucket=BUCKET, Key="overwritten", Body=b"old")
    s3.put_object(Bucket=BUCKET, Key="overwritten", Body=b"new")
    s3.put_object(Bucket=BUCKET, Key="deleted", Body=b"gone")
    s3.delete_object(Bucket=BUCKET, Key="deleted")
    s3.put_object(Bucket=BUCKET, Key="batch/1", Body=b"1")
    s3.put_object(Bucket=BUCKET, Key="batch/2", Body=b"2")
    s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "batch/1"}]})
    s3.copy_object(Bucket=BUCKET, Key="copy.txt", CopySource={"Bucket": BUCKET, "Key": "plain.txt"})
    parts = [os.urandom(5 * 1024 * 1024), b"tail"]
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="multi.bin")
    etags = [
        s3.upload_part(
            Bucket=BUCKET, Key="multi.bin", UploadId=upload["UploadId"], PartNumber=n, Body=body
        )["ETag"]
        for n, body in enumerate(parts, start=1)
    ]
    s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key="multi.bin",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": e, "PartNumber": n} for n, e in enumerate(etags, 1)]},
    )
    multipart_etag = s3.head_object(Bucket=BUCKET, Key="multi.bin")["ETag"]

    _restart_after_kill(runtime)
    s3 = runtime.client("s3")

    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [BUCKET]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == ["batch/2", "copy.txt", "meta.json", "multi.bin", "overwritten", "plain.txt"]
    assert s3.get_object(Bucket=BUCKET, Key="overwritten")["Body"].read() == b"new"
    assert s3.get_object(Bucket=BUCKET, Key="copy.txt")["Body"].read() == b"plain"
    meta = s3.head_object(Bucket=BUCKET, Key="meta.json")
    assert meta["ContentType"] == "application/json"
    assert meta["Metadata"] == {"owner": "runtime-tests"}
    multi = s3.get_object(Bucket=BUCKET, Key="multi.bin")
    assert multi["ETag"] == multipart_etag
    assert hashlib.sha256(multi["Body"].read()).digest() == hashlib.sha256(b"".join(parts)).digest()


# Larger than the socket buffers: sending half of it returns only once the runtime is reading.
CUT_OFF_BODY_BYTES = 32 * 1024 * 1024


def _kill_9_halfway_through_a_put(runtime: RuntimeProcess, path_and_query: str) -> None:
    """A PUT signed as boto3 signs it (the whole body's hash), of which only the headers and half
    the body reach the runtime before it is killed with SIGKILL."""
    body = os.urandom(CUT_OFF_BODY_BYTES)
    request = AWSRequest(method="PUT", url=f"{runtime.url}/{path_and_query}", data=body)
    key_pair = runtime.key_pair
    credentials = Credentials(key_pair.access_key_id, key_pair.secret_access_key)
    S3SigV4Auth(credentials, "s3", REGION).add_auth(request)
    connection = http.client.HTTPConnection("127.0.0.1", runtime.port, timeout=60)
    connection.putrequest("PUT", f"/{path_and_query}", skip_accept_encoding=True)
    for name, value in request.headers.items():
        connection.putheader(name, value)
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders()
    connection.send(body[: len(body) // 2])
    runtime.kill_hard()
    connection.close()


def test_a_put_cut_off_by_kill_9_leaves_the_old_object_whole(crashed_and_restarted):
    runtime = crashed_and_restarted
    s3 = runtime.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="kept", Body=b"kept")
    s3.put_object(Bucket=BUCKET, Key="replaced", Body=b"old")

    _kill_9_halfway_through_a_put(runtime, f"{BUCKET}/replaced")
    runtime.start()
    s3 = runtime.client("s3")

    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == ["kept", "replaced"]
    assert s3.get_object(Bucket=BUCKET, Key="replaced")["Body"].read() == b"old"
    assert s3.get_object(Bucket=BUCKET, Key="kept")["Body"].read() == b"kept"
    s3.put_object(Bucket=BUCKET, Key="replaced", Body=b"new")
    assert s3.get_object(Bucket=BUCKET, Key="replaced")["Body"].read() == b"new"


def test_a_multipart_upload_cut_off_by_kill_9_leaves_no_object(crashed_and_restarted):
    runtime = crashed_and_restarted
    s3 = runtime.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="kept", Body=b"kept")
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key="multi.bin")["UploadId"]
    first = os.urandom(5 * 1024 * 1024)
    s3.upload_part(Bucket=BUCKET, Key="multi.bin", UploadId=upload_id, PartNumber=1, Body=first)

    _kill_9_halfway_through_a_put(runtime, f"{BUCKET}/multi.bin?partNumber=2&uploadId={upload_id}")
    runtime.start()
    s3 = runtime.client("s3")

    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == ["kept"]
    assert s3.get_object(Bucket=BUCKET, Key="kept")["Body"].read() == b"kept"
    # In-progress uploads are not kept across a restart (local_sagemaker/s3.py): the client is
    # told so by name and starts again.
    with pytest.raises(ClientError) as raised:
        s3.complete_multipart_upload(
            Bucket=BUCKET, Key="multi.bin", UploadId=upload_id,
            MultipartUpload={"Parts": [{"ETag": '"x"', "PartNumber": 1}]},
        )  # fmt: skip
    assert raised.value.response["Error"]["Code"] == "NoSuchUpload"
    again = s3.create_multipart_upload(Bucket=BUCKET, Key="multi.bin")["UploadId"]
    etag = s3.upload_part(Bucket=BUCKET, Key="multi.bin", UploadId=again, PartNumber=1, Body=first)[
        "ETag"
    ]
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key="multi.bin", UploadId=again,
        MultipartUpload={"Parts": [{"ETag": etag, "PartNumber": 1}]},
    )  # fmt: skip
    assert s3.get_object(Bucket=BUCKET, Key="multi.bin")["Body"].read() == first


def test_non_ascii_keys_and_form_posts_survive_kill_9(crashed_and_restarted):
    runtime = crashed_and_restarted
    s3 = runtime.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    written = {key: key.encode() * 3 for key in ("ünï/ć ø.txt", "日本語.bin", "dog-🐕.jpg", "a+b")}
    for key, body in written.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    signed = s3v4_client(runtime.url)
    post = signed.generate_presigned_post(BUCKET, "posted/${filename}")
    answer = requests.post(
        post["url"], data=post["fields"], files={"file": ("körper.txt", b"form")}, timeout=10
    )
    assert answer.status_code == 204, answer.text
    written["posted/körper.txt"] = b"form"

    _restart_after_kill(runtime)
    s3 = runtime.client("s3")

    assert {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]} == set(written)
    for key, body in written.items():
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == body


def test_journal_is_compacted_at_start_up(crashed_and_restarted):
    runtime = crashed_and_restarted
    s3 = runtime.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    for round_number in range(20):
        s3.put_object(Bucket=BUCKET, Key="same-key", Body=str(round_number).encode())
    journal = runtime.data_dir / "s3-journal"
    assert len(list(journal.glob("*.json"))) == 21

    _restart_after_kill(runtime)

    entries = sorted(journal.glob("*.json"))
    assert [json.loads(p.read_text())["op"] for p in entries] == ["create_bucket", "put_object"]
    body = runtime.client("s3").get_object(Bucket=BUCKET, Key="same-key")["Body"].read()
    assert body == b"19"


def test_after_a_crash_finished_jobs_are_intact_and_running_ones_fail(crashed_and_restarted):
    runtime = crashed_and_restarted
    _create_bucket_with_data(runtime)
    start_script_job(runtime, BUCKET, "finished", "print('#metrics epoch=1 valid_acc=0.9000')\n")
    finished_before = wait_for_status(runtime.client("sagemaker"), "finished")
    script = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print('pids', os.getpid(), child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    start_script_job(runtime, BUCKET, "interrupted", script)
    messages = wait_for_log_line(runtime.client("logs"), "interrupted", "pids ")
    pids = [int(p) for p in next(m for m in messages if m.startswith("pids ")).split()[1:]]

    _restart_after_kill(runtime)

    finished_after = runtime.client("sagemaker").describe_training_job(TrainingJobName="finished")
    for response in (finished_before, finished_after):
        response.pop("ResponseMetadata")
    assert finished_after == finished_before
    described = wait_for_status(runtime.client("sagemaker"), "interrupted", timeout=5)
    assert described["TrainingJobStatus"] == "Failed"
    assert described["FailureReason"] == (
        "InternalServerError: the local SageMaker runtime restarted while the job was running"
    )
    deadline = time.monotonic() + 5
    while any(process_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(process_alive(pid) for pid in pids)
    # Log events written before the crash are still there.
    assert "pids " in " ".join(wait_for_log_line(runtime.client("logs"), "interrupted", "pids "))


def test_graceful_shutdown_fails_running_jobs_and_ends_their_processes(crashed_and_restarted):
    runtime = crashed_and_restarted
    _create_bucket_with_data(runtime)
    script = "import os, time\nprint('pid', os.getpid(), flush=True)\ntime.sleep(600)\n"
    start_script_job(runtime, BUCKET, "shut-down", script)
    messages = wait_for_log_line(runtime.client("logs"), "shut-down", "pid ")
    pid = int(next(m for m in messages if m.startswith("pid ")).split()[1])

    runtime.stop()
    assert not process_alive(pid)
    runtime.start()

    described = runtime.client("sagemaker").describe_training_job(TrainingJobName="shut-down")
    assert described["TrainingJobStatus"] == "Failed"
    assert described["FailureReason"] == (
        "InternalServerError: the local SageMaker runtime was shut down while the job was running"
    )
