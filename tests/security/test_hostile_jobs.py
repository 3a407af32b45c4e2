"""Jobs whose code misbehaves: processes that escape their group and keep the output open, a
regex that backtracks, more jobs than the runtime runs at once. The job's tree ends with it,
the runtime keeps answering, and the caps hold."""

from __future__ import annotations

import os
import sys
import time

import pytest
from botocore.exceptions import ClientError
from hostile_support import BUCKET
from runtime_access import RuntimeProcess
from runtime_support import (
    PYTORCH_IMAGE,
    process_alive,
    start_script_job,
    wait_for_log_line,
    wait_for_status,
)

from local_sagemaker.executor.processes import ManagedProcess

pytestmark = pytest.mark.e2e
# A grandchild that leaves the job's process group and session and keeps stdout open.
ESCAPING_GRANDCHILD = (
    "import os, subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', "
    '\'import os, time\\nos.setsid()\\nprint("escaped", os.getpid(), flush=True)\\n'
    "time.sleep(600)'])\n"
    "time.sleep(0.5)\n"
)


@pytest.fixture(scope="module")
def jobs_runtime(tmp_path_factory):
    server = RuntimeProcess(tmp_path_factory.mktemp("hostile-jobs") / "state").start(
        {"LOCAL_SAGEMAKER_MAX_CONCURRENT_JOBS": "2"}
    )
    server.client("s3").create_bucket(Bucket=BUCKET)
    server.client("s3").put_object(Bucket=BUCKET, Key="data/train/x", Body=b"x")
    yield server
    server.stop()


def escaped_pid(runtime, job: str) -> int:
    messages = wait_for_log_line(runtime.client("logs"), job, "escaped ")
    return int(next(m for m in messages if m.startswith("escaped ")).split()[1])


def assert_ended(pid: int, ledger) -> None:
    deadline = time.monotonic() + 5
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ledger.found("orphan processes", int(process_alive(pid))) == 0


def test_a_completed_job_takes_its_escaped_grandchild_with_it(jobs_runtime, ledger):
    started = time.monotonic()
    start_script_job(
        jobs_runtime, BUCKET, "escapes-on-exit", ESCAPING_GRANDCHILD + "print('done')\n"
    )
    described = wait_for_status(jobs_runtime.client("sagemaker"), "escapes-on-exit", timeout=60)
    assert described["TrainingJobStatus"] == "Completed"
    assert time.monotonic() - started < 30
    assert_ended(escaped_pid(jobs_runtime, "escapes-on-exit"), ledger)


def test_max_runtime_and_stop_end_the_whole_tree_promptly(jobs_runtime, ledger):
    sagemaker = jobs_runtime.client("sagemaker")
    long_job = ESCAPING_GRANDCHILD + "time.sleep(600)\n"
    start_script_job(jobs_runtime, BUCKET, "overruns", long_job,
                     StoppingCondition={"MaxRuntimeInSeconds": 3})  # fmt: skip
    start_script_job(jobs_runtime, BUCKET, "stopped", long_job)
    pids = [escaped_pid(jobs_runtime, name) for name in ("overruns", "stopped")]
    asked = time.monotonic()
    sagemaker.stop_training_job(TrainingJobName="stopped")
    stopped = wait_for_status(sagemaker, "stopped", timeout=30)
    assert stopped["TrainingJobStatus"] == "Stopped"
    assert time.monotonic() - asked < 20  # the 10 s grace, not 75 s of blocked pipe readers
    overran = wait_for_status(sagemaker, "overruns", timeout=30)
    assert (overran["TrainingJobStatus"], overran["SecondaryStatus"]) == (
        "Stopped", "MaxRuntimeExceeded")  # fmt: skip
    for pid in pids:
        assert_ended(pid, ledger)


def test_more_jobs_than_the_cap_are_refused(jobs_runtime, ledger):
    sagemaker = jobs_runtime.client("sagemaker")
    for name in ("slot-1", "slot-2"):
        start_script_job(jobs_runtime, BUCKET, name, "import time\ntime.sleep(30)\n")
    with pytest.raises(ClientError) as raised:
        start_script_job(jobs_runtime, BUCKET, "slot-3", "print('never')\n")
    error = raised.value.response
    status = ledger.answered(
        "a third job over a cap of 2", error["ResponseMetadata"]["HTTPStatusCode"]
    )
    assert (status, error["Error"]["Code"]) == (400, "ResourceLimitExceeded")
    for name in ("slot-1", "slot-2"):
        sagemaker.stop_training_job(TrainingJobName=name)
        wait_for_status(sagemaker, name, timeout=30)


def test_a_backtracking_metric_regex_does_not_freeze_the_runtime(jobs_runtime, ledger):
    """``(a|aa)+$`` nests no repeat in a repeat, so it is accepted; on lines of 'a's ending in
    '!' it backtracks exponentially. Each line gets its time budget and the API keeps answering."""
    sagemaker = jobs_runtime.client("sagemaker")
    script = "for _ in range(20):\n    print('a' * 60 + '!', flush=True)\nprint('done')\n"
    start_script_job(jobs_runtime, BUCKET, "backtracks", script, AlgorithmSpecification={
        "TrainingImage": PYTORCH_IMAGE,
        "TrainingInputMode": "File",
        "MetricDefinitions": [{"Name": "m", "Regex": "(a|aa)+$"}],
    })  # fmt: skip
    slowest = 0.0
    while sagemaker.describe_training_job(TrainingJobName="backtracks")["TrainingJobStatus"] == (
        "InProgress"
    ):
        asked = time.monotonic()
        sagemaker.list_training_jobs()
        slowest = max(slowest, time.monotonic() - asked)
        time.sleep(0.1)
    assert slowest < 1.0
    described = wait_for_status(sagemaker, "backtracks")
    assert described["TrainingJobStatus"] == "Completed"


def test_an_endless_line_is_logged_in_pieces(jobs_runtime, ledger):
    script = "import sys\nsys.stdout.write('x' * (20 * 1024 * 1024))\nsys.stdout.flush()\n"
    start_script_job(jobs_runtime, BUCKET, "endless-line", script)
    described = wait_for_status(jobs_runtime.client("sagemaker"), "endless-line", timeout=60)
    assert described["TrainingJobStatus"] == "Completed"
    messages = wait_for_log_line(jobs_runtime.client("logs"), "endless-line", "xxxx")
    assert max(len(m) for m in messages) <= 256 * 1024


def test_a_child_is_announced_before_its_first_line_is_read(tmp_path):
    """A runtime killed right after a job's first log line must find the job's tree on restart,
    so the identity it records has to exist before anyone can read that line."""
    events = []

    def started(identity: dict) -> None:
        time.sleep(0.5)  # a slow store write: the child has long printed by now
        events.append(("started", identity["tree_token"]))

    child = ManagedProcess(
        [sys.executable, "-c", "print('first line', flush=True)"],
        env=dict(os.environ),
        cwd=tmp_path,
        on_line=lambda text, _stream: events.append(("line", text)),
        on_started=started,
    )
    assert child.wait(timeout=30) == 0
    assert events == [("started", child.identity["tree_token"]), ("line", "first line")]


def test_a_child_that_cannot_be_recorded_is_killed(tmp_path, ledger):
    pids = []

    def unrecordable(identity: dict) -> None:
        pids.append(identity["pid"])
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space left"):
        ManagedProcess(
            [sys.executable, "-c", "import time; time.sleep(600)"],
            env=dict(os.environ),
            cwd=tmp_path,
            on_line=lambda text, _stream: None,
            on_started=unrecordable,
        )
    assert_ended(pids[0], ledger)


@pytest.mark.parametrize("how", ["shutdown", "kill -9 and restart"])
def test_the_runtime_going_away_takes_escaped_grandchildren_with_it(tmp_path, ledger, how):
    runtime = RuntimeProcess(tmp_path / "state").start()
    try:
        runtime.client("s3").create_bucket(Bucket=BUCKET)
        runtime.client("s3").put_object(Bucket=BUCKET, Key="data/train/x", Body=b"x")
        start_script_job(runtime, BUCKET, "left-behind", ESCAPING_GRANDCHILD + "time.sleep(600)\n")
        pid = escaped_pid(runtime, "left-behind")
        if how == "shutdown":
            runtime.stop()
        else:
            runtime.kill_hard()
            runtime.start()  # finds the tree by its token and kills it
        assert_ended(pid, ledger)
    finally:
        runtime.stop()
