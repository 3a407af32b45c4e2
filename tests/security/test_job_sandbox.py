"""Jobs of a root runtime run as a container engine runs them: as an unprivileged uid of their
own, seeing /opt/ml as their tree and nothing of the runtime's state or of other jobs.

A job's code here is the attacker: it knows the data dir's path (given as a hyperparameter, as a
job could guess it) and tries to read the runtime's credentials, another job's tree and the
runtime's environment, and to signal another job."""

from __future__ import annotations

import io
import json
import os
import tarfile
import time

import pytest
from hostile_support import BUCKET
from processing_support import (
    processing_log_messages,
    processing_request,
    upload_processing_script,
    wait_for_processing,
)
from runtime_access import RuntimeProcess
from runtime_support import (
    job_log_messages,
    process_alive,
    start_script_job,
    wait_for_log_line,
    wait_for_status,
)

from local_sagemaker.credentials import ACCESS_KEY_ENV, CREDENTIALS_FILE, SECRET_KEY_ENV

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="jobs are sandboxed only by a root runtime"),
]
FIXED_SECRET = "sandbox-test-secret-0123456789abcdefghij"

# Reads the container contract by its literal paths, as SageMaker SDK v3's drivers do.
LITERAL_PATHS_JOB = """
import json, os
hyperparameters = json.load(open("/opt/ml/input/config/hyperparameters.json"))
rows = sorted(os.listdir("/opt/ml/input/data/train"))
with open("/opt/ml/input/data/train/rows.csv") as data:
    first = data.readline().strip()
os.makedirs("/opt/ml/model", exist_ok=True)
with open("/opt/ml/model/literal.json", "w") as model:
    json.dump({"epochs": hyperparameters["epochs"], "rows": rows, "first": first}, model)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "from-sm-model-dir.txt"), "w") as model:
    model.write(os.environ["SM_CHANNEL_TRAIN"])
print("uid", os.getuid(), "gid", os.getgid(), "home", os.environ["HOME"], flush=True)
"""

# Waits with a secret in its own tree, so another job can try to reach it.
VICTIM_JOB = """
import os, time
with open("/opt/ml/model/secret.txt", "w") as secret:
    secret.write("victim's secret")
print("victim", os.getpid(), flush=True)
time.sleep(120)
"""

# Tries everything it should not be able to do; prints one line per attempt.
INTRUDER_JOB = """
import argparse, os, signal
parser = argparse.ArgumentParser()
parser.add_argument("--data-dir")
parser.add_argument("--victim-pid", type=int)
args, _ = parser.parse_known_args()

def attempt(what, action):
    try:
        action()
        print("ALLOWED", what, flush=True)
    except OSError as error:
        print("refused", what, type(error).__name__, flush=True)

victim_tree = os.path.join(args.data_dir, "jobs", "victim", "algo-1")
attempt("credentials", lambda: open(os.path.join(args.data_dir, "CREDENTIALS_FILE")).read())
attempt("victim tree", lambda: open(os.path.join(victim_tree, "model", "secret.txt")).read())
attempt("victim /proc root",
        lambda: open(f"/proc/{args.victim_pid}/root/opt/ml/model/secret.txt").read())
attempt("victim environ", lambda: open(f"/proc/{args.victim_pid}/environ").read())
attempt("runtime environ", lambda: open(f"/proc/{os.getppid()}/environ").read())
attempt("signal victim", lambda: os.kill(args.victim_pid, signal.SIGKILL))
attempt("root's files", lambda: open("/root/.bashrc").read())
print("jobs visible", sorted(os.listdir(os.path.join(args.data_dir, "jobs"))), flush=True)
print("runtime keys in env", [k for k in os.environ if k in ("ACCESS_KEY_ENV", "SECRET_KEY_ENV")])
""".replace("CREDENTIALS_FILE", CREDENTIALS_FILE)
INTRUDER_JOB = INTRUDER_JOB.replace("ACCESS_KEY_ENV", ACCESS_KEY_ENV)
INTRUDER_JOB = INTRUDER_JOB.replace("SECRET_KEY_ENV", SECRET_KEY_ENV)


# A grandchild that leaves every mark of its tree: a session of its own, an empty environment (no
# tree token) and no inherited output pipe. Only its uid says whose it is.
FULLY_ESCAPING_JOB = """
import subprocess, sys, time
child = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(600)"],
    env={}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    start_new_session=True,
)
print("escaped", child.pid, flush=True)
time.sleep(0.5)
"""


@pytest.fixture(scope="module")
def sandbox_runtime(tmp_path_factory):
    server = RuntimeProcess(tmp_path_factory.mktemp("sandbox") / "state").start(
        {ACCESS_KEY_ENV: "AKIASANDBOXTEST00001", SECRET_KEY_ENV: FIXED_SECRET}
    )
    s3 = server.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="data/train/rows.csv", Body=b"a,b\n1,2\n")
    yield server
    server.stop()


def model_files(runtime, job: str) -> dict[str, bytes]:
    body = (
        runtime.client("s3")
        .get_object(Bucket=BUCKET, Key=f"output/{job}/output/model.tar.gz")["Body"]
        .read()
    )
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        return {
            member.name.removeprefix("./"): archive.extractfile(member).read()
            for member in archive.getmembers()
            if member.isfile()
        }


def test_a_job_reads_and_writes_the_documented_opt_ml_paths_as_its_own_user(sandbox_runtime):
    start_script_job(
        sandbox_runtime,
        BUCKET,
        "literal-paths",
        LITERAL_PATHS_JOB,
        HyperParameters={
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": f'"s3://{BUCKET}/code/literal-paths/sourcedir.tar.gz"',
            "epochs": "3",
        },
    )
    described = wait_for_status(sandbox_runtime.client("sagemaker"), "literal-paths")
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    files = model_files(sandbox_runtime, "literal-paths")
    assert json.loads(files["literal.json"]) == {
        "epochs": "3",
        "rows": ["rows.csv"],
        "first": "a,b",
    }
    # The SM_* contract still names the tree's own paths, which lead to the same files.
    channel = files["from-sm-model-dir.txt"].decode()
    assert channel.endswith("/jobs/literal-paths/algo-1/input/data/train")
    uid_line = next(
        line
        for line in job_log_messages(sandbox_runtime.client("logs"), "literal-paths")
        if line.startswith("uid ")
    )
    _, uid, _, gid, _, home = uid_line.split()
    assert int(uid) != 0 and uid == gid
    assert home.endswith("/jobs/literal-paths/home")


def test_a_job_reaches_neither_the_runtimes_secrets_nor_another_job(sandbox_runtime, ledger):
    start_script_job(sandbox_runtime, BUCKET, "victim", VICTIM_JOB)
    victim_line = wait_for_log_line(sandbox_runtime.client("logs"), "victim", "victim ")
    victim_pid = int(next(m for m in victim_line if m.startswith("victim ")).split()[1])
    start_script_job(
        sandbox_runtime,
        BUCKET,
        "intruder",
        INTRUDER_JOB,
        HyperParameters={
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": f'"s3://{BUCKET}/code/intruder/sourcedir.tar.gz"',
            "data-dir": str(sandbox_runtime.data_dir),
            "victim-pid": str(victim_pid),
        },
    )
    sagemaker = sandbox_runtime.client("sagemaker")
    described = wait_for_status(sagemaker, "intruder")
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    lines = job_log_messages(sandbox_runtime.client("logs"), "intruder")
    attempts = [line for line in lines if line.startswith(("ALLOWED", "refused"))]
    assert len(attempts) == 7, lines
    allowed = [line for line in attempts if line.startswith("ALLOWED")]
    assert ledger.found("sandbox escapes", len(allowed)) == 0, allowed
    assert "runtime keys in env []" in lines
    assert "jobs visible ['intruder']" in lines  # its own path, and nothing beside it
    assert sagemaker.describe_training_job(TrainingJobName="victim")["TrainingJobStatus"] == (
        "InProgress"
    )
    sagemaker.stop_training_job(TrainingJobName="victim")
    assert wait_for_status(sagemaker, "victim")["TrainingJobStatus"] == "Stopped"


def test_a_processing_job_finds_its_inputs_at_paths_it_was_never_given(sandbox_runtime):
    script = (
        "import os\n"
        "rows = open('/opt/ml/processing/input/data/rows.csv').read()\n"
        "os.makedirs('/opt/ml/processing/output', exist_ok=True)\n"
        "open('/opt/ml/processing/output/count.txt', 'w').write(str(len(rows.splitlines())))\n"
        "print('uid', os.getuid(), flush=True)\n"
    )
    upload_processing_script(sandbox_runtime.client("s3"), BUCKET, "literal-processing", script)
    request = processing_request("literal-processing", BUCKET)
    request["ProcessingInputs"].append(
        {
            "InputName": "data",
            "S3Input": {
                "S3Uri": f"s3://{BUCKET}/data/train",
                "LocalPath": "/opt/ml/processing/input/data",
                "S3DataType": "S3Prefix",
                "S3InputMode": "File",
            },
        }
    )
    request["ProcessingOutputConfig"] = {
        "Outputs": [
            {
                "OutputName": "count",
                "S3Output": {
                    "S3Uri": f"s3://{BUCKET}/processed/literal",
                    "LocalPath": "/opt/ml/processing/output",
                    "S3UploadMode": "EndOfJob",
                },
            }
        ]
    }
    sagemaker = sandbox_runtime.client("sagemaker")
    sagemaker.create_processing_job(**request)
    described = wait_for_processing(sagemaker, "literal-processing")
    assert described["ProcessingJobStatus"] == "Completed", described.get("FailureReason")
    count = (
        sandbox_runtime.client("s3")
        .get_object(Bucket=BUCKET, Key="processed/literal/count.txt")["Body"]
        .read()
    )
    assert count == b"2"
    _, messages = processing_log_messages(sandbox_runtime.client("logs"), "literal-processing")
    assert any(m.startswith("uid ") and m != "uid 0" for m in messages), messages


def test_a_grandchild_that_drops_every_mark_of_its_tree_still_ends_with_the_job(
    sandbox_runtime, ledger
):
    start_script_job(sandbox_runtime, BUCKET, "fully-escapes", FULLY_ESCAPING_JOB)
    described = wait_for_status(sandbox_runtime.client("sagemaker"), "fully-escapes")
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    messages = job_log_messages(sandbox_runtime.client("logs"), "fully-escapes")
    pid = int(next(m for m in messages if m.startswith("escaped ")).split()[1])
    deadline = time.monotonic() + 5
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ledger.found("orphan processes", int(process_alive(pid))) == 0
