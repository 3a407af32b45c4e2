"""The model-run pages as HTML (pure): a run's page and the history across runs.

`object_url(run_id, s3_uri)` turns an S3 object of the run into the plugin's URL for it, so the
pages never link S3 directly (the plugin streams it, see app.py).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from sagemaker_lifecycle import charts
from sagemaker_lifecycle.gate import STEP_IN_DETAILS
from sagemaker_lifecycle.job_metrics import trial_table
from sagemaker_lifecycle.ui.records import RunDetails, RunRecord, history_rows

ObjectUrl = Callable[[str, str], str]
# Colour per rule status: green passed, red found issues, orange could not vouch, grey waiting.
STATUS_COLOURS = {
    "NoIssuesFound": "#1b7f3b",
    "IssuesFound": "#c62828",
    "Error": "#e65100",
    "Stopped": "#e65100",
    "InProgress": "#616161",
    "Stopping": "#616161",
    "NotReported": "#9e9e9e",
}
UNKNOWN_STATUS_COLOUR = "#6a1b9a"
STYLE = (
    "body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;"
    "margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;"
    "vertical-align:top}section{margin-bottom:2em}.status{color:#fff;font-weight:bold;"
    "border-radius:3px;padding:1px 6px}.problems{color:#c62828}.muted{color:#777}"
    "img{max-width:100%}"
)


def status_badge(status: str) -> str:
    colour = STATUS_COLOURS.get(status, UNKNOWN_STATUS_COLOUR)
    return (f"<span class='status' data-status='{html.escape(status)}' "
            f"style='background:{colour}'>{html.escape(status)}</span>")  # fmt: skip


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{STYLE}</style></head><body>{body}</body></html>")  # fmt: skip


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], css: str = "") -> str:
    """Cells are HTML already (callers escape)."""
    head = "".join(f"<th>{cell}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table class='{css}'><tr>{head}</tr>{body}</table>"


def _pairs(items: Mapping[str, Any]) -> str:
    return _table(("", ""), [(html.escape(str(k)), html.escape(str(v))) for k, v in items.items()])


def _missing(what: str) -> str:
    return f"<p class='muted'>{html.escape(what)}</p>"


def dataset_section(record: RunRecord, details: RunDetails) -> str:
    dataset = record.dataset
    if not dataset:
        return _missing("The run staged no dataset.")
    counts = dataset.get("image_counts", {})
    parts = [_pairs({"snapshot": dataset.get("snapshot_id"), "classes": len(dataset["classes"]),
                     **{f"{split} images": n for split, n in counts.items()},
                     "choice": dataset.get("snapshot_choice", ""),
                     "reused": dataset.get("reused_snapshot")})]  # fmt: skip
    entry = details.catalog_entry
    if entry:
        published = entry.get("published_by", {})
        parts.append("<h3>Catalog entry</h3>" + _pairs({
            "source": entry.get("source"), "published at": entry.get("published_at"),
            "as of": entry.get("as_of"), "published by run": published.get("run_id"),
            "manifest": entry.get("manifest_uri"),
        }))  # fmt: skip
    return "".join(parts)


def candidates_section(record: RunRecord, object_url: ObjectUrl) -> str:
    """The comparison once compare has run (sagemaker_lifecycle.comparison.compare_candidates'
    dict); before, each candidate's task states."""
    if not record.candidates and not record.comparison:
        return _missing("No candidate has started in this run.")
    if not record.comparison:
        return _table(
            ("#", "candidate", "task states", "report"),
            [(str(c.map_index), html.escape(c.name),
              html.escape(", ".join(f"{task}: {state}" for task, state in c.task_states)),
              _report_link(record, (c.evaluation or {}).get("html_report_uri"), object_url))
             for c in record.candidates],
            "candidates",
        )  # fmt: skip
    comparison = record.comparison
    rows, dropped, top_k = comparison["candidates"], comparison["dropped"], comparison["top_k_key"]
    table = _table(
        ("rank", "candidate", "accuracy", html.escape(top_k.replace("_", " ")), "macro F1",
         "model size", "ms per image", "report", "outcome"),
        [(str(row["rank"]), html.escape(row["name"]), _number(row["accuracy"], "{:.4f}"),
          _number(row[top_k], "{:.4f}"), _number(row["macro_f1"], "{:.4f}"),
          _number(row["model_bytes"], "{:.1f} MB", scale=1e-6),
          _number(row["seconds_per_image"], "{:.1f}", scale=1000),
          _report_link(record, row["html_report_uri"], object_url),
          _outcome(row["name"], comparison["winner"], dropped))
         for row in rows]
        # compare scores no dropped candidate: each is a row of its own, with its reason
        + [("", html.escape(name), "", "", "", "", "", "", _outcome(name, None, dropped))
           for name in dropped],
        "candidates",
    )  # fmt: skip
    link = (record.compared or {}).get("html_uri")
    return table + (f"<p>{_report_link(record, link, object_url, 'Comparison report')}</p>"
                    if link else "")  # fmt: skip


def _number(value: float | None, form: str, scale: float = 1) -> str:
    return "" if value is None else html.escape(form.format(value * scale))


def _outcome(name: str, winner: str | None, dropped: Mapping[str, str]) -> str:
    if name == winner:
        return "<strong class='winner'>winner</strong>"
    return f"dropped: {html.escape(dropped[name])}" if name in dropped else ""


def _report_link(record: RunRecord, uri: str | None, object_url: ObjectUrl,
                 text: str = "Evaluation report") -> str:  # fmt: skip
    if not uri:
        return ""
    return f"<a href='{html.escape(object_url(record.run_id, uri))}'>{html.escape(text)}</a>"


def tuning_section(record: RunRecord, details: RunDetails) -> str:
    tuning = record.tuning
    if not tuning:
        return _missing("No tuning job completed in this run.")
    trials = trial_table(details.trials, tuning)
    table = _table(
        ("#", "trial", "status", html.escape(trials.metric), "hyperparameters"),
        [(str(row["number"]) + (" (best)" if row is trials.best else ""), html.escape(row["name"]),
          html.escape(row["status"]),
          "" if row["objective"] is None else f"{row['objective']:.4f}",
          html.escape(", ".join(f"{k}={v}" for k, v in sorted(row["hyperparameters"].items()))))
         for row in trials.rows],
        css="trials",
    )  # fmt: skip
    return (f"<p>Tuning job {html.escape(tuning['TuningJobName'])}; best trial "
            f"{html.escape(tuning['BestTrainingJobName'])}.</p>"
            f"{charts.tuning_chart(trials)}{table}")  # fmt: skip


def training_section(record: RunRecord, details: RunDetails) -> str:
    training = record.training
    if not training:
        return _missing("No training job completed in this run.")
    parts = [
        f"<p>Training job {html.escape(training['TrainingJobName'])}.</p>",
        _pairs(training.get("FinalMetrics", {})),
        charts.training_curves(details.curves),
    ]
    if details.log_tail:
        log = html.escape("\n".join(details.log_tail))
        parts.append(f"<h3 id='training-log'>Training log (last lines)</h3><pre>{log}</pre>")
    return "".join(parts)


def gate_section(record: RunRecord, object_url: ObjectUrl) -> str:
    verdict = record.verdict
    if not verdict:
        return _missing("The gate has not decided in this run.")
    rows = [
        (html.escape(o["rule"]), html.escape(o["kind"]), status_badge(o["status"]),
         _step(o["details"]), html.escape(o["policy"]),
         html.escape(o["details"].strip().replace("\n", " ")))
        for o in verdict["outcomes"]
    ]  # fmt: skip
    parts = [
        f"<p>Verdict: <strong class='verdict'>{html.escape(verdict['decision'])}</strong></p>",
        _table(("rule", "kind", "status", "step", "policy", "finding"), rows, "rules"),
    ]
    parts += [f"<p>{html.escape(reason)}</p>" for reason in verdict.get("reasons", [])]
    report = verdict.get("profiler_report")
    if report:
        parts.append(f"<p><a href='{html.escape(object_url(record.run_id, report))}'>"
                     "Profiler report</a></p>")  # fmt: skip
    parts.append(f"<p>Approval: {html.escape(_approval(record))}</p>")
    return "".join(parts)


def _step(details: str) -> str:
    found = STEP_IN_DETAILS.search(details)
    return found.group(1) if found else ""


def _approval(record: RunRecord) -> str:
    """Whether a person was asked, and what they (or the timeout's default) answered."""
    answer = record.approval
    if answer:
        user = (answer.get("responded_by_user") or {}).get("name") or "the timeout's default"
        return f"asked; {', '.join(answer.get('chosen_options', []))} by {user}"
    if record.approval_state == "success":
        return "not needed (no approve rule found issues)"
    return f"task {record.approval_state or 'not run'}"


def evaluation_section(record: RunRecord, details: RunDetails, object_url: ObjectUrl) -> str:
    evaluation = record.evaluation
    if not evaluation:
        return _missing("The run did not evaluate a model.")
    headline = {key: (f"{value:.4f}" if isinstance(value, float) else value)
                for key, value in evaluation.items() if not key.endswith("uri")}  # fmt: skip
    parts = [
        _pairs(headline),
        f"<p>{_report_link(record, evaluation['html_report_uri'], object_url)}</p>",
    ]
    report = details.report
    if report:
        parts.append(
            "<h3>Confusion matrix</h3>"
            + charts.confusion_matrix(report["confusion_matrix"], report["classes"])
        )
        parts.append("<h3>Per class</h3>" + _table(
            ("class", "precision", "recall", "F1", "support"),
            [(html.escape(name), f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}",
              str(c["support"])) for name, c in report["per_class"].items()],
            "per-class",
        ))  # fmt: skip
    if details.pictures:
        parts.append("<h3>Explanations</h3>" + "".join(
            f"<figure><img src='{html.escape(object_url(record.run_id, uri))}' "
            f"alt='{html.escape(uri.rsplit('/', 1)[-1])}'><figcaption>"
            f"{html.escape(uri.rsplit('/', 1)[-1])}</figcaption></figure>"
            for uri in details.pictures
        ))  # fmt: skip
    return "".join(parts)


def deployment_section(record: RunRecord) -> str:
    if not record.endpoint:
        return _missing("This run deployed no endpoint.")
    model = record.model or {}
    return _pairs(
        {
            "endpoint": record.endpoint["EndpointName"],
            "endpoint config": record.endpoint["EndpointConfigName"],
            "previous config": record.endpoint.get("PreviousEndpointConfigName"),
            "model": model.get("ModelName"),
            "model data": model.get("ModelDataUrl"),
        }
    )


def run_page(record: RunRecord, details: RunDetails, object_url: ObjectUrl, base: str) -> str:
    """One run: dataset, candidates, then the shown candidate's tuning, training, gate and
    evaluation, and the deployment."""
    sections = [
        ("dataset", "Dataset snapshot", dataset_section(record, details)),
        ("candidates", "Candidates", candidates_section(record, object_url)),
        ("tuning", "Tuning", tuning_section(record, details)),
        ("training", "Training", training_section(record, details)),
        ("rules", "Rule gate", gate_section(record, object_url)),
        ("evaluation", "Evaluation", evaluation_section(record, details, object_url)),
        ("deployment", "Endpoint and model", deployment_section(record)),
    ]
    problems = "".join(f"<p class='problems'>{html.escape(p)}</p>" for p in details.problems)
    body = (f"<h1>Model run {html.escape(record.run_id)}</h1><p>State: {html.escape(record.state)}"
            f" &middot; <a href='{html.escape(base)}/'>history of all runs</a></p>"
            f"<p class='shown'>{html.escape(record.shown_because)}</p>{problems}"
            + "".join(f"<section id='{anchor}'><h2>{title}</h2>{content}</section>"
                      for anchor, title, content in sections))  # fmt: skip
    return _page(f"Model run {record.run_id}", body)


def history_page(records: list[RunRecord], base: str) -> str:
    """Every run: its headline metric (the winner's) as a line chart, its candidates and the
    winner, rule outcomes as a grid, deployments."""
    rows = history_rows(records)
    measured = [(i, row["metric"][1]) for i, row in enumerate(rows, 1) if row["metric"]]
    names = sorted({row["metric"][0] for row in rows if row["metric"]})
    chart = charts.line_chart({" / ".join(names) or "metric": measured}, "run (oldest first)",
                              " / ".join(names) or "metric")  # fmt: skip
    rules = sorted({rule for row in rows for rule in row["rules"]})
    grid = _table(
        ("#", "run", "state", "metric", "candidates", *map(html.escape, rules), "deployed"),
        [(str(i), f"<a href='{html.escape(base)}/runs/{quote(row['run_id'], safe='')}'>"
                  f"{html.escape(row['run_id'])}</a>",
          html.escape(row["state"]),
          f"{row['metric'][0]} {row['metric'][1]:.4f}" if row["metric"] else "",
          str(row["candidates"]) + (f", winner {html.escape(row['winner'])}"
                                    if row["winner"] else ""),
          *(status_badge(row["rules"][rule]) if rule in row["rules"] else "" for rule in rules),
          "yes" if row["deployed"] else "no")
         for i, row in enumerate(rows, 1)],
        "history",
    )  # fmt: skip
    body = (f"<h1>Model history</h1><section id='metric'>{chart}</section>"
            f"<section id='grid'>{grid}</section>")  # fmt: skip
    return _page("Model history", body)
