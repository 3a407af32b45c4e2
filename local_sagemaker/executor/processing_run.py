"""One processing job's mechanics: its /opt/ml stand-in, inputs, container process, outputs.

Container paths. A processing container finds its inputs and writes its outputs under
``/opt/ml/processing/...`` and may leave a note in ``/opt/ml/output/message``. Each job gets a tree
``<data_dir>/processing-jobs/<job>/`` standing in for ``/opt/ml``. A root runtime's job sees that
tree at ``/opt/ml`` itself (``executor/sandbox.py``). Every ``/opt/ml`` path in
ContainerEntrypoint, ContainerArguments and Environment values is also rewritten into the tree
(the processing analogue of the training executor's ``SM_*`` variables), for a runtime that is not
root; there, paths a script only knows as its own defaults cannot be rewritten: pass them as
arguments. The tree also holds ``config/processingjobconfig.json`` (the job's description) and
``config/resourceconfig.json``, as SageMaker provides them.

The container runs as one child process in its own process group (the image's Python stands in
for ``python``/``python3``, as for training), its output streamed to CloudWatch Logs
``/aws/sagemaker/ProcessingJobs``, stream ``<job>/algo-1-<epoch>``.
"""

import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from local_sagemaker.executor.sandbox import job_sandbox
from local_sagemaker.executor.toolkit import inherited_environment
from local_sagemaker.s3 import S3Error

LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
HOST = "algo-1"
# "/opt/ml" as a whole path component, wherever it starts a path inside a string
# ("--input=/opt/ml/processing/input" too, "/opt/mlx" and "/x/opt/ml" not).
CONTAINER_ROOT_PATTERN = re.compile(r"(?<![\w./-])/opt/ml(?![\w.-])")
EXIT_MESSAGE_LIMIT = 1024
POLL_SECONDS = 0.5


class ProcessingJobError(Exception):
    """The job cannot go on; the message is its FailureReason (``ClientError: ...``)."""


def to_local_paths(text: str, root: Path) -> str:
    """``text`` with every ``/opt/ml`` path moved under ``root`` (the job's /opt/ml stand-in)."""
    return CONTAINER_ROOT_PATTERN.sub(lambda _: str(root), text)


def local_path(root: Path, container_path: str) -> Path:
    """Where the container path ``/opt/ml/...`` (already checked to be safe) is in ``root``."""
    return root / PurePosixPath(container_path).relative_to("/opt/ml")


class ProcessingRun:
    """A run of ``job`` (DescribeProcessingJob-shaped) in ``<data_dir>/processing-jobs/<job>/``.

    Call in order: :meth:`prepare`, :meth:`download_inputs`, :meth:`command`, :meth:`launch`,
    :meth:`wait`, then :meth:`upload_outputs` for a process that exited 0; :meth:`exit_message`
    and :meth:`remove_tree` at the end. ``stop`` ends the process group at any point."""

    def __init__(self, job: dict, executor):
        self.job = job
        self.executor = executor
        self.config = executor.config
        self.root = Path(self.config.data_dir) / "processing-jobs" / job["ProcessingJobName"]
        self.process = None

    def prepare(self) -> None:
        """A fresh /opt/ml stand-in with the config files SageMaker writes for the container."""
        if self.root.exists():
            shutil.rmtree(self.root)
        config_dir = self.root / "config"
        for folder in (config_dir, self.root / "output", self.root / "processing"):
            folder.mkdir(parents=True)
        (config_dir / "processingjobconfig.json").write_text(json.dumps(self.job, indent=2))
        resource = {"current_host": HOST, "hosts": [HOST]}
        (config_dir / "resourceconfig.json").write_text(json.dumps(resource, indent=2))
        for output in self._outputs():
            folder = local_path(self.root, output["S3Output"]["LocalPath"])
            folder.mkdir(parents=True, exist_ok=True)

    def download_inputs(self) -> None:
        for item in self.job.get("ProcessingInputs", []):
            source = item["S3Input"]
            destination = local_path(self.root, source["LocalPath"])
            destination.mkdir(parents=True, exist_ok=True)
            try:
                self.executor.s3.download(source["S3Uri"], destination)
            except S3Error as error:
                raise ProcessingJobError(
                    f"ClientError: ProcessingInput {item['InputName']!r}: {error}"
                ) from error

    def command(self) -> tuple[list[str], dict[str, str]]:
        """The child's argv and environment, container paths rewritten into the tree."""
        app = self.job["AppSpecification"]
        python = self.config.python_for_image(app["ImageUri"])
        entrypoint = list(app["ContainerEntrypoint"])
        if entrypoint[0] in ("python", "python3"):
            if not Path(python).exists():
                raise ProcessingJobError(
                    f"ClientError: no Python for image {app['ImageUri']!r}: {python} does not "
                    "exist (set LOCAL_SAGEMAKER_CONTAINER_PYTHON or LOCAL_SAGEMAKER_IMAGE_PYTHONS)"
                )
            entrypoint[0] = python
        command = entrypoint + app.get("ContainerArguments", [])
        argv = [to_local_paths(part, self.root) for part in command]
        env = inherited_environment(python)
        # Lines reach the log as they are printed, not when a pipe buffer fills.
        env["PYTHONUNBUFFERED"] = "1"
        env.update(
            {k: to_local_paths(v, self.root) for k, v in self.job.get("Environment", {}).items()}
        )
        return argv, env

    def launch(
        self, argv: list[str], env: dict[str, str], on_started: Callable[[dict], None]
    ) -> None:
        """Start the container process (:meth:`command`); ``on_started`` gets its identity (for
        a restarted runtime) before its output is read."""
        stream = f"{self.job['ProcessingJobName']}/{HOST}-{int(time.time())}"
        python = self.config.python_for_image(self.job["AppSpecification"]["ImageUri"])
        self.process = self.executor.start_process(
            argv,
            env,
            self.root,
            LOG_GROUP,
            stream,
            sandbox=job_sandbox(self.root, python),
            on_started=on_started,
        )

    def wait(self, max_runtime: int | None, stop_requested) -> int | None:
        """The exit code; None when ``max_runtime`` seconds ran out. ``stop_requested`` (an
        Event) or the deadline ends the process group (SIGTERM, SIGKILL after the grace)."""
        deadline = None if max_runtime is None else time.monotonic() + max_runtime
        while True:
            code = self.process.wait(timeout=POLL_SECONDS)
            if code is not None:
                return code
            if stop_requested.is_set():
                return self.process.stop(self.config.stop_grace_seconds)
            if deadline is not None and time.monotonic() > deadline:
                self.process.stop(self.config.stop_grace_seconds)
                return None

    def stop(self, grace_seconds: float) -> None:
        if self.process is not None:
            self.process.stop(grace_seconds)

    def stderr_tail(self) -> str:
        return "\n".join(self.process.stderr_tail)

    def upload_outputs(self) -> None:
        for output in self._outputs():
            target = output["S3Output"]
            try:
                self.executor.s3.upload_directory(
                    local_path(self.root, target["LocalPath"]), target["S3Uri"]
                )
            except S3Error as error:
                raise ProcessingJobError(
                    f"ClientError: ProcessingOutput {output['OutputName']!r}: {error}"
                ) from error

    def exit_message(self) -> str | None:
        """The first 1 KB of ``/opt/ml/output/message``, or None when the job wrote none."""
        message = self.root / "output" / "message"
        if not message.is_file():
            return None
        return message.read_bytes()[:EXIT_MESSAGE_LIMIT].decode("utf-8", errors="replace")

    def remove_tree(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _outputs(self) -> list[dict]:
        return self.job.get("ProcessingOutputConfig", {}).get("Outputs", [])
