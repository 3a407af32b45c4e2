"""Profiler rules over system metrics in SageMaker's layout, and ProfilerReport's outputs."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from rules.outcome import ERROR, ISSUES_FOUND, NO_ISSUES_FOUND
from rules.runner import evaluate
from smdebug.profiler.system_metrics_reader import LocalSystemMetricsReader

START = 1_763_000_000.0


def write_metrics(
    profiler_output: Path, gpu=None, cpu=None, io_wait=None, gpu_memory=None, ended=True
) -> Path:
    """System-metric files as SageMaker's host agent writes them: 10 samples per file, one
    sample per second; each series is a list of percentages (one per second)."""
    series = {
        ("gpu", "gpu0", "GPUUtilization"): gpu,
        ("gpu", "gpu0", "GPUMemoryUtilization"): gpu_memory,
        ("cpu", "cpu0", "CPUUtilization"): cpu,
        ("cpu", "cpu0", "I/OWaitPercentage"): io_wait,
    }
    length = max(len(values) for values in series.values() if values)
    directory = profiler_output / "system" / "incremental" / "2025111300"
    directory.mkdir(parents=True)
    for chunk in range(0, length, 10):
        lines = [
            json.dumps(
                {
                    "Type": kind,
                    "Name": name,
                    "Dimension": dimension,
                    "Value": values[second],
                    "NodeId": "algo-1",
                    "Timestamp": START + second,
                }
            )
            for second in range(chunk, min(chunk + 10, length))
            for (kind, name, dimension), values in series.items()
            if values
        ]
        (directory / f"{int(START) + chunk}.algo-1.json").write_text("\n".join(lines) + "\n")
    if ended:
        (profiler_output / "system" / "training_job_end.ts").touch()
    return profiler_output


def evaluate_profiler_rule(rule, profiler_output, tmp_path, **parameters):
    return evaluate(
        rule, parameters, tmp_path / "debug", profiler_output, tmp_path / "out", poll_seconds=0.1
    )


SMALL_WINDOW = {"patience": "10", "window": "10"}


def test_files_follow_smdebugs_system_metrics_layout(tmp_path):
    """The layout the rules read is the one smdebug's own reader understands."""
    profiler_output = write_metrics(tmp_path / "p", gpu=[50.0] * 25, cpu=[20.0] * 25)
    reader = LocalSystemMetricsReader(str(profiler_output))
    events = reader.get_events(START * 1e6, (START + 60) * 1e6)
    assert len(events) == 50
    assert {event.dimension for event in events} == {"GPUUtilization", "CPUUtilization"}


def test_low_gpu_utilization_fires_on_an_underused_gpu(tmp_path):
    profiler_output = write_metrics(tmp_path / "p", gpu=[5.0] * 30)
    outcome = evaluate_profiler_rule("LowGPUUtilization", profiler_output, tmp_path, **SMALL_WINDOW)
    assert outcome.status == ISSUES_FOUND
    assert "algo-1 gpu0 is underused (p95 5% < 70%)" in outcome.details


def test_low_gpu_utilization_fires_on_a_fluctuating_gpu(tmp_path):
    profiler_output = write_metrics(tmp_path / "p", gpu=[0.0, 100.0] * 15)
    outcome = evaluate_profiler_rule("LowGPUUtilization", profiler_output, tmp_path, **SMALL_WINDOW)
    assert outcome.status == ISSUES_FOUND
    assert "fluctuates" in outcome.details


def test_low_gpu_utilization_is_quiet_on_a_busy_gpu_and_before_patience(tmp_path):
    busy = write_metrics(tmp_path / "busy", gpu=[95.0] * 30)
    assert evaluate_profiler_rule("LowGPUUtilization", busy, tmp_path, **SMALL_WINDOW).status == (
        NO_ISSUES_FOUND
    )
    idle_but_short = write_metrics(tmp_path / "short", gpu=[5.0] * 30)
    outcome = evaluate_profiler_rule("LowGPUUtilization", idle_but_short, tmp_path)
    assert outcome.status == NO_ISSUES_FOUND  # 30 points < default patience 1000


def test_low_gpu_utilization_without_gpu_says_so(tmp_path):
    profiler_output = write_metrics(tmp_path / "p", cpu=[80.0] * 30)
    outcome = evaluate_profiler_rule("LowGPUUtilization", profiler_output, tmp_path)
    assert outcome.status == NO_ISSUES_FOUND
    assert "ran without a GPU" in outcome.details


def test_profiler_rule_waits_for_the_end_of_the_job(tmp_path):
    profiler_output = write_metrics(tmp_path / "p", gpu=[90.0] * 20, ended=False)
    outcomes = []
    rule = threading.Thread(
        target=lambda: outcomes.append(
            evaluate_profiler_rule("LowGPUUtilization", profiler_output, tmp_path)
        )
    )
    rule.start()
    rule.join(timeout=1.0)
    assert rule.is_alive(), "the rule must wait while training runs"
    (profiler_output / "system" / "training_job_end.ts").touch()
    rule.join(timeout=10)
    assert outcomes[0].status == NO_ISSUES_FOUND


def test_profiler_rule_reports_an_issue_while_the_job_still_runs(tmp_path):
    profiler_output = write_metrics(tmp_path / "p", gpu=[5.0] * 30, ended=False)
    outcome = evaluate_profiler_rule(
        "LowGPUUtilization", profiler_output, tmp_path, scan_interval_us="100000", **SMALL_WINDOW
    )
    assert outcome.status == ISSUES_FOUND
    assert not (profiler_output / "system" / "training_job_end.ts").exists()


def test_profiler_report_writes_html_and_per_rule_json(tmp_path):
    profiler_output = write_metrics(tmp_path / "p", gpu=[2.0] * 30, cpu=[97.0] * 30)
    outcome = evaluate_profiler_rule(
        "ProfilerReport", profiler_output, tmp_path, CPUBottleneck_patience="10"
    )
    assert outcome.status == ISSUES_FOUND
    assert outcome.details.startswith("CPUBottleneck: 30 of 30 snapshots (100.0%, above the 50%")
    report_dir = tmp_path / "out" / "profiler-output"
    cpu_bottleneck = json.loads(
        (report_dir / "profiler-reports" / "CPUBottleneck.json").read_text()
    )
    assert cpu_bottleneck["RuleTriggered"] == 1
    assert cpu_bottleneck["Datapoints"] == 30
    assert "patience:10" in cpu_bottleneck["RuleParameters"]
    usage = json.loads((report_dir / "profiler-reports" / "OverallSystemUsage.json").read_text())
    assert usage["Details"]["algo-1"]["CPU"]["p95"] == 97.0
    html = (report_dir / "profiler-report.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "<svg" in html and "<polyline" in html
    assert "<script" not in html and "http" not in html  # readable offline, no downloads
    for rule in ("CPUBottleneck", "LowGPUUtilization", "StepOutlier", "not evaluated"):
        assert rule in html


def test_profiler_report_on_a_cpu_only_job_finds_no_issue(tmp_path):
    profiler_output = write_metrics(tmp_path / "p", cpu=[60.0] * 30, io_wait=[1.0] * 30)
    outcome = evaluate_profiler_rule("ProfilerReport", profiler_output, tmp_path)
    assert outcome.status == NO_ISSUES_FOUND
    assert (tmp_path / "out" / "profiler-output" / "profiler-report.html").exists()


def test_profiler_report_rejects_an_override_for_an_unknown_rule(tmp_path):
    profiler_output = write_metrics(tmp_path / "p", cpu=[60.0] * 5)
    outcome = evaluate_profiler_rule("ProfilerReport", profiler_output, tmp_path, Foo_bar="1")
    assert outcome.status == ERROR
    assert "ProfilerReport parameter 'Foo_bar' must be <RuleName>_<parameter>" in outcome.details


@pytest.mark.parametrize(
    ("sub_rule", "series", "finding"),
    [
        (
            "IOBottleneck",
            {"gpu": [3.0] * 30, "io_wait": [80.0] * 30},
            "30 of 30 snapshots (100.0%, above the 50% threshold) show an idle GPU during an "
            "I/O bottleneck.",
        ),
        (
            "BatchSize",
            {"gpu": [20.0] * 30, "gpu_memory": [10.0] * 30, "cpu": [15.0] * 30},
            "CPU, GPU and GPU memory are all underused (p95 cpu 15%, gpu 20%, gpu_memory 10%)",
        ),
    ],
)
def test_profiler_report_sub_rules_fire_on_their_pattern(sub_rule, series, finding, tmp_path):
    profiler_output = write_metrics(tmp_path / "p", **series)
    overrides = {f"{name}_patience": "10" for name in ("IOBottleneck", "BatchSize")}
    outcome = evaluate_profiler_rule("ProfilerReport", profiler_output, tmp_path, **overrides)
    assert outcome.status == ISSUES_FOUND
    assert f"{sub_rule}: {finding}" in outcome.details
    report = tmp_path / "out" / "profiler-output" / "profiler-reports" / f"{sub_rule}.json"
    assert json.loads(report.read_text())["RuleTriggered"] == 1
