"""The candidates side by side: which architecture the run keeps, and how the others differed.

Each candidate that came through its gate and its batch transform is one entry
(`candidate_entry`: its evaluation report's headline numbers, the size of its model.tar.gz, the
transform's wall time per image, and what the comparison reads: per-class F1, the confusion
matrix, the classes). `compare_candidates` ranks the entries on `registry.metric` (higher is
better; a tie goes to the earlier entry, the order of `candidates:` in include/pipeline.yaml),
lists the candidates dropped before scoring with their reasons, puts every class's F1 side by
side, and picks out the confusions (true class -> predicted class) whose counts differ most
between the candidates: where one architecture errs and another does not. Counts are comparable
because every candidate is scored on the same validation split (checked: same classes, same
number of images).

The comparison is JSON; `format_comparison` prints it for task logs, `render_comparison_html`
draws it as one static page in the evaluation report's style, and `write_comparison` uploads
both as `comparison.json` and `comparison.html` under an s3:// prefix.
"""

from __future__ import annotations

import html
import json
import posixpath
from collections.abc import Mapping
from typing import Any

from sagemaker_lifecycle.evaluation import html_page, split_s3_uri, top_k_accuracy
from sagemaker_lifecycle.registry import METRICS, report_metric

# How many differing confusion pairs the comparison keeps, and how many the task log prints.
CONFUSIONS_KEPT = 10
CONFUSIONS_LOGGED = 5
REPORT_KEYS = ("count", "accuracy", "macro_f1", "per_class", "classes", "confusion_matrix")
# What compare reads from an entry beyond its row (kept out of the rows of the comparison).
DETAIL_KEYS = ("per_class_f1", "confusion_matrix", "classes")
MISSING = "-"


def _check_report(name: str, report: Mapping[str, Any]) -> None:
    missing = [key for key in REPORT_KEYS if key not in report]
    if not any(key.startswith("top_") and key.endswith("_accuracy") for key in report):
        missing.append("top_<k>_accuracy")
    if missing:
        raise ValueError(
            f"the report of candidate {name!r} is not an evaluation report: it lacks "
            + ", ".join(missing)
        )


def _check_measure(name: str, what: str, value: float | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"candidate {name!r}: {what} is {value}, it cannot be negative")


def transform_seconds(description: Mapping[str, Any]) -> float | None:
    """A batch transform's wall time from its DescribeTransformJob answer (None while it lacks
    TransformStartTime or TransformEndTime). It includes starting the model server, so the time
    per image it gives is an upper bound, fair between candidates of one run."""
    start, end = description.get("TransformStartTime"), description.get("TransformEndTime")
    return None if start is None or end is None else (end - start).total_seconds()


def candidate_entry(
    name: str, report: Mapping[str, Any], model_bytes: int | None, transform_seconds: float | None
) -> dict[str, Any]:
    """One candidate's entry from its evaluation report (`evaluation.evaluate_transform`), the
    size of its model.tar.gz and its batch transform's wall time (either None when unknown)."""
    _check_report(name, report)
    _check_measure(name, "model_bytes", model_bytes)
    _check_measure(name, "transform_seconds", transform_seconds)
    top_key, top_value = top_k_accuracy(report)
    count = report["count"]
    per_image = transform_seconds / count if transform_seconds is not None and count else None
    return {
        "name": name,
        "accuracy": report["accuracy"],
        "top_k_key": top_key,
        top_key: top_value,
        "macro_f1": report["macro_f1"],
        "count": count,
        "model_bytes": model_bytes,
        "seconds_per_image": per_image,
        "report_uri": report.get("report_uri"),
        "html_report_uri": report.get("html_report_uri"),
        "per_class_f1": {cls: scores["f1"] for cls, scores in report["per_class"].items()},
        "confusion_matrix": report["confusion_matrix"],
        "classes": list(report["classes"]),
    }


def _check_comparable(entries: list[Mapping[str, Any]], dropped: Mapping[str, str]) -> None:
    """ValueError unless the entries have distinct names, none of them dropped, and were scored
    alike: the same classes in the same order, the same top-k, the same number of images."""
    names = [entry["name"] for entry in entries]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"candidates named twice: {', '.join(twice)}")
    both = sorted(set(names) & set(dropped))
    if both:
        raise ValueError(f"candidates both scored and dropped: {', '.join(both)}")
    first = entries[0]
    for entry in entries[1:]:
        pair = f"candidates {first['name']!r} and {entry['name']!r}"
        if entry["classes"] != first["classes"]:
            only_first = sorted(set(first["classes"]) - set(entry["classes"]))
            only_other = sorted(set(entry["classes"]) - set(first["classes"]))
            how = (f"only {first['name']!r} has {only_first}, only {entry['name']!r} has "
                   f"{only_other}" if only_first or only_other else
                   "they list the same classes in another order")  # fmt: skip
            raise ValueError(f"{pair} were scored on different classes: {how}")
        for key in ("top_k_key", "count"):
            if entry[key] != first[key]:
                raise ValueError(f"{pair} differ in {key}: {first[key]} and {entry[key]}")


def _confusion_differences(entries: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The off-diagonal (true, predicted) pairs whose counts differ between the entries, with
    each entry's count, the largest spread (max - min) first, then in matrix order."""
    classes = entries[0]["classes"]
    pairs = []
    for true, true_class in enumerate(classes):
        for predicted, predicted_class in enumerate(classes):
            if true == predicted:
                continue
            counts = {e["name"]: e["confusion_matrix"][true][predicted] for e in entries}
            spread = max(counts.values()) - min(counts.values())
            if spread:
                pairs.append({"true": true_class, "predicted": predicted_class,
                              "counts": counts, "spread": spread})  # fmt: skip
    return sorted(pairs, key=lambda pair: -pair["spread"])[:CONFUSIONS_KEPT]


def _no_candidate_message(dropped: Mapping[str, str]) -> str:
    if not dropped:
        return "no candidate to compare: none was scored and none was dropped"
    reasons = "; ".join(f"{name}: {reason}" for name, reason in dropped.items())
    return f"no candidate to compare: every one was dropped ({reasons})"


def compare_candidates(
    entries: list[Mapping[str, Any]], dropped: Mapping[str, str], metric: str
) -> dict[str, Any]:
    """The comparison of the module docstring (JSON-able) of `candidate_entry` entries, ranked on
    `metric` (one of registry.METRICS); `dropped` is candidate -> why it was not scored.
    ValueError naming what is wrong: an unknown metric, no entry (naming each dropped candidate
    and its reason), entries that were not scored alike."""
    if metric not in METRICS:
        raise ValueError(
            f"unknown metric {metric!r}: registry.metric is one of {', '.join(METRICS)}"
        )
    if not entries:
        raise ValueError(_no_candidate_message(dropped))
    _check_comparable(entries, dropped)
    values = [report_metric(entry, metric) for entry in entries]
    # sorted() is stable: of equal values the earlier entry ranks first.
    order = sorted(range(len(entries)), key=lambda i: -values[i])
    rank = {index: position + 1 for position, index in enumerate(order)}
    rows = [
        {**{k: v for k, v in entry.items() if k not in DETAIL_KEYS}, "rank": rank[i],
         "metric_value": values[i]}
        for i, entry in enumerate(entries)
    ]  # fmt: skip
    classes = entries[0]["classes"]
    return {
        "metric": metric,
        "winner": entries[order[0]]["name"],
        "top_k_key": entries[0]["top_k_key"],
        "classes": classes,
        "candidates": rows,
        "dropped": dict(dropped),
        "per_class_f1": {
            cls: {e["name"]: e["per_class_f1"][cls] for e in entries} for cls in classes
        },
        "confusion_differences": _confusion_differences(entries),
    }


def _megabytes(model_bytes: int | None) -> str:
    return MISSING if model_bytes is None else f"{model_bytes / 1e6:.1f}"


def _milliseconds(seconds: float | None) -> str:
    return MISSING if seconds is None else f"{seconds * 1000:.1f}"


def _table_cells(comparison: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The side-by-side table as text: its header and one row per candidate, in entry order."""
    top_key = comparison["top_k_key"]
    header = ["rank", "candidate", "accuracy", top_key, "macro_f1", "size MB", "ms/image"]
    rows = [
        [str(row["rank"]), row["name"], f"{row['accuracy']:.4f}", f"{row[top_key]:.4f}",
         f"{row['macro_f1']:.4f}", _megabytes(row["model_bytes"]),
         _milliseconds(row["seconds_per_image"])]
        for row in comparison["candidates"]
    ]  # fmt: skip
    return header, rows


def _confusion_line(pair: Mapping[str, Any]) -> str:
    counts = ", ".join(f"{name} {count}" for name, count in pair["counts"].items())
    return f"{pair['true']} -> {pair['predicted']}: {counts}"


def format_comparison(comparison: Mapping[str, Any]) -> str:
    """The comparison as plain text for task logs: the table (winner starred), the dropped
    candidates with their reasons, the most differing confusions."""
    header, rows = _table_cells(comparison)
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    winner = comparison["winner"]
    lines = [f"Candidates ranked on {comparison['metric']} (* the winner: {winner})"]
    for marker, cells in [(" ", header)] + [("*" if r[1] == winner else " ", r) for r in rows]:
        rank, candidate, *numbers = cells  # the name left-aligned, the numbers right
        figures = (n.rjust(w) for n, w in zip(numbers, widths[2:], strict=True))
        lines.append(f"{marker} {rank.rjust(widths[0])}  {candidate.ljust(widths[1])}  "
                     + "  ".join(figures))  # fmt: skip
    lines += [f"dropped {name}: {reason}" for name, reason in comparison["dropped"].items()]
    differences = comparison["confusion_differences"][:CONFUSIONS_LOGGED]
    if differences:
        lines.append("Confusions that differ most (true -> predicted: count per candidate):")
        lines += ["  " + _confusion_line(pair) for pair in differences]
    return "\n".join(lines)


def _row(cells: list[Any], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{html.escape(str(c))}</{tag}>" for c in cells) + "</tr>"


def _report_links(comparison: Mapping[str, Any], report_links: Mapping[str, str] | None) -> str:
    links = report_links or {}
    items = []
    for row in comparison["candidates"]:
        target = links.get(row["name"], row["html_report_uri"])
        if target:
            items.append(f"<li><a href='{html.escape(target)}'>{html.escape(row['name'])}</a></li>")
    return f"<h2>Each candidate's report</h2><ul>{''.join(items)}</ul>" if items else ""


def render_comparison_html(
    comparison: Mapping[str, Any], report_links: Mapping[str, str] | None = None
) -> str:
    """A self-contained page: the table, the dropped candidates, per-class F1 side by side, the
    differing confusions and a link to each candidate's report (`report_links`: candidate ->
    href, default its html_report_uri)."""
    header, rows = _table_cells(comparison)
    names = [row["name"] for row in comparison["candidates"]]
    dropped = "".join(
        f"<li>{html.escape(name)}: {html.escape(reason)}</li>"
        for name, reason in comparison["dropped"].items()
    )
    f1_rows = "".join(
        _row([cls, *(f"{scores[name]:.3f}" for name in names)])
        for cls, scores in comparison["per_class_f1"].items()
    )
    confusion_rows = "".join(
        _row([pair["true"], pair["predicted"], *(pair["counts"][name] for name in names)])
        for pair in comparison["confusion_differences"]
    )
    body = (
        f"<p>Ranked on {html.escape(comparison['metric'])}; the winner, "
        f"<strong>{html.escape(comparison['winner'])}</strong>, goes on to the registry.</p>"
        f"<table>{_row(header, 'th')}{''.join(_row(cells) for cells in rows)}</table>"
        + (f"<h2>Dropped</h2><ul>{dropped}</ul>" if dropped else "")
        + f"<h2>F1 per class</h2><table>{_row(['class', *names], 'th')}{f1_rows}</table>"
        "<h2>Confusions that differ</h2><p>Images of the true class predicted as another class, "
        "counted per candidate, where the candidates disagree most.</p>"
        + (f"<table>{_row(['true', 'predicted', *names], 'th')}{confusion_rows}</table>"
           if confusion_rows else "<p>None: the candidates confuse the same images alike.</p>")
        + _report_links(comparison, report_links)
    )  # fmt: skip
    return html_page("Candidate comparison", body)


def relative_links(prefix_uri: str, comparison: Mapping[str, Any]) -> dict[str, str]:
    """Candidate -> its report's path relative to a page under `prefix_uri` (reports in the same
    bucket; others keep their s3:// URI): links that work in the bucket and in a synced copy."""
    bucket, prefix = split_s3_uri(prefix_uri.rstrip("/") + "/")
    links = {}
    for row in comparison["candidates"]:
        uri = row["html_report_uri"]
        if uri:
            report_bucket, key = split_s3_uri(uri)
            same = report_bucket == bucket
            links[row["name"]] = posixpath.relpath(key, prefix or ".") if same else uri
    return links


def write_comparison(s3, prefix_uri: str, comparison: Mapping[str, Any]) -> dict[str, str]:
    """Uploads comparison.json and comparison.html under the s3:// prefix `prefix_uri`; their
    URIs as {"comparison_uri", "html_uri"}."""
    bucket, prefix = split_s3_uri(prefix_uri.rstrip("/") + "/")
    page = render_comparison_html(comparison, relative_links(prefix_uri, comparison))
    uploads = {
        "comparison.json": (json.dumps(comparison, indent=2).encode(), "application/json"),
        "comparison.html": (page.encode(), "text/html"),
    }
    for name, (body, content_type) in uploads.items():
        s3.put_object(Bucket=bucket, Key=prefix + name, Body=body, ContentType=content_type)
    return {
        "comparison_uri": f"s3://{bucket}/{prefix}comparison.json",
        "html_uri": f"s3://{bucket}/{prefix}comparison.html",
    }
