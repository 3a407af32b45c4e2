"""SageMakerJobTrigger against the local runtime: it streams the job's log, fires when the job
ends, stops it past its deadline or when a user kills the task, and a triggerer restart (the
trigger cancelled, then rebuilt from its serialized form) leaves the job running and follows it
again."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
from runtime.runtime_support import BUCKET, start_script_job, wait_for_status
from runtime_access import aws_connection, client
from sagemaker_lifecycle.job_triggers import _PENDING_STOPS, SageMakerJobTrigger

pytestmark = pytest.mark.e2e
CONN_ID = "job_trigger_runtime"
QUICK_SCRIPT = "print('epoch 1 of 1', flush=True)\nprint('training script finished')\n"
SLOW_SCRIPT = "import time\nprint('started', flush=True)\ntime.sleep(120)\n"


@pytest.fixture(scope="module")
def sagemaker(local_runtime):
    s3 = client(local_runtime, "s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="data/train/one.txt", Body=b"1")  # the jobs' train channel
    return client(local_runtime, "sagemaker")


@pytest.fixture
def runtime(local_runtime, monkeypatch):
    """The runtime as the Airflow connection `CONN_ID` the triggers use."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(aws_connection(local_runtime)))
    return _Runtime(local_runtime)


class _Runtime:
    def __init__(self, url: str):
        self.url = url

    def client(self, service: str):
        return client(self.url, service)


def trigger_for(job_name: str, deadline: float | None = None) -> SageMakerJobTrigger:
    return SageMakerJobTrigger(
        kind_name="training", job_name=job_name, poll_interval=0.2, deadline=deadline,
        aws_conn_id=CONN_ID,
    )  # fmt: skip


async def first_event(trigger: SageMakerJobTrigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger ended without an event")


def test_the_trigger_writes_the_jobs_log_lines_and_fires_when_it_completes(
    runtime, sagemaker, caplog, capsys
):
    start_script_job(runtime, BUCKET, "trigger-quick", QUICK_SCRIPT)
    with caplog.at_level(logging.INFO):
        event = asyncio.run(asyncio.wait_for(first_event(trigger_for("trigger-quick")), 120))
    assert event == {"job_name": "trigger-quick", "status": "Completed", "timed_out": False}
    logged = caplog.text + capsys.readouterr().out  # Airflow's structlog writes to stdout
    assert "[trigger-quick] training script finished" in logged
    assert "training job trigger-quick: Completed, SecondaryStatus Completed" in logged


def test_a_job_past_its_deadline_is_stopped_and_the_trigger_says_so(runtime, sagemaker):
    start_script_job(runtime, BUCKET, "trigger-late", SLOW_SCRIPT)
    event = asyncio.run(first_event(trigger_for("trigger-late", deadline=time.time())))
    assert event["timed_out"] and event["status"] == "InProgress"
    assert wait_for_status(sagemaker, "trigger-late")["TrainingJobStatus"] == "Stopped"


def test_a_user_killing_the_deferred_task_stops_its_job(runtime, sagemaker):
    start_script_job(runtime, BUCKET, "trigger-killed", SLOW_SCRIPT)
    asyncio.run(trigger_for("trigger-killed").on_kill())
    status = sagemaker.describe_training_job(TrainingJobName="trigger-killed")["TrainingJobStatus"]
    assert status in ("Stopping", "Stopped")
    assert wait_for_status(sagemaker, "trigger-killed")["TrainingJobStatus"] == "Stopped"


def test_the_stop_survives_the_triggerers_repeated_cancellation_of_a_killed_trigger(
    runtime, sagemaker
):
    """Airflow 3.3 cancels a killed trigger again at each sync until it ends (seen through a
    running scheduler: an unshielded on_kill never reached StopTrainingJob)."""
    start_script_job(runtime, BUCKET, "trigger-killed-twice", SLOW_SCRIPT)

    async def killed_and_cancelled_again() -> None:
        killing = asyncio.ensure_future(trigger_for("trigger-killed-twice").on_kill())
        for _ in range(3):
            await asyncio.sleep(0.05)
            killing.cancel()
        await asyncio.gather(killing, return_exceptions=True)
        # The shielded stop goes on after on_kill was cancelled, while the loop runs.
        deadline = time.monotonic() + 60
        while _PENDING_STOPS and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    asyncio.run(killed_and_cancelled_again())
    assert wait_for_status(sagemaker, "trigger-killed-twice")["TrainingJobStatus"] == "Stopped"


def test_a_triggerer_restart_leaves_the_job_running_and_the_new_trigger_follows_it(
    runtime, sagemaker
):
    script = "import time\nprint('started', flush=True)\ntime.sleep(4)\nprint('done')\n"
    start_script_job(runtime, BUCKET, "trigger-restarted", script)
    trigger = trigger_for("trigger-restarted")

    async def cancelled_after_polls() -> None:
        # A triggerer that shuts down cancels its triggers' run(); it does not call on_kill.
        running = asyncio.ensure_future(first_event(trigger))
        await asyncio.sleep(1.5)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)

    asyncio.run(cancelled_after_polls())
    status = sagemaker.describe_training_job(TrainingJobName="trigger-restarted")
    assert status["TrainingJobStatus"] == "InProgress"
    classpath, kwargs = trigger.serialize()
    assert classpath == "sagemaker_lifecycle.job_triggers.SageMakerJobTrigger"
    event = asyncio.run(asyncio.wait_for(first_event(SageMakerJobTrigger(**kwargs)), 120))
    assert event["status"] == "Completed"
