"""The executor layer: what runs behind the API (working trees, child processes, log capture,
metric scraping). Available to backends as ``self.executor``; it never speaks the wire protocol.

- :meth:`Executor.training_run` gives a :class:`~.training_run.TrainingRun` for a training job.
- :meth:`Executor.start_process` starts any child (model servers, rule evaluators) in its own
  process group with every output line appended to a CloudWatch Logs stream; given a
  :class:`~.sandbox.Sandbox`, a root runtime runs it as a job user (:mod:`.sandbox`).
- :func:`~.processes.kill_leftover_group` ends a child recorded by an earlier runtime.
- :func:`~.archives.safe_extract_tar` / :func:`~.archives.pack_directory` handle tar.gz safely.
"""

import threading
from collections.abc import Callable
from pathlib import Path

from local_sagemaker.errors import ResourceLimitExceeded
from local_sagemaker.executor import sandbox as sandboxes
from local_sagemaker.executor.processes import ManagedProcess
from local_sagemaker.executor.training_run import TrainingRun


class JobSlots:
    """The cap on jobs that run user code at once (training and processing jobs)."""

    def __init__(self, limit: int):
        self.limit = limit
        self._lock = threading.Lock()
        self._holders: set[str] = set()

    def claim(self, job_name: str) -> None:
        """Take a slot for ``job_name``; raises ResourceLimitExceeded when none is free."""
        with self._lock:
            if len(self._holders) >= self.limit:
                raise ResourceLimitExceeded(
                    f"The local runtime runs at most {self.limit} training and processing jobs "
                    f"at once and {len(self._holders)} are running; retry when one ends "
                    "(the cap is LOCAL_SAGEMAKER_MAX_CONCURRENT_JOBS)."
                )
            self._holders.add(job_name)

    def release(self, job_name: str) -> None:
        with self._lock:
            self._holders.discard(job_name)


class Executor:
    """Process-level services shared by the SageMaker families."""

    def __init__(self, config, s3, logs):
        self.config = config
        self.s3 = s3
        self.logs = logs
        self.jobs_dir = Path(config.data_dir) / "jobs"
        self.job_slots = JobSlots(config.max_concurrent_jobs)
        if sandboxes.sandboxing():
            sandboxes.protect_data_dir(config.data_dir)
            sandboxes.job_users()  # a bad LOCAL_SAGEMAKER_JOB_UIDS stops the start, not a job

    def python_for_image(self, image: str) -> str:
        """The interpreter standing in for a container image (RuntimeConfig.python_for_image)."""
        return self.config.python_for_image(image)

    def training_run(self, job: dict) -> TrainingRun:
        """A run of ``job`` (DescribeTrainingJob-shaped) in ``<data_dir>/jobs/<job name>/``."""
        return TrainingRun(job, self)

    def start_process(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: Path,
        log_group: str,
        log_stream: str,
        on_line: Callable[[str, str], None] | None = None,
        sandbox: sandboxes.Sandbox | None = None,
        on_started: Callable[[dict], None] | None = None,
    ) -> ManagedProcess:
        """Start ``argv`` in its own process group; each stdout/stderr line goes to
        ``log_group``/``log_stream`` and then, if given, to ``on_line(text, "stdout"|"stderr")``.
        Jobs running user code pass their ``sandbox``; ``on_started`` sees the child's identity
        before its first line is read (see :class:`ManagedProcess`)."""
        self.logs.ensure_stream(log_group, log_stream)

        def forward(text: str, pipe: str) -> None:
            self.logs.append(log_group, log_stream, text)
            if on_line is not None:
                on_line(text, pipe)

        return ManagedProcess(argv, env, cwd, forward, sandbox, on_started)
