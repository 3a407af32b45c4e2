"""ProfilerReport's HTML: a self-contained page (inline CSS and SVG, no scripts, no downloads).

Sections follow AWS's profiler report: training job summary (time range, duration, nodes),
system usage statistics, utilisation over time per node and device, and the rules summary
with every rule's finding (including the rules that could not be evaluated, and why).
"""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape

from rules.profiler_rules import RuleReport
from rules.system_metrics import USAGE_METRICS, SystemMetrics

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.3em .6em;
text-align:left;vertical-align:top}th{background:#f3f3f3}.issue{color:#b00020;font-weight:600}
.ok{color:#1b7f3b}.muted{color:#777}svg{background:#fafafa;border:1px solid #ddd}
"""
CHART_WIDTH, CHART_HEIGHT, MAX_POINTS = 720, 160, 600


def render_report(
    job_name: str,
    metrics: SystemMetrics,
    reports: list[RuleReport],
    not_evaluated: dict[str, str],
) -> str:
    """The whole HTML document."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>Profiler report: {escape(job_name)}</title><style>{STYLE}</style></head><body>",
        f"<h1>SageMaker Debugger profiler report: {escape(job_name)}</h1>",
        _summary(metrics),
        _rules_summary(reports, not_evaluated),
        _usage_table(reports),
        _charts(metrics),
        "</body></html>",
    ]
    return "\n".join(parts)


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _summary(metrics: SystemMetrics) -> str:
    time_range = metrics.time_range()
    if time_range is None:
        return "<h2>Training job summary</h2><p class='muted'>No system metrics were recorded.</p>"
    start, end = time_range
    nodes = sorted({sample.node for sample in metrics.samples})
    rows = [
        ("First sample", _timestamp(start)),
        ("Last sample", _timestamp(end)),
        ("Duration", f"{end - start:.1f} s"),
        ("Nodes", ", ".join(nodes)),
        ("GPU", "yes" if metrics.has_gpu() else "none recorded"),
        ("Samples", str(len(metrics.samples))),
    ]
    return "<h2>Training job summary</h2>" + _table(("", ""), rows, show_header=False)


def _rules_summary(reports: list[RuleReport], not_evaluated: dict[str, str]) -> str:
    rows = []
    for report in sorted(reports, key=lambda r: (not r.triggered, r.rule)):
        verdict = (
            "<span class='issue'>triggered</span>"
            if report.triggered
            else "<span class='ok'>no issue</span>"
        )
        parameters = ", ".join(f"{k}={v}" for k, v in report.parameters.items())
        rows.append(
            (
                escape(report.rule),
                verdict,
                str(report.violations),
                str(report.datapoints),
                escape(report.finding),
                escape(parameters),
            )
        )
    for rule, reason in sorted(not_evaluated.items()):
        rows.append((escape(rule), "<span class='muted'>not evaluated</span>", "", "", reason, ""))
    header = ("Rule", "Outcome", "Violations", "Data points", "Finding", "Parameters")
    return "<h2>Rules summary</h2>" + _table(header, rows, escaped=True)


def _usage_table(reports: list[RuleReport]) -> str:
    usage = next((r.details for r in reports if r.rule == "OverallSystemUsage"), {})
    rows = [
        (escape(node), escape(metric), *(f"{stats[k]:.1f}" for k in ("p50", "p95", "p99", "max")))
        for node, metrics in sorted(usage.items())
        for metric, stats in metrics.items()
    ]
    if not rows:
        return ""
    header = ("Node", "Metric (%)", "p50", "p95", "p99", "max")
    return "<h2>System usage statistics</h2>" + _table(header, rows, escaped=True)


def _charts(metrics: SystemMetrics) -> str:
    time_range = metrics.time_range()
    if time_range is None:
        return ""
    sections = ["<h2>Utilisation over time</h2>"]
    for title, dimension, prefix in USAGE_METRICS:
        per_node: dict[str, list[tuple[float, float]]] = {}
        for (node, timestamp), value in sorted(metrics.snapshots(dimension, prefix).items()):
            per_node.setdefault(node, []).append((timestamp, value))
        for node, points in sorted(per_node.items()):
            sections.append(f"<h3>{escape(title)}, {escape(node)}</h3>")
            sections.append(_line_chart(points, time_range))
    return "\n".join(sections)


def _line_chart(points: list[tuple[float, float]], time_range: tuple[float, float]) -> str:
    """An SVG line of percentages (0-100) over the job's time range."""
    start, end = time_range
    span = max(end - start, 1e-9)
    stride = max(1, len(points) // MAX_POINTS)
    coordinates = " ".join(
        f"{(t - start) / span * CHART_WIDTH:.1f},{(1 - min(v, 100) / 100) * CHART_HEIGHT:.1f}"
        for t, v in points[::stride]
    )
    gridlines = "".join(
        f"<line x1='0' x2='{CHART_WIDTH}' y1='{y}' y2='{y}' stroke='#e4e4e4'/>"
        for y in (CHART_HEIGHT // 4, CHART_HEIGHT // 2, 3 * CHART_HEIGHT // 4)
    )
    return (
        f"<svg width='{CHART_WIDTH}' height='{CHART_HEIGHT}' viewBox='0 0 {CHART_WIDTH} "
        f"{CHART_HEIGHT}' role='img'>{gridlines}<polyline fill='none' stroke='#1f77b4' "
        f"stroke-width='1.5' points='{coordinates}'/></svg>"
        f"<div class='muted'>0-100 %, {span:.0f} s</div>"
    )


def _table(columns, rows, *, show_header: bool = True, escaped: bool = False) -> str:
    """A table; ``escaped`` says the cells are already HTML (otherwise they are escaped)."""
    cells = [
        "<tr>" + "".join(f"<td>{c if escaped else escape(c)}</td>" for c in row) + "</tr>"
        for row in rows
    ]
    head = "<tr>" + "".join(f"<th>{escape(c)}</th>" for c in columns) + "</tr>"
    return "<table>" + (head if show_header else "") + "".join(cells) + "</table>"
