"""The pipeline's hook against real jobs of the runtime: a job that fails on its script and one
that is stopped fail their task (how a job's task ends once its trigger fired), and the clean-up
stops only the running jobs of its own run. The trigger's own behaviour (log lines, deadlines,
kills) is tested in tests/pipeline/test_job_triggers.py."""

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
    raise_unless_completed,
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


def test_a_script_error_fails_the_task_with_the_jobs_reason_and_is_not_retried(runtime):
    script = "print('line from the job', flush=True)\nraise SystemExit('the script gave up')\n"
    start_script_job(runtime, BUCKET, "hook-fails", script)
    ended = wait_for_status(runtime.client("sagemaker"), "hook-fails", timeout=120)
    with pytest.raises(DeterministicJobError) as failure:
        raise_unless_completed("training", ended)
    assert "training job hook-fails ended Failed: AlgorithmError" in str(failure.value)


def test_a_stopped_job_fails_the_task_naming_its_status(runtime):
    start_script_job(runtime, BUCKET, "hook-stopped", HOLDING)
    wait_until_in_progress(runtime, "hook-stopped")
    runtime.client("sagemaker").stop_training_job(TrainingJobName="hook-stopped")
    ended = wait_for_status(runtime.client("sagemaker"), "hook-stopped", timeout=120)
    with pytest.raises(SageMakerJobError, match="training job hook-stopped ended Stopped"):
        raise_unless_completed("training", ended)


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
