"""What every job family shares: the record shape, status changes, unique-name creation, restart
recovery, shutdown and paginated listing. Training, processing, transform and tuning jobs are
each one :class:`JobFamily` subclass.

The record of a job (``store`` kind :attr:`JobSpec.kind`, one per name)::

    {"description": {...what Describe<Job> returns, less derived members...},
     "processes": [identity, ...],   # the job's child process groups (ManagedProcess.identity)
     ...members the family adds (training's metric series, tuning's trials)}

Statuses are SageMaker's, declared once: :data:`ACTIVE_STATUSES` run, :data:`TERMINAL_STATUSES`
have ended. A job running when the runtime stops is Failed (``shutdown``), a job found running
at start-up (the runtime was killed) is Failed too and its recorded processes are killed
(``recover``); both reasons name what happened (:func:`interruption_reason`).

A new job family is one small file (the sketch of a family whose work is one thread)::

    class CompilationJobs(JobFamily):
        spec = JobSpec("CompilationJob", extra_summary_keys=("FailureReason",))

        def create_compilation_job(self, request):
            description = self.new_description(request, DESCRIBE_MEMBERS)
            running = self.create({"description": description})
            self.start_thread(self._compile, description["CompilationJobName"], running)
            return {"CompilationJobArn": description["CompilationJobArn"]}

        def describe_compilation_job(self, request):
            return self.description(request["CompilationJobName"])

        def list_compilation_jobs(self, request):
            return self.list_jobs(request)

        def _compile(self, name, running):
            ...  # do the work (running.work: what shutdown stops), watch running.stop_requested
            self.done(name)
            self.finish(name, "Completed")

and one row per operation in :class:`~local_sagemaker.sagemaker.backend.SageMakerBackend`'s
dispatch table. A family that runs nothing (model package groups and versions) is a plain object
built from the same services, its records listed through
:func:`~local_sagemaker.sagemaker.resources.list_response`, as hosting's models are.
"""

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from local_sagemaker.errors import AwsError, ResourceInUse, ValidationException
from local_sagemaker.executor.processes import kill_leftover_group
from local_sagemaker.sagemaker.resources import list_response

log = logging.getLogger(__name__)

ACTIVE_STATUSES = ("InProgress", "Stopping")
TERMINAL_STATUSES = ("Completed", "Failed", "Stopped")


def interruption_reason(event: str, subject: str = "job") -> str:
    """FailureReason of work the runtime's own end interrupted (``event``: "restarted" or
    "was shut down")."""
    return (
        f"InternalServerError: the local SageMaker runtime {event} while the {subject} was running"
    )


@dataclass(frozen=True)
class JobSpec:
    """How one job family is stored and named, all from its member prefix as SageMaker spells
    it: ``TrainingJob`` gives TrainingJobName/Arn/Status, TrainingEndTime, ListTrainingJobs,
    store kind and ARN type ``training-job(s)``."""

    prefix: str
    extra_summary_keys: tuple[str, ...] = ()  # List* summary members besides the shared ones
    subject: str = "job"  # what interruption reasons call one

    @property
    def name_member(self) -> str:
        return f"{self.prefix}Name"

    @property
    def arn_member(self) -> str:
        return f"{self.prefix}Arn"

    @property
    def status_member(self) -> str:
        return f"{self.prefix}Status"

    @property
    def end_time_member(self) -> str:
        return f"{self.prefix.removesuffix('Job')}EndTime"

    @property
    def list_operation(self) -> str:
        return f"List{self.prefix}s"

    @property
    def arn_type(self) -> str:
        return "-".join(word.lower() for word in re.findall(r"[A-Z][a-z]*", self.prefix))

    @property
    def kind(self) -> str:
        """The store kind (and folder name) of the records."""
        return f"{self.arn_type}s"

    @property
    def label(self) -> str:
        """What messages call one: ``training job``."""
        return self.arn_type.replace("-", " ")

    @property
    def summary_keys(self) -> tuple[str, ...]:
        """The List* summary members, the name first."""
        shared = (self.name_member, self.arn_member, self.status_member, "CreationTime")
        return (*shared, self.end_time_member, "LastModifiedTime", *self.extra_summary_keys)


class RunningJob:
    """In-memory handle of a job whose work is alive: its stop request, and ``work`` (anything
    with ``stop(grace_seconds)``, set once the work has started) to end it at shutdown."""

    def __init__(self):
        self.stop_requested = threading.Event()
        self.stop_status = "Stopped"
        self.work = None
        self.holds_job_slot = False

    def halt(self) -> None:
        """End the work now (the runtime is going away)."""
        self.stop_requested.set()
        if self.work is not None:
            self.work.stop(grace_seconds=0)


class JobFamily:
    """The shared life cycle of one job family (see the module docstring). Subclasses set
    :attr:`spec` and may override :meth:`not_found`, :meth:`name_in_use` and :meth:`ending`."""

    spec: ClassVar[JobSpec]

    def __init__(self, services):
        self.config = services.config
        self.store = services.store
        self.s3 = services.s3
        self.logs = services.logs
        self.executor = services.executor
        self.lock = threading.RLock()
        self.running: dict[str, RunningJob] = {}

    # -- what subclasses may refine ------------------------------------------------------------

    def not_found(self, name: str) -> AwsError:
        """The error for a job that does not exist."""
        return ValidationException("Requested resource not found.")

    def name_in_use(self, name: str) -> AwsError:
        """The error for a Create whose name is taken."""
        return ResourceInUse(
            "Job name must be unique within an AWS account and region, and a job with this name "
            f"already exists ({self.arn(name)})"
        )

    def ending(self, description: dict, status: str, now: float) -> None:
        """Members a family adds to a job reaching the terminal ``status`` (before they are
        stored)."""

    # -- records -------------------------------------------------------------------------------

    def arn(self, name: str) -> str:
        return self.config.arn(self.spec.arn_type, name)

    def record(self, name: str) -> dict:
        """A copy of the job's record; ``not_found`` when there is none."""
        record = self.store.get(self.spec.kind, name)
        if record is None:
            raise self.not_found(name)
        return record

    def description(self, name: str) -> dict:
        return self.record(name)["description"]

    def status(self, name: str) -> str:
        return self.description(name)[self.spec.status_member]

    def new_description(self, request: dict, members) -> dict:
        """The request's ``members`` plus name, ARN, InProgress and the creation times."""
        now = time.time()
        description = {key: value for key, value in request.items() if key in members}
        name = request[self.spec.name_member]
        description.update(
            {
                self.spec.name_member: name,
                self.spec.arn_member: self.arn(name),
                self.spec.status_member: "InProgress",
                "CreationTime": now,
                "LastModifiedTime": now,
            }
        )
        return description

    def change(self, name: str, change: Callable[[dict], None]) -> dict:
        """Apply ``change(record)`` to the stored record under the family lock; returns it."""
        with self.lock:
            record = self.record(name)
            change(record)
            self.store.put(self.spec.kind, name, record)
            return record

    def update(self, name: str, **members) -> None:
        """Set description members (and LastModifiedTime)."""
        self.change(
            name, lambda record: record["description"].update(members, LastModifiedTime=time.time())
        )

    def record_processes(self, name: str, identities: list[dict]) -> None:
        """Remember the job's child process groups, so a restarted runtime can kill them."""
        self.change(name, lambda record: record.update(processes=identities))

    def finish(self, name: str, status: str, **members) -> None:
        """Move the job to the terminal ``status``; a job that already ended keeps its outcome."""
        ended_before = []

        def change(record):
            description = record["description"]
            if description[self.spec.status_member] in TERMINAL_STATUSES:
                ended_before.append(description[self.spec.status_member])
                return
            now = time.time()
            self.ending(description, status, now)
            description.update(members)
            description.update(
                {
                    self.spec.status_member: status,
                    self.spec.end_time_member: now,
                    "LastModifiedTime": now,
                }
            )

        self.change(name, change)
        if not ended_before:
            log.info("%s %s: %s", self.spec.prefix, name, status)

    def request_stop(self, name: str) -> None:
        """StopX: InProgress -> Stopping (the job's work then ends it Stopped); a Stopping job
        is left as it is; a job in any other status is refused."""
        with self.lock:
            status = self.status(name)
            running = self.running.get(name)
            if status == "Stopping":
                return
            if status != "InProgress" or running is None:
                raise ValidationException(
                    f"The request was rejected because the {self.spec.label} is in status {status}."
                )
            self.update(name, **{self.spec.status_member: "Stopping"})
            running.stop_requested.set()

    # -- creation ------------------------------------------------------------------------------

    def create(self, record: dict, claim_slot: bool = False) -> RunningJob:
        """Store a new job's record (ResourceInUse when the name is taken) and return its
        :class:`RunningJob`. ``claim_slot``: the job runs user code and takes one of the
        executor's job slots until :meth:`done`."""
        name = record["description"][self.spec.name_member]
        with self.lock:
            if self.store.get(self.spec.kind, name) is not None:
                raise self.name_in_use(name)
            if claim_slot:
                self.executor.job_slots.claim(name)
            self.store.put(self.spec.kind, name, {"processes": [], **record})
            running = self.running[name] = RunningJob()
            running.holds_job_slot = claim_slot
        log.info("%s %s created", self.spec.prefix, name)
        return running

    def start_thread(self, target: Callable, name: str, running: RunningJob) -> None:
        """Run ``target(name, running)`` in the job's own daemon thread."""
        threading.Thread(
            target=target, args=(name, running), daemon=True, name=f"{self.spec.kind}-{name}"
        ).start()

    def done(self, name: str) -> None:
        """The job's work has ended: forget its handle and free its job slot."""
        running = self.running.pop(name, None)
        if running is not None and running.holds_job_slot:
            self.executor.job_slots.release(name)

    # -- listing -------------------------------------------------------------------------------

    def summaries_source(self) -> list[dict]:
        """What the List* summaries are taken from (descriptions; tuning adds counters)."""
        return [record["description"] for record in self.store.list(self.spec.kind)]

    def list_jobs(self, request: dict) -> dict:
        return list_response(
            self.summaries_source(),
            request,
            self.spec.list_operation,
            self.spec.summary_keys,
            status_key=self.spec.status_member,
        )

    # -- the runtime's own start and end -------------------------------------------------------

    def fail_interrupted(self, name: str, reason: str) -> None:
        """Record a job the runtime's end interrupted as Failed."""
        self.finish(name, "Failed", FailureReason=reason)

    def recover(self) -> None:
        """At start-up: fail the jobs an earlier runtime left running and kill their processes."""
        for record in self.store.list(self.spec.kind):
            description = record["description"]
            if description[self.spec.status_member] not in ACTIVE_STATUSES:
                continue
            for identity in record.get("processes", []):
                if kill_leftover_group(identity):
                    log.info("killed the leftover process group %s", identity["pid"])
            name = description[self.spec.name_member]
            self.fail_interrupted(name, interruption_reason("restarted", self.spec.subject))
            log.warning("%s %s failed: runtime restarted", self.spec.prefix, name)

    def shutdown(self) -> None:
        """Fail running jobs (the runtime is going away) and end their work. The Failed status
        is recorded before the work ends, so a job's thread cannot report the kill as its
        outcome."""
        for name, running in list(self.running.items()):
            self.fail_interrupted(name, interruption_reason("was shut down", self.spec.subject))
            running.halt()
