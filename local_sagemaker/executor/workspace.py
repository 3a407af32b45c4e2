"""The per-job working tree: one folder standing in for ``/opt/ml`` per host, plus the job-wide
Debugger and profiler output folders.

Layout under ``<data_dir>/jobs/<job name>/``::

    algo-1/                 the /opt/ml of host algo-1 (algo-2/ ... for InstanceCount > 1)
      input/config/*.json   hyperparameters, inputdataconfig, resourceconfig, debughookconfig, ...
      input/data/<channel>/ the channel's files
      model/  output/data/  output/intermediate/  output/failure  checkpoints/  code/
    debug-output/           smdebug tensors of every host (debughookconfig LocalPath)
    profiler-output/        profiler and system metrics of every host
    tensorboard/            TensorBoardOutputConfig LocalPath
    downloads/<channel>/    each channel downloaded once, hard-linked into the hosts' trees
"""

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from local_sagemaker.store import write_file_atomically


@dataclass(frozen=True)
class HostTree:
    """The /opt/ml stand-in of one host. Every path the container contract names is a property."""

    host: str
    root: Path

    @property
    def input_dir(self) -> Path:
        return self.root / "input"

    @property
    def config_dir(self) -> Path:
        return self.input_dir / "config"

    def channel_dir(self, channel: str) -> Path:
        return self.input_dir / "data" / channel

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def intermediate_dir(self) -> Path:
        return self.output_dir / "intermediate"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def success_file(self) -> Path:
        return self.output_dir / "success"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def code_dir(self) -> Path:
        return self.root / "code"

    def container_path(self, path: str) -> Path:
        """Map a container path such as ``/opt/ml/checkpoints`` into this tree."""
        relative = Path(path).relative_to("/opt/ml") if path.startswith("/opt/ml") else None
        if relative is None:
            raise ValueError(f"{path!r} is outside /opt/ml: the local runtime cannot map it")
        if ".." in relative.parts:
            raise ValueError(f"{path!r} contains '..': it would leave /opt/ml")
        return self.root / relative

    def create(self) -> None:
        for folder in (
            self.config_dir,
            self.input_dir / "data",
            self.model_dir,
            self.output_data_dir,
            self.intermediate_dir,
            self.checkpoints_dir,
            self.code_dir,
        ):
            folder.mkdir(parents=True, exist_ok=True)

    def write_config(self, name: str, content: dict) -> Path:
        """Write ``input/config/<name>`` as JSON; returns its path."""
        path = self.config_dir / name
        write_file_atomically(path, json.dumps(content, indent=2, sort_keys=True).encode())
        return path


@dataclass(frozen=True)
class TrainingPaths:
    """What observers get about a job's files (the observer contract's ``paths``).

    ``root`` is the /opt/ml stand-in of algo-1; ``host_roots`` maps every host to its own.
    ``debug_output`` is where smdebug writes tensors (debughookconfig.json LocalPath) and
    ``profiler_output`` where profiler data and system metrics go, for all hosts.
    """

    job_dir: Path
    root: Path
    host_roots: dict[str, Path]
    debug_output: Path
    profiler_output: Path
    tensorboard_output: Path


class TrainingWorkspace:
    """Creates and addresses the working tree of one training job."""

    def __init__(self, jobs_dir: Path, job_name: str, instance_count: int):
        self.job_dir = Path(jobs_dir) / job_name
        self.hosts = [
            HostTree(f"algo-{n}", self.job_dir / f"algo-{n}") for n in range(1, instance_count + 1)
        ]
        self.paths = TrainingPaths(
            job_dir=self.job_dir,
            root=self.hosts[0].root,
            host_roots={tree.host: tree.root for tree in self.hosts},
            debug_output=self.job_dir / "debug-output",
            profiler_output=self.job_dir / "profiler-output",
            tensorboard_output=self.job_dir / "tensorboard",
        )

    @property
    def master(self) -> HostTree:
        return self.hosts[0]

    def download_dir(self, channel: str) -> Path:
        return self.job_dir / "downloads" / channel

    def create(self) -> None:
        """Make every folder (a fresh tree: anything left from an earlier run is removed)."""
        if self.job_dir.exists():
            shutil.rmtree(self.job_dir)
        for tree in self.hosts:
            tree.create()
        for folder in (self.paths.debug_output, self.paths.profiler_output):
            folder.mkdir(parents=True, exist_ok=True)

    def link_channel(self, channel: str, sharded: bool) -> None:
        """Hard-link the downloaded channel into each host's ``input/data/<channel>``.

        FullyReplicated: every host gets every file. ShardedByS3Key: host n of N gets every N-th
        file (files in key order), as SageMaker splits objects across instances.
        """
        files = sorted(p for p in self.download_dir(channel).rglob("*") if p.is_file())
        for index, tree in enumerate(self.hosts):
            share = files[index :: len(self.hosts)] if sharded else files
            for source in share:
                target = tree.channel_dir(channel) / source.relative_to(self.download_dir(channel))
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(source, target)
            tree.channel_dir(channel).mkdir(parents=True, exist_ok=True)
