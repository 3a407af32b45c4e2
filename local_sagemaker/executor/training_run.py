"""The mechanics of one training job: its working tree, inputs, processes and outputs.

:class:`TrainingRun` knows nothing of statuses or the API; the training family
(:mod:`local_sagemaker.sagemaker.training`) drives it step by step and records the statuses.
Steps raise :class:`TrainingSetupError` with the FailureReason text when the job cannot run.
"""

import logging
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path

from local_sagemaker.executor import toolkit
from local_sagemaker.executor.archives import UnsafeArchiveError, pack_directory, safe_extract_tar
from local_sagemaker.executor.processes import ManagedProcess, each_started
from local_sagemaker.executor.requirements_check import RequirementsError, check_source_dir
from local_sagemaker.executor.sandbox import job_sandbox
from local_sagemaker.executor.workspace import HostTree, TrainingWorkspace
from local_sagemaker.s3 import S3Error, parse_s3_uri

log = logging.getLogger(__name__)
TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
SMDEBUG_END_MARKER = "training_job_end.ts"


class TrainingSetupError(Exception):
    """The job cannot run; the message is the FailureReason (``ClientError: ...``)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(directory).as_posix(): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in directory.rglob("*")
        if p.is_file()
    }


class TrainingRun:
    """One run of a training job described by ``job`` (the DescribeTrainingJob-shaped record)."""

    def __init__(self, job: dict, executor):
        self.job = job
        self.executor = executor
        self.config = executor.config
        self.s3 = executor.s3
        instance_count = job["ResourceConfig"].get("InstanceCount", 1)
        self.workspace = TrainingWorkspace(
            executor.jobs_dir, job["TrainingJobName"], instance_count
        )
        self.processes: dict[str, ManagedProcess] = {}
        self._checkpoint_state: dict[str, tuple[int, int]] = {}
        self.decoded_hyperparameters = toolkit.decode_hyperparameters(
            job.get("HyperParameters", {})
        )

    @property
    def paths(self):
        return self.workspace.paths

    @property
    def image(self) -> str:
        return self.job["AlgorithmSpecification"].get("TrainingImage", "")

    # -- preparation ---------------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the tree and write the input/config files of every host."""
        self.workspace.create()
        hosts = [tree.host for tree in self.workspace.hosts]
        for tree in self.workspace.hosts:
            tree.write_config("hyperparameters.json", self.job.get("HyperParameters", {}))
            tree.write_config("inputdataconfig.json", toolkit.input_data_config(self.job))
            tree.write_config(
                "resourceconfig.json", toolkit.resource_config(self.job, tree.host, hosts)
            )
            for name, content in self._debugger_configs(tree).items():
                tree.write_config(name, content)

    def _debugger_configs(self, tree: HostTree) -> dict[str, dict]:
        """The Debugger/profiler/TensorBoard/checkpoint config files the request asks for (1.5)."""
        configs = {}
        hook = self.job.get("DebugHookConfig")
        if hook:
            configs["debughookconfig.json"] = {
                "LocalPath": str(self.paths.debug_output),
                "S3OutputPath": hook["S3OutputPath"],
                "HookParameters": hook.get("HookParameters", {}),
                "CollectionConfigurations": hook.get("CollectionConfigurations", []),
            }
        profiler = self.job.get("ProfilerConfig")
        if profiler and not profiler.get("DisableProfiler", False):
            configs["profilerconfig.json"] = {
                "ProfilingIntervalInMilliseconds": profiler.get(
                    "ProfilingIntervalInMilliseconds", 500
                ),
                "ProfilingParameters": {
                    **profiler.get("ProfilingParameters", {}),
                    "LocalPath": str(self.paths.profiler_output),
                },
            }
        if self.job.get("TensorBoardOutputConfig"):
            configs["tensorboardoutputconfig.json"] = {
                "LocalPath": str(self.paths.tensorboard_output)
            }
        if self.job.get("CheckpointConfig"):
            configs["checkpointconfig.json"] = {"LocalPath": str(self._checkpoint_dir(tree))}
        return configs

    def _checkpoint_dir(self, tree: HostTree) -> Path:
        local_path = self.job.get("CheckpointConfig", {}).get("LocalPath", "/opt/ml/checkpoints")
        try:
            return tree.container_path(local_path)
        except ValueError as error:
            raise TrainingSetupError(f"ClientError: CheckpointConfig.LocalPath: {error}") from error

    def _config_env(self, tree: HostTree) -> dict[str, str]:
        """Environment variables pointing smdebug at this tree's config files."""
        env = {"SMDEBUG_CONFIG_FILE_PATH": str(tree.config_dir / "debughookconfig.json")}
        env["SMPROFILER_CONFIG_PATH"] = str(tree.config_dir / "profilerconfig.json")
        return env

    # -- inputs --------------------------------------------------------------------------------

    def download_inputs(self) -> None:
        """Channels, the script-mode source dir and existing checkpoints, into every host's tree."""
        for channel in self.job.get("InputDataConfig", []):
            self._download_channel(channel)
        self._install_source_dir()
        if self.job.get("CheckpointConfig"):
            self._download_checkpoints()

    def _download_channel(self, channel: dict) -> None:
        name = channel["ChannelName"]
        source = channel["DataSource"].get("S3DataSource")
        if source is None:
            raise TrainingSetupError(
                f"ClientError: channel {name!r}: the local runtime supports S3DataSource only"
            )
        if source["S3DataType"] != "S3Prefix":
            raise TrainingSetupError(
                f"ClientError: channel {name!r}: S3DataType {source['S3DataType']} is not "
                "supported by the local runtime (use S3Prefix)"
            )
        try:
            self.s3.download(source["S3Uri"], self.workspace.download_dir(name))
        except S3Error as error:
            raise TrainingSetupError(f"ClientError: channel {name!r}: {error}") from error
        sharded = source.get("S3DataDistributionType") == "ShardedByS3Key"
        self.workspace.link_channel(name, sharded)

    def _install_source_dir(self) -> None:
        """Extract ``sagemaker_submit_directory`` (S3 tar.gz, local tar.gz or folder) into code/."""
        submit = self.decoded_hyperparameters.get("sagemaker_submit_directory")
        if not submit:
            return
        archive = self.workspace.job_dir / "downloads" / "sourcedir.tar.gz"
        try:
            if submit.startswith("s3://"):
                archive.parent.mkdir(parents=True, exist_ok=True)
                archive.write_bytes(self.s3.read(*parse_s3_uri(submit)))
            else:
                local = Path(submit.removeprefix("file://"))
                if local.is_dir():
                    for tree in self.workspace.hosts:
                        shutil.copytree(local, tree.code_dir, dirs_exist_ok=True)
                    return
                archive = local
            for tree in self.workspace.hosts:
                safe_extract_tar(archive, tree.code_dir)
        except (S3Error, UnsafeArchiveError, OSError) as error:
            raise TrainingSetupError(
                f"ClientError: sagemaker_submit_directory {submit!r}: {error}"
            ) from error

    def _download_checkpoints(self) -> None:
        bucket, prefix = parse_s3_uri(self.job["CheckpointConfig"]["S3Uri"].rstrip("/") + "/")
        try:
            keys = self.s3.list_keys(bucket, prefix)
        except S3Error as error:
            raise TrainingSetupError(f"ClientError: CheckpointConfig.S3Uri: {error}") from error
        if keys:
            for tree in self.workspace.hosts:
                self.s3.download(f"s3://{bucket}/{prefix}", self._checkpoint_dir(tree))
        self._checkpoint_state = _snapshot(self._checkpoint_dir(self.workspace.master))

    # -- processes -----------------------------------------------------------------------------

    def command(self, tree: HostTree) -> list[str]:
        """The argv of the user's code: script mode, or ContainerEntrypoint + ContainerArguments."""
        python = self.config.python_for_image(
            self.job["AlgorithmSpecification"].get("TrainingImage", "")
        )
        if not Path(python).exists():
            raise TrainingSetupError(
                f"ClientError: no Python for image "
                f"{self.job['AlgorithmSpecification'].get('TrainingImage')!r}: {python} does not "
                "exist (set LOCAL_SAGEMAKER_CONTAINER_PYTHON or LOCAL_SAGEMAKER_IMAGE_PYTHONS)"
            )
        program = self.decoded_hyperparameters.get("sagemaker_program")
        if program:
            if not (tree.code_dir / program).exists():
                raise TrainingSetupError(
                    f"ClientError: sagemaker_program {program!r} is not in the source directory"
                )
            user_hps = toolkit.user_hyperparameters(self.decoded_hyperparameters)
            return toolkit.entry_point_command(python, program, toolkit.command_args(user_hps))
        entrypoint = self.job["AlgorithmSpecification"].get("ContainerEntrypoint")
        if entrypoint:
            arguments = self.job["AlgorithmSpecification"].get("ContainerArguments", [])
            head = [python] if entrypoint[0] in ("python", "python3") else [entrypoint[0]]
            return [*head, *entrypoint[1:], *arguments]
        raise TrainingSetupError(
            "ClientError: the local runtime runs script-mode jobs (HyperParameters "
            "sagemaker_program + sagemaker_submit_directory) or AlgorithmSpecification."
            "ContainerEntrypoint; this job has neither"
        )

    def launch(
        self,
        on_line: Callable[[str, str, str], None],
        on_started: Callable[[list[dict]], None],
    ) -> None:
        """Start one process per host; ``on_line(host, text, stream)`` sees every output line,
        after it was appended to the host's CloudWatch stream ``<job>/<host>-<epoch>``.
        ``on_started`` gets the identities of the processes started so far each time one
        starts, before its output is read (what a restarted runtime kills)."""
        started_one = each_started(on_started)
        hosts = [tree.host for tree in self.workspace.hosts]
        master_port = free_port()
        started = int(time.time())
        region = self.config.region
        for tree in self.workspace.hosts:
            argv = self.command(tree)
            python = self.config.python_for_image(self.image)
            env = toolkit.training_environment(
                self.job, tree, hosts, region, master_port, python, self._config_env(tree)
            )
            stream = f"{self.job['TrainingJobName']}/{tree.host}-{started}"
            try:  # the toolkit would pip-install it; the image Python here is shared, offline
                check_source_dir(python, tree.code_dir)
            except RequirementsError as error:
                raise TrainingSetupError(str(error)) from error
            self.processes[tree.host] = self.executor.start_process(
                argv,
                env,
                tree.code_dir,
                TRAINING_LOG_GROUP,
                stream,
                lambda text, pipe, host=tree.host: on_line(host, text, pipe),
                job_sandbox(self.workspace.job_dir, python, tree.root),
                started_one,
            )

    def wait(self, timeout: float) -> dict[str, int] | None:
        """Exit codes by host once every process has ended; None if one still runs at timeout."""
        deadline = time.monotonic() + timeout
        codes = {}
        for host, process in self.processes.items():
            code = process.wait(max(0.0, deadline - time.monotonic()))
            if code is None:
                return None
            codes[host] = code
        return codes

    def stop(self, grace_seconds: float) -> None:
        """SIGTERM every host's process group, SIGKILL what is left after the grace period."""
        for process in self.processes.values():
            process.stop(grace_seconds)

    def failure_reason(self, exit_codes: dict[str, int]) -> str | None:
        """None if every host exited 0; else the first failing host's /opt/ml/output/failure
        (written from the toolkit's ExecuteUserScriptError text unless the script wrote one)."""
        for tree in self.workspace.hosts:
            code = exit_codes[tree.host]
            if code == 0:
                tree.success_file.touch()
                continue
            if not tree.failure_file.exists():
                process = self.processes[tree.host]
                text = toolkit.user_script_failure(code, list(process.stderr_tail), process.argv)
                tree.failure_file.write_text(text)
            return tree.failure_file.read_text(errors="replace")
        return None

    # -- outputs -------------------------------------------------------------------------------

    def mark_debugger_end(self) -> None:
        """Write smdebug's end-of-job marker so rule trials stop waiting for more steps."""
        if self.job.get("DebugHookConfig"):
            (self.paths.debug_output / SMDEBUG_END_MARKER).touch()

    def sync_checkpoints(self) -> None:
        """Upload checkpoint files that are new or changed since the last sync (master host)."""
        if not self.job.get("CheckpointConfig"):
            return
        directory = self._checkpoint_dir(self.workspace.master)
        current = _snapshot(directory)
        base = self.job["CheckpointConfig"]["S3Uri"].rstrip("/")
        for relative, state in list(current.items()):
            if self._checkpoint_state.get(relative) != state:
                try:
                    self.s3.upload_file(directory / relative, f"{base}/{relative}")
                except FileNotFoundError:
                    # Renamed or deleted since the listing (smdebug writes `.tmp` files and
                    # renames them): the next sync sees what it became.
                    del current[relative]
        self._checkpoint_state = current

    def model_artifact_uri(self) -> str:
        output = self.job["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        return f"{output}/{self.job['TrainingJobName']}/output/model.tar.gz"

    def upload_outputs(self) -> str:
        """model.tar.gz (algo-1's model/), output.tar.gz (if output/data has files), Debugger,
        profiler and TensorBoard folders; returns the model artifact's S3 URI."""
        master = self.workspace.master
        job_dir = self.workspace.job_dir
        model_uri = self.model_artifact_uri()
        self.s3.upload_file(pack_directory(master.model_dir, job_dir / "model.tar.gz"), model_uri)
        if any(master.output_data_dir.iterdir()):
            archive = pack_directory(master.output_data_dir, job_dir / "output.tar.gz")
            self.s3.upload_file(archive, model_uri.replace("/model.tar.gz", "/output.tar.gz"))
        name = self.job["TrainingJobName"]
        for config_key, folder, suffix in (
            ("DebugHookConfig", self.paths.debug_output, f"{name}/debug-output"),
            ("ProfilerConfig", self.paths.profiler_output, f"{name}/profiler-output"),
            ("TensorBoardOutputConfig", self.paths.tensorboard_output, ""),
        ):
            s3_output = self.job.get(config_key, {}).get("S3OutputPath")
            if s3_output and folder.is_dir():
                self.s3.upload_directory(
                    folder, "/".join(filter(None, [s3_output.rstrip("/"), suffix]))
                )
        return model_uri
