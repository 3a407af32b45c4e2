"""The executor layer: what runs behind the API (working trees, child processes, log capture,
metric scraping). Available to backends as ``self.executor``; it never speaks the wire protocol.

- :meth:`Executor.training_run` gives a :class:`~.training_run.TrainingRun` for a training job.
- :meth:`Executor.start_process` starts any child (model servers, rule evaluators) in its own
  process group with every output line appended to a CloudWatch Logs stream.
- :func:`~.processes.kill_leftover_group` ends a child recorded by an earlier runtime.
- :func:`~.archives.safe_extract_tar` / :func:`~.archives.pack_directory` handle tar.gz safely.
"""

from collections.abc import Callable
from pathlib import Path

from local_sagemaker.executor.processes import ManagedProcess
from local_sagemaker.executor.training_run import TrainingRun


class Executor:
    """Process-level services shared by the SageMaker families."""

    def __init__(self, config, s3, logs):
        self.config = config
        self.s3 = s3
        self.logs = logs
        self.jobs_dir = Path(config.data_dir) / "jobs"

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
    ) -> ManagedProcess:
        """Start ``argv`` in its own process group; each stdout/stderr line goes to
        ``log_group``/``log_stream`` and then, if given, to ``on_line(text, "stdout"|"stderr")``."""
        self.logs.ensure_stream(log_group, log_stream)

        def forward(text: str, pipe: str) -> None:
            self.logs.append(log_group, log_stream, text)
            if on_line is not None:
                on_line(text, pipe)

        return ManagedProcess(argv, env, cwd, forward)
