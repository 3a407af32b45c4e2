"""The pipeline's SageMakerLifecycleHook against real jobs of the runtime: a job that fails on its
script, one that is stopped, one past its time limit, the clean-up stopping only the running jobs
of its own run, and the job's own log lines reaching the task log."""

import sys

import pytest
from runtime_support import BUCKET, REPO_ROOT, client_environment, start_script_job, wait_for_status

# Airflow puts plugins/ on sys.path; the pipeline's package is imported the same way here.
if str(REPO_ROOT / "plugins") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "plugins"))
from sagemaker_lifecycle.hooks import (
    DeterministicJobError,
    SageMakerJobError,
    SageMakerLifecycleHook,
)

pytestmark = pytest.mark.e2e
HOLDING = "import time\nprint('holding', flush=True)\ntime.sleep(600)\n"


@pytest.fixture
def hook(runtime, monkeypatch):
    """The hook as a task builds it, its boto3 clients pointed at the runtime."""
    for name, value in client_environment(runtime.url).items():
        monkeypatch.setenv(name, value)
    return SageMakerLifecycleHook(aws_conn_id=None, region_name="us-east-1")


def wait_until_in_progress(runtime, name: str) -> None:
    wait_for_status(runtime.client("sagemaker"), name, statuses=("InProgress",))


def test_a_script_error_fails_the_wait_with_the_jobs_reason_and_is_not_retried(
    runtime, hook, capsys
):
    script = "print('line from the job', flush=True)\nraise SystemExit('the script gave up')\n"
    start_script_job(runtime, BUCKET, "hook-fails", script)
    with pytest.raises(DeterministicJobError) as failure:
        hook.wait_for_job("training", "hook-fails", interval=0.2, timeout=120)
    assert "training job hook-fails ended Failed: AlgorithmError" in str(failure.value)
    # The task log (Airflow's logging writes it to stdout here) shows the job's own lines, as the
    # hook follows its CloudWatch stream.
    assert "[hook-fails] line from the job" in capsys.readouterr().out


def test_a_stopped_job_fails_the_wait_naming_its_status(runtime, hook):
    start_script_job(runtime, BUCKET, "hook-stopped", HOLDING)
    wait_until_in_progress(runtime, "hook-stopped")
    runtime.client("sagemaker").stop_training_job(TrainingJobName="hook-stopped")
    with pytest.raises(SageMakerJobError, match="training job hook-stopped ended Stopped"):
        hook.wait_for_job("training", "hook-stopped", interval=0.2, timeout=120)


def test_a_job_past_the_waits_limit_is_stopped(runtime, hook):
    start_script_job(runtime, BUCKET, "hook-overrun", HOLDING)
    wait_until_in_progress(runtime, "hook-overrun")
    with pytest.raises(SageMakerJobError, match="still InProgress after 1 s; stopped it"):
        hook.wait_for_job("training", "hook-overrun", interval=0.2, timeout=1)
    stopped = wait_for_status(runtime.client("sagemaker"), "hook-overrun")
    assert stopped["TrainingJobStatus"] == "Stopped"


def test_the_clean_up_stops_the_runs_running_jobs_and_no_other(runtime, hook):
    ours, theirs = "dogbreed-train-261101-aaaa1111", "dogbreed-train-261108-bbbb2222"
    for name in (ours, theirs):
        start_script_job(runtime, BUCKET, name, HOLDING)
        wait_until_in_progress(runtime, name)
    sagemaker = runtime.client("sagemaker")
    try:
        assert hook.stop_running_jobs("training", "261101-aaaa1111") == [ours]
        assert wait_for_status(sagemaker, ours)["TrainingJobStatus"] == "Stopped"
        status = sagemaker.describe_training_job(TrainingJobName=theirs)["TrainingJobStatus"]
        assert status == "InProgress"
    finally:
        sagemaker.stop_training_job(TrainingJobName=theirs)
