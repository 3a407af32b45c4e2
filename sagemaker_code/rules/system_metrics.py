"""Reader of SageMaker's system metrics (the profiler's ``system/`` output).

SageMaker's host agent (and ``local_sagemaker.system_metrics`` locally) writes JSON-lines files
``<profiler-output>/system/incremental/<YYYYMMDDHH>/<10-digit unix time>.algo-<n>.json``; each
line is one sample ``{"Type": "cpu"|"gpu"|"memory", "Name": "cpu0"|"gpu0"|..., "Dimension":
"CPUUtilization"|"I/OWaitPercentage"|"GPUUtilization"|"GPUMemoryUtilization"|..., "Value": float,
"NodeId": "algo-1", "Timestamp": unix seconds}`` (the full table is in
``local_sagemaker/system_metrics.py``). It is the layout smdebug's
``SystemMetricsReader`` reads. ``<profiler-output>/system/training_job_end.ts`` marks the end of
the job, as smdebug's ``ProfilerTrial.job_finished`` expects.

Files are written whole (write then rename), so a file once seen is never re-read.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

SYSTEM_FILE = re.compile(r"(\d{10})\.algo-\d+\.json$")
END_OF_JOB_MARKER = "training_job_end.ts"

CPU_UTILIZATION = "CPUUtilization"
IO_WAIT = "I/OWaitPercentage"
GPU_UTILIZATION = "GPUUtilization"
GPU_MEMORY_UTILIZATION = "GPUMemoryUtilization"

# (label, Dimension, Name prefix) of every utilisation series worth summarising, in percent.
# The last two are the local runtime's own (local_sagemaker/system_metrics.py): the job's
# process tree, since a local "instance" is shared with other work.
USAGE_METRICS = (
    ("CPU", CPU_UTILIZATION, "cpu"),
    ("I/O wait", IO_WAIT, "cpu"),
    ("Memory", "Memory", "MemoryUsedPercent"),
    ("GPU", GPU_UTILIZATION, "gpu"),
    ("GPU memory", GPU_MEMORY_UTILIZATION, "gpu"),
    ("Training processes CPU", "ProcessCPUUtilization", "TrainingProcesses"),
    ("Training processes memory", "ProcessMemoryUsedPercent", "TrainingProcesses"),
)


@dataclass(frozen=True)
class Sample:
    """One system-metric data point."""

    timestamp: float
    node: str
    type: str
    name: str
    dimension: str
    value: float


class SystemMetrics:
    """All samples read so far, with the series the profiler rules ask for (time-ordered)."""

    def __init__(self, samples: list[Sample]):
        self.samples = sorted(samples, key=lambda sample: sample.timestamp)

    def series(self, dimension: str, name_prefix: str = "") -> dict[tuple[str, str], list[float]]:
        """Values of one dimension per (node, device name), e.g. ("algo-1", "gpu0")."""
        by_device: dict[tuple[str, str], list[float]] = defaultdict(list)
        for sample in self.samples:
            if sample.dimension == dimension and sample.name.startswith(name_prefix):
                by_device[(sample.node, sample.name)].append(sample.value)
        return dict(by_device)

    def snapshots(self, dimension: str, name_prefix: str) -> dict[tuple[str, float], float]:
        """Mean over a node's devices of one dimension, per (node, sample time)."""
        grouped: dict[tuple[str, float], list[float]] = defaultdict(list)
        for sample in self.samples:
            if sample.dimension == dimension and sample.name.startswith(name_prefix):
                grouped[(sample.node, round(sample.timestamp, 2))].append(sample.value)
        return {key: sum(values) / len(values) for key, values in grouped.items()}

    def has_gpu(self) -> bool:
        return any(sample.type == "gpu" for sample in self.samples)

    def time_range(self) -> tuple[float, float] | None:
        if not self.samples:
            return None
        return self.samples[0].timestamp, self.samples[-1].timestamp


class SystemMetricsReader:
    """Incremental reader of one profiler output directory (which may not exist yet)."""

    def __init__(self, profiler_output: Path):
        self.system_dir = Path(profiler_output) / "system"
        self._samples: list[Sample] = []
        self._read_files: set[Path] = set()

    def training_ended(self) -> bool:
        return (self.system_dir / END_OF_JOB_MARKER).exists()

    def read(self) -> SystemMetrics:
        """Every sample written so far (new files are parsed, old ones remembered)."""
        if self.system_dir.is_dir():
            for path in sorted(self.system_dir.rglob("*.json")):
                if path not in self._read_files and SYSTEM_FILE.search(path.name):
                    self._samples.extend(_parse_file(path))
                    self._read_files.add(path)
        return SystemMetrics(self._samples)


def _parse_file(path: Path) -> list[Sample]:
    samples = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            samples.append(
                Sample(
                    timestamp=float(event["Timestamp"]),
                    node=event["NodeId"],
                    type=event["Type"],
                    name=event.get("Name") or "",
                    dimension=event["Dimension"],
                    value=float(event["Value"]),
                )
            )
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"System metrics file {path}, line {number}: {error!r}") from error
    return samples
