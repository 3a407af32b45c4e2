"""The job tasks' trigger: follows one SageMaker job until it ends, in the triggerer.

A job task starts its job (`SageMakerLifecycleHook.start_job`) and defers to `SageMakerJobTrigger`,
so no worker slot is held while the job runs. The trigger polls the job's Describe* with
aiobotocore, writes the job's new CloudWatch log lines and its progress to the task log (Airflow 3
shows a deferred task's trigger log in the task log), stops the job when its time limit passes,
and fires once, when the job has ended, with the job's name and status; the task then reads the
job's final description and decides (`hooks.raise_unless_completed`).

The provider's `SageMakerTrigger` and `SageMakerTrainingPrintLogTrigger` do not fit: they count a
Stopped job as done, give up after `max_attempts` without stopping the job, and leave the job
running when a user marks the task failed. This trigger's `on_kill` stops it; a triggerer restart
(which does not call `on_kill`) leaves it running, and the new triggerer follows it again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from botocore.exceptions import ClientError

from sagemaker_lifecycle.hooks import JOB_KINDS, RUNNING_STATUSES, JobKind
from sagemaker_lifecycle.triggers import async_client, settle_after_deferral

# Stops asked for by `on_kill` that are still under way (the event loop keeps only weak
# references to tasks).
_PENDING_STOPS: set[asyncio.Task] = set()


class AsyncLogTail:
    """Follows every CloudWatch stream `<job>/...` of one job (one per host), yielding only new
    lines."""

    def __init__(self, logs_client, log_group: str, job_name: str):
        self.logs, self.group, self.prefix = logs_client, log_group, f"{job_name}/"
        self.tokens: dict[str, str | None] = {}

    async def new_lines(self) -> list[str]:
        try:
            response = await self.logs.describe_log_streams(
                logGroupName=self.group, logStreamNamePrefix=self.prefix
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ResourceNotFoundException":
                return []  # the job has not written its first line yet
            raise
        lines = []
        for stream in sorted(s["logStreamName"] for s in response["logStreams"]):
            lines += await self._read_stream(stream)
        return lines

    async def _read_stream(self, stream: str) -> list[str]:
        lines = []
        while True:
            request = {"logGroupName": self.group, "logStreamName": stream, "startFromHead": True}
            if self.tokens.get(stream):
                request["nextToken"] = self.tokens[stream]
            page = await self.logs.get_log_events(**request)
            lines += [event["message"].rstrip("\n") for event in page["events"]]
            if page.get("nextForwardToken") in (None, self.tokens.get(stream)):
                return lines
            self.tokens[stream] = page["nextForwardToken"]
            if not page["events"]:
                return lines


class SageMakerJobTrigger(BaseTrigger):
    """Fires `{"job_name", "status", "timed_out"}` once job `job_name` of `kind_name` has ended.

    :param kind_name: a key of `hooks.JOB_KINDS` (training, tuning, transform, processing).
    :param job_name: the job to follow (the one `start_job` started or adopted).
    :param poll_interval: seconds between Describe* calls.
    :param deadline: epoch seconds after which the job is stopped and the trigger fires with
        `timed_out` true; None for no limit. Absolute, so a restarted triggerer keeps it.
    """

    def __init__(
        self,
        *,
        kind_name: str,
        job_name: str,
        poll_interval: float,
        deadline: float | None,
        aws_conn_id: str | None,
        region_name: str | None = None,
    ):
        super().__init__()
        self.kind_name = kind_name
        self.job_name = job_name
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name

    @property
    def kind(self) -> JobKind:
        return JOB_KINDS[self.kind_name]

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "kind_name": self.kind_name,
                "job_name": self.job_name,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        kind = self.kind
        await settle_after_deferral()
        async with AsyncExitStack() as stack:
            sagemaker = await stack.enter_async_context(await self._client("sagemaker"))
            tail = None
            if kind.log_group:
                logs = await stack.enter_async_context(await self._client("logs"))
                tail = AsyncLogTail(logs, kind.log_group, self.job_name)
            describe = getattr(sagemaker, kind.operation("describe"))
            last_progress = None
            while True:
                description = await describe(**{kind.name_key: self.job_name})
                for line in await tail.new_lines() if tail else []:
                    self.log.info("[%s] %s", self.job_name, line)
                progress = _progress(kind, description)
                if progress != last_progress:
                    self.log.info("%s %s: %s", kind.noun, self.job_name, progress)
                    last_progress = progress
                status = description[kind.status_key]
                if status not in RUNNING_STATUSES:
                    yield self._event(status, timed_out=False)
                    return
                if self.deadline is not None and time.time() > self.deadline:
                    await self._stop(sagemaker)
                    yield self._event(status, timed_out=True)
                    return
                await asyncio.sleep(self.poll_interval)

    async def on_kill(self) -> None:
        """A user marked the deferred task failed or cleared it: stop the job it follows.

        The stop is shielded: Airflow 3.3's triggerer cancels a killed trigger again at every sync
        with its supervisor (about each second) until the trigger has ended, and a stop that
        takes longer (a new connection, a slow API) would otherwise be cut short.
        """
        stop = asyncio.ensure_future(self._stop_with_own_client())
        _PENDING_STOPS.add(stop)
        stop.add_done_callback(_PENDING_STOPS.discard)
        await asyncio.shield(stop)

    async def _stop_with_own_client(self) -> None:
        async with await self._client("sagemaker") as sagemaker:
            await self._stop(sagemaker)

    async def _stop(self, sagemaker) -> None:
        kind = self.kind
        try:
            await getattr(sagemaker, kind.operation("stop"))(**{kind.name_key: self.job_name})
            self.log.info("Asked SageMaker to stop %s %s", kind.noun, self.job_name)
        except ClientError as error:  # it ended meanwhile
            self.log.info("%s %s was not stopped: %s", kind.noun, self.job_name, error)

    def _event(self, status: str, timed_out: bool) -> TriggerEvent:
        return TriggerEvent({"job_name": self.job_name, "status": status, "timed_out": timed_out})

    async def _client(self, service: str):
        return await async_client(service, self.aws_conn_id, self.region_name)


def _progress(kind: JobKind, description: Mapping) -> str:
    """The job's status, with a tuning job's trial counters and a training job's secondary
    status (what SageMaker is doing: Downloading, Training, Uploading...)."""
    parts = [description[kind.status_key]]
    for key in ("SecondaryStatus", "TrainingJobStatusCounters"):
        if key in description:
            parts.append(f"{key} {description[key]}")
    return ", ".join(parts)
