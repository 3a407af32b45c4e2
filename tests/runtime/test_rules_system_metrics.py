"""The local host agent: real psutil samples of the host and of a busy process tree, written in
the layout smdebug's own reader and the rule engine read."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from local_sagemaker.config import REPO_ROOT, RuntimeConfig
from local_sagemaker.system_metrics import SystemMetricsSampler

BUSY_TREE = (
    "import subprocess, sys; c = subprocess.Popen([sys.executable, '-c', 'while True: pass'])"
)
pytestmark = pytest.mark.e2e  # starts real processes


def events(profiler_output: Path) -> list[dict]:
    files = sorted((profiler_output / "system" / "incremental").rglob("*.json"))
    return [json.loads(line) for path in files for line in path.read_text().splitlines()]


def wait_for_child(pid: int) -> psutil.Process:
    for _ in range(100):
        if children := psutil.Process(pid).children():
            return children[0]
        time.sleep(0.05)
    raise AssertionError(f"process {pid} started no child")


def test_sampler_records_host_and_the_jobs_process_tree(tmp_path):
    # A job whose work happens in a child of its leader, as with the toolkit's script process.
    job = subprocess.Popen([sys.executable, "-c", BUSY_TREE + "; c.wait()"], start_new_session=True)
    try:
        spinner = wait_for_child(job.pid)
        cpu_before, started = sum(spinner.cpu_times()[:2]), time.monotonic()
        sampler = SystemMetricsSampler(
            tmp_path, root_pids=lambda: [job.pid], interval_seconds=0.2, flush_seconds=1
        ).start()
        time.sleep(2.5)
        sampler.stop()
        # What the spinning child really got of the host meanwhile (a loaded host gives it less).
        spun = (sum(spinner.cpu_times()[:2]) - cpu_before) / (time.monotonic() - started)
    finally:
        os.killpg(job.pid, signal.SIGKILL)  # the job and its child: the group we started
        job.wait()
    recorded = events(tmp_path)
    dimensions = {(e["Type"], e["Dimension"]) for e in recorded}
    assert {("cpu", "CPUUtilization"), ("cpu", "I/OWaitPercentage"), ("memory", "Memory")} <= (
        dimensions
    )
    process_cpu = [e["Value"] for e in recorded if e["Dimension"] == "ProcessCPUUtilization"]
    # The child spins at most one core, 100 / cores percent of the host, whatever the core count;
    # a sampler that missed it (the leader only waits) would read about 0.
    one_core, spun_share = 100 / psutil.cpu_count(), spun * 100 / psutil.cpu_count()
    assert spun_share / 2 < max(process_cpu) <= one_core * 1.1, (spun_share, process_cpu)
    assert all(e["NodeId"] == "algo-1" for e in recorded)
    assert len(list((tmp_path / "system" / "incremental").rglob("*.json"))) >= 2  # flushed often
    assert (tmp_path / "system" / "training_job_end.ts").exists()
    assert not list(tmp_path.rglob("*.tmp"))


def test_written_files_are_read_by_smdebug_and_by_the_rule_engine(tmp_path):
    sampler = SystemMetricsSampler(tmp_path, flush_seconds=1)
    for _ in range(3):
        sampler.sample()
    sampler.stop()
    check = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(REPO_ROOT / "sagemaker_code")!r})
        from smdebug.profiler.system_metrics_reader import LocalSystemMetricsReader
        from rules.runner import evaluate
        from pathlib import Path
        reader = LocalSystemMetricsReader({str(tmp_path)!r})
        smdebug_events = reader.get_events(0, 4e15)
        outcome = evaluate("LowGPUUtilization", {{}}, Path("unused"), Path({str(tmp_path)!r}),
                           Path({str(tmp_path / "rule")!r}))
        print(len(smdebug_events), outcome.status, outcome.details)
        """
    )
    result = subprocess.run(
        [RuntimeConfig().container_python, "-c", check], capture_output=True, text=True, check=True
    )
    count, status, details = result.stdout.strip().splitlines()[-1].split(" ", 2)
    assert int(count) == len(events(tmp_path))
    assert status == "NoIssuesFound"
    assert "ran without a GPU" in details
