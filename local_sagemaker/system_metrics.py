"""System metrics of a training job, as SageMaker's host agent records them for the profiler.

On AWS an agent on each training instance samples the instance (CPU per core, I/O wait,
memory, GPU) every ``ProfilingIntervalInMilliseconds`` and writes them in smdebug's layout;
profiler rules (LowGPUUtilization, ProfilerReport) read nothing else. :class:`SystemMetricsSampler`
is that agent for the local runtime, with one addition: the local "instance" is shared with other
work, so it also records the job's own process tree (CPU % of the host, resident memory %).

Layout written (what ``smdebug.profiler.system_metrics_reader`` and ``sagemaker_code/rules``
read)::

    <profiler-output>/system/incremental/<YYYYMMDDHH>/<10-digit unix time>.<node>.json
    <profiler-output>/system/training_job_end.ts        (written by stop(): the end of the job)

Each file holds JSON lines ``{"Type", "Name", "Dimension", "Value", "NodeId", "Timestamp"}``:

=========  =====================  =============================  ==============================
Type       Name                   Dimension                      Value
=========  =====================  =============================  ==============================
cpu        cpu0, cpu1, ...        CPUUtilization                 % busy of that core
cpu        cpu0, cpu1, ...        I/OWaitPercentage              % of time in I/O wait (Linux)
memory     MemoryUsedPercent      Memory                         % of host memory in use
gpu        gpu0, gpu1, ...        GPUUtilization                 % (only with pynvml and a GPU)
gpu        gpu0, gpu1, ...        GPUMemoryUtilization           % of that GPU's memory in use
cpu        TrainingProcesses      ProcessCPUUtilization          job's processes, % of the host
memory     TrainingProcesses      ProcessMemoryUsedPercent       job's processes' RSS, % of host
=========  =====================  =============================  ==============================

Files are written whole (to a temporary name outside ``system/``, then renamed in), every
``flush_seconds``, so a reader never sees a partial file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

END_OF_JOB_MARKER = "training_job_end.ts"
PROCESS_TREE = "TrainingProcesses"


class _Gpus:
    """GPU utilisation through NVML when ``pynvml`` and a GPU are present; else no GPUs."""

    def __init__(self):
        self._nvml = None
        self._handles = []
        try:
            import pynvml  # optional: only installed on GPU machines

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self._nvml = pynvml
        except Exception as error:  # no module, no driver or no device: a CPU-only host
            log.debug("no GPU metrics: %s", error)

    def samples(self) -> list[tuple[str, str, str, float]]:
        rows = []
        for index, handle in enumerate(self._handles):
            utilization = self._nvml.nvmlDeviceGetUtilizationRates(handle)
            memory = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            rows.append(("gpu", f"gpu{index}", "GPUUtilization", float(utilization.gpu)))
            used = 100.0 * memory.used / memory.total if memory.total else 0.0
            rows.append(("gpu", f"gpu{index}", "GPUMemoryUtilization", used))
        return rows

    def close(self) -> None:
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()


class _ProcessTree:
    """CPU and memory of the job's processes and all their descendants.

    psutil measures a process's CPU between two calls on the same object, so objects are kept
    across samples; a process's first sample counts as 0.
    """

    def __init__(self, root_pids: Callable[[], list[int]]):
        self._root_pids = root_pids
        self._known: dict[int, psutil.Process] = {}

    def samples(self) -> list[tuple[str, str, str, float]]:
        current: dict[int, psutil.Process] = {}
        for pid in self._root_pids():
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                for process in [root, *root.children(recursive=True)]:
                    current[process.pid] = self._known.get(process.pid, process)
        self._known = current
        cpu = rss = 0.0
        for process in current.values():
            with contextlib.suppress(psutil.Error):
                cpu += process.cpu_percent(interval=None)
                rss += process.memory_info().rss
        host_cpu = cpu / (psutil.cpu_count() or 1)
        host_memory = 100.0 * rss / psutil.virtual_memory().total
        return [
            ("cpu", PROCESS_TREE, "ProcessCPUUtilization", host_cpu),
            ("memory", PROCESS_TREE, "ProcessMemoryUsedPercent", host_memory),
        ]


def host_samples() -> list[tuple[str, str, str, float]]:
    """Per-core CPU and I/O wait since the previous call, and memory in use, as rows."""
    rows = [
        ("cpu", f"cpu{index}", "CPUUtilization", float(percent))
        for index, percent in enumerate(psutil.cpu_percent(percpu=True))
    ]
    for index, times in enumerate(psutil.cpu_times_percent(percpu=True)):
        rows.append(("cpu", f"cpu{index}", "I/OWaitPercentage", float(getattr(times, "iowait", 0))))
    rows.append(("memory", "MemoryUsedPercent", "Memory", float(psutil.virtual_memory().percent)))
    return rows


class SystemMetricsSampler:
    """Samples the host, its GPUs and a job's processes in a thread until :meth:`stop`.

    ``root_pids`` is called at each sample and returns the pids of the job's top processes (its
    process-group leaders); their descendants are found from them. ``stop`` writes the last
    samples and the end-of-job marker; it is idempotent, and works without ``start`` for samples
    taken by calling :meth:`sample` directly.
    """

    def __init__(
        self,
        profiler_output: Path,
        root_pids: Callable[[], list[int]] = list,
        node_id: str = "algo-1",
        interval_seconds: float = 0.5,
        flush_seconds: float = 5.0,
    ):
        if flush_seconds < 1:
            raise ValueError("flush_seconds must be >= 1: files are named by the second")
        self.profiler_output = Path(profiler_output)
        self.system_dir = self.profiler_output / "system"
        self.node_id = node_id
        self.interval_seconds = interval_seconds
        self.flush_seconds = flush_seconds
        self._process_tree = _ProcessTree(root_pids)
        self._gpus = _Gpus()
        self._pending: list[dict] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="system-metrics")

    def start(self) -> SystemMetricsSampler:
        self.system_dir.mkdir(parents=True, exist_ok=True)
        psutil.cpu_percent(percpu=True)  # start the first measurement interval now
        psutil.cpu_times_percent(percpu=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._thread.ident is not None:  # started
            self._thread.join()
        self._flush()
        self._gpus.close()
        (self.system_dir / END_OF_JOB_MARKER).touch()

    def _run(self) -> None:
        last_flush = time.monotonic()
        while not self._stopped.wait(self.interval_seconds):
            try:
                self.sample()
            except Exception:  # a failed sample must not end the job's metrics
                log.exception("system metrics sample failed")
            if time.monotonic() - last_flush >= self.flush_seconds:
                self._flush()
                last_flush = time.monotonic()

    def sample(self) -> None:
        """Take one sample of every metric (also callable directly, e.g. in tests)."""
        timestamp = time.time()
        rows = host_samples() + self._gpus.samples() + self._process_tree.samples()
        self._pending.extend(
            {
                "Type": kind,
                "Name": name,
                "Dimension": dimension,
                "Value": round(value, 2),
                "NodeId": self.node_id,
                "Timestamp": timestamp,
            }
            for kind, name, dimension, value in rows
        )

    def _flush(self) -> None:
        if not self._pending:
            return
        events, self._pending = self._pending, []
        first = datetime.fromtimestamp(events[0]["Timestamp"], UTC)
        folder = self.system_dir / "incremental" / first.strftime("%Y%m%d%H")
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{int(first.timestamp())}.{self.node_id}.json"
        # Written beside system/, not in it, so that no reader ever lists a partial file.
        temporary = self.profiler_output / f".{target.name}.{os.getpid()}.tmp"
        temporary.write_text("".join(json.dumps(event) + "\n" for event in events))
        os.replace(temporary, target)
