"""SageMaker Debugger's built-in profiler rules, evaluated over system metrics.

Implemented from the parameters and logic of smdebug's 2020 open-source profiler rules
(``smdebug/profiler/analysis/rules/*.py`` at a5af69d, summarised in the project's
sagemaker-behaviour.md) and smdebug-rulesconfig's defaults. Only system metrics exist here:
framework profiling is deprecated for PyTorch >= 2.0, so the rules that need framework
step timings (StepOutlier, MaxInitializationTime, Dataloader, LoadBalancing) are listed in
ProfilerReport as not evaluated, with that reason.

Each rule's ``evaluate(metrics)`` is pure: it looks at every sample read so far and returns a
:class:`RuleReport`, the content of the per-rule JSON file that ProfilerReport writes (keys
``RuleTriggered``, ``Violations``, ``Details``, ``Datapoints``, ``RuleParameters`` as in smdebug).
Every rule accepts ``scan_interval_us``: how often the runner re-evaluates it while the job runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from rules.parameters import (
    Parameter,
    RuleParameterError,
    count,
    parse_parameters,
    percent,
)
from rules.system_metrics import (
    CPU_UTILIZATION,
    GPU_MEMORY_UTILIZATION,
    GPU_UTILIZATION,
    IO_WAIT,
    USAGE_METRICS,
    SystemMetrics,
)

SCAN_INTERVAL = count("scan_interval_us", 60_000_000)
NO_GPU = "No GPU metrics were recorded: the training job ran without a GPU."


@dataclass
class RuleReport:
    """The outcome of one profiler rule over the metrics seen so far."""

    rule: str
    parameters: dict[str, Any]
    triggered: bool = False
    violations: int = 0
    datapoints: int = 0
    finding: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """smdebug's per-rule report shape (ProfilerReport's ``<RuleName>.json``)."""
        return {
            "RuleTriggered": int(self.triggered),
            "Violations": self.violations,
            "Details": self.details,
            "Datapoints": self.datapoints,
            "RuleParameters": "\n".join(f"{k}:{v}" for k, v in self.parameters.items()),
            "Finding": self.finding,
        }


class SystemRule:
    """Base of the profiler rules: declared parameters and a ``evaluate`` over metrics."""

    PARAMETERS: ClassVar[tuple[Parameter, ...]] = ()

    def __init__(self, **parameters: Any):
        self.parameters = parameters

    @property
    def name(self) -> str:
        return type(self).__name__

    def report(self, **fields: Any) -> RuleReport:
        return RuleReport(rule=self.name, parameters=self.parameters, **fields)

    def evaluate(self, metrics: SystemMetrics) -> RuleReport:
        raise NotImplementedError


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


class LowGPUUtilization(SystemRule):
    """Per GPU, once more than ``patience`` values exist, p95/p5 of the last ``window`` values:
    a violation if p95 < ``threshold_p95`` (underused), or if p95 > ``threshold_p95`` and
    p5 < ``threshold_p5`` (fluctuating). Triggered by any violation. No GPU: not triggered,
    and the finding says so."""

    PARAMETERS = (
        percent("threshold_p95", 70.0),
        percent("threshold_p5", 10.0),
        count("window", 500),
        count("patience", 1000),
        SCAN_INTERVAL,
    )

    def evaluate(self, metrics):
        gpus = metrics.series(GPU_UTILIZATION, "gpu")
        if not gpus:
            return self.report(finding=NO_GPU + " GPU utilisation cannot be low.")
        p = self.parameters
        details, findings = {}, []
        for (node, gpu), values in sorted(gpus.items()):
            if len(values) <= p["patience"]:
                continue
            recent = values[-p["window"] :]
            p95, p5 = _percentile(recent, 95), _percentile(recent, 5)
            if p95 < p["threshold_p95"]:
                issue = f"{node} {gpu} is underused (p95 {p95:.0f}% < {p['threshold_p95']:g}%)"
            elif p95 > p["threshold_p95"] and p5 < p["threshold_p5"]:
                issue = f"{node} {gpu} fluctuates (p95 {p95:.0f}%, p5 {p5:.0f}%)"
            else:
                continue
            details[f"{node}/{gpu}"] = {"p95": p95, "p5": p5}
            findings.append(issue)
        datapoints = max(len(values) for values in gpus.values())
        if not findings:
            return self.report(
                datapoints=datapoints, finding=f"GPU utilisation was fine over {datapoints} points."
            )
        return self.report(
            triggered=True,
            violations=len(findings),
            datapoints=datapoints,
            details=details,
            finding="; ".join(findings) + ". Consider a larger batch size or a smaller instance.",
        )


class _GPUStarvation(SystemRule):
    """A bottleneck snapshot is one where the GPU idles (< ``gpu_threshold``) while the host-side
    metric is high (> its threshold). Triggered when more than ``patience`` snapshots exist and
    bottlenecks exceed ``threshold`` % of them."""

    HOST_DIMENSION: ClassVar[str]
    HOST_THRESHOLD: ClassVar[str]
    WHAT: ClassVar[str]

    def evaluate(self, metrics):
        gpu = metrics.snapshots(GPU_UTILIZATION, "gpu")
        if not gpu:
            return self.report(finding=NO_GPU + f" It cannot wait on {self.WHAT}.")
        host = metrics.snapshots(self.HOST_DIMENSION, "cpu")
        common = sorted(gpu.keys() & host.keys())
        p = self.parameters
        bottlenecks = sum(
            gpu[key] < p["gpu_threshold"] and host[key] > p[self.HOST_THRESHOLD] for key in common
        )
        share = 100 * bottlenecks / len(common) if common else 0.0
        triggered = len(common) > p["patience"] and share > p["threshold"]
        verdict = "above" if triggered else "within"
        return self.report(
            triggered=triggered,
            violations=bottlenecks,
            datapoints=len(common),
            details={"bottleneck_percent": share},
            finding=(
                f"{bottlenecks} of {len(common)} snapshots ({share:.1f}%, {verdict} the "
                f"{p['threshold']:g}% threshold) show an idle GPU during {self.WHAT}."
            ),
        )


def _starvation_parameters(host_threshold: str, default: float) -> tuple[Parameter, ...]:
    return (
        percent("threshold", 50.0),
        percent("gpu_threshold", 10.0),
        percent(host_threshold, default),
        count("patience", 1000),
        SCAN_INTERVAL,
    )


class CPUBottleneck(_GPUStarvation):
    PARAMETERS = _starvation_parameters("cpu_threshold", 90.0)
    HOST_DIMENSION = CPU_UTILIZATION
    HOST_THRESHOLD = "cpu_threshold"
    WHAT = "a CPU bottleneck"


class IOBottleneck(_GPUStarvation):
    PARAMETERS = _starvation_parameters("io_threshold", 50.0)
    HOST_DIMENSION = IO_WAIT
    HOST_THRESHOLD = "io_threshold"
    WHAT = "an I/O bottleneck"


class BatchSize(SystemRule):
    """Triggered when, after ``patience`` points, the p95 over the last ``window`` points of
    CPU, GPU and GPU-memory utilisation are all below their thresholds: the batch is too small
    to use the instance."""

    PARAMETERS = (
        percent("cpu_threshold_p95", 70.0),
        percent("gpu_threshold_p95", 70.0),
        percent("gpu_memory_threshold_p95", 70.0),
        count("patience", 1000),
        count("window", 500),
        SCAN_INTERVAL,
    )

    def evaluate(self, metrics):
        p = self.parameters
        dimensions = {
            "cpu": (CPU_UTILIZATION, "cpu", p["cpu_threshold_p95"]),
            "gpu": (GPU_UTILIZATION, "gpu", p["gpu_threshold_p95"]),
            "gpu_memory": (GPU_MEMORY_UTILIZATION, "gpu", p["gpu_memory_threshold_p95"]),
        }
        if not metrics.has_gpu():
            return self.report(finding=NO_GPU + " Batch size is judged by GPU use.")
        p95s, datapoints = {}, 0
        for label, (dimension, prefix, _) in dimensions.items():
            values = sorted(metrics.snapshots(dimension, prefix).items())
            datapoints = max(datapoints, len(values))
            if len(values) > p["patience"]:
                p95s[label] = _percentile([v for _, v in values[-p["window"] :]], 95)
        triggered = len(p95s) == len(dimensions) and all(
            p95s[label] < threshold for label, (_, _, threshold) in dimensions.items()
        )
        finding = (
            "CPU, GPU and GPU memory are all underused (p95 "
            + ", ".join(f"{label} {value:.0f}%" for label, value in p95s.items())
            + "): a larger batch size would use the instance better."
            if triggered
            else "The batch size keeps at least one of CPU, GPU or GPU memory busy."
        )
        return self.report(
            triggered=triggered,
            violations=int(triggered),
            datapoints=datapoints,
            details={"p95": p95s},
            finding=finding,
        )


class OverallSystemUsage(SystemRule):
    """Never triggers: per node, p50/p95/p99/max of every series in USAGE_METRICS."""

    PARAMETERS = (SCAN_INTERVAL,)

    def evaluate(self, metrics):
        usage: dict[str, dict[str, dict[str, float]]] = {}
        for label, dimension, prefix in USAGE_METRICS:
            per_node: dict[str, list[float]] = {}
            for (node, _), value in metrics.snapshots(dimension, prefix).items():
                per_node.setdefault(node, []).append(value)
            for node, values in per_node.items():
                usage.setdefault(node, {})[label] = {
                    stat: _percentile(values, q)
                    for stat, q in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))
                }
        return self.report(
            datapoints=len(metrics.samples),
            details=usage,
            finding=f"System usage summarised over {len(metrics.samples)} samples.",
        )


SYSTEM_RULES: dict[str, type[SystemRule]] = {
    rule.__name__: rule
    for rule in (
        LowGPUUtilization,
        CPUBottleneck,
        IOBottleneck,
        BatchSize,
        OverallSystemUsage,
    )
}

# Sub-rules AWS's ProfilerReport runs that need framework metrics (step timings, data loader
# events), which PyTorch >= 2.0 jobs do not produce.
NOT_EVALUATED = {
    "StepOutlier": "needs framework step timings (framework profiling is deprecated)",
    "MaxInitializationTime": "needs framework step timings (framework profiling is deprecated)",
    "Dataloader": "needs framework data-loader events (framework profiling is deprecated)",
    "LoadBalancing": "needs several GPUs' framework metrics",
    "GPUMemoryIncrease": "needs framework step timings to relate memory to steps",
}


def sub_rules_for_report(raw: dict[str, str]) -> list[SystemRule]:
    """ProfilerReport's sub-rules, configured by ``<RuleName>_<parameter>`` overrides."""
    overrides: dict[str, dict[str, str]] = {name: {} for name in SYSTEM_RULES}
    known = {name.lower(): name for name in SYSTEM_RULES}
    for key, value in raw.items():
        if key in {"rule_to_invoke", "base_trial"}:
            continue
        rule_part, _, parameter = key.partition("_")
        rule = known.get(rule_part.lower())
        if rule is None or not parameter:
            accepted = ", ".join(sorted(SYSTEM_RULES))
            raise RuleParameterError(
                f"ProfilerReport parameter {key!r} must be <RuleName>_<parameter> with "
                f"RuleName one of {accepted}"
            )
        overrides[rule][parameter] = value
    return [
        rule(**parse_parameters(name, rule.PARAMETERS, overrides[name]))
        for name, rule in SYSTEM_RULES.items()
    ]
