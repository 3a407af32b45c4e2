"""Scoring a batch transform: join each `<key>.out` to its input's label, compute the metrics.

The label of an input image is its class folder (`.../<NNN.Class_name>/<file>`). Outputs are the
JSON that sagemaker_code/inference.py writes for `Accept: application/json`:
`{"predictions": [{"label": ..., "probability": ...}, ...]}`, most probable first. An output is
matched to its input by relative path (with or without the input's sub-folders, since SageMaker's
exact output key rule is not documented); every input must have exactly one output.

The report (accuracy, top-k accuracy, per-class precision/recall/F1, macro F1, the confusion
matrix) is written as `report.json`, `report.md`, `report.html` and `confusion_matrix.png` under a
prefix the caller chooses (the pipeline uses `s3://<bucket>/evaluation/<transform job>/`). The
HTML page is static (inline SVG drawn by `charts`, as the plugin's model-run page draws them; no
script): headline numbers, per-class table, the confusion matrix, and, given what the run's jobs
measured (`job_metrics`), the training curves and the tuning chart, then a link to the
explanation report that the explanation job writes into `explanations/`.

Top-k accuracy is the share of images whose true class is among the k most probable predicted
classes, with k = min(top_k, number of classes) and top_k = evaluation.top_k (5 by default, the
figure ImageNet-style benchmarks quote). It is reported under the key `top_<k>_accuracy`:
`top_5_accuracy` for the 133 dog breeds, `top_2_accuracy` for a two-class dataset.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlparse

from PIL import Image, ImageDraw

from sagemaker_lifecycle import charts
from sagemaker_lifecycle.job_metrics import JobMetrics, trial_table

OUTPUT_SUFFIX = ".out"
MAX_CELL_PIXELS = 40
MATRIX_PIXELS = 800  # the confusion matrix picture is at most about this wide
MAX_LABELLED_CLASSES = 40
TOP_K = 5


class EvaluationError(ValueError):
    """The transform outputs cannot be scored; the message says which and why."""


def split_s3_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    return parsed.netloc, parsed.path.lstrip("/")


def list_keys(s3, uri: str) -> list[str]:
    """Every object key under the s3:// prefix `uri`, sorted."""
    bucket, prefix = split_s3_uri(uri)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def label_of(key: str) -> str:
    """The class of an image key: the name of the folder holding it."""
    return PurePosixPath(key).parent.name


def first_image(s3, uri: str) -> tuple[str, bytes]:
    """(s3 URI, bytes) of the first object under `uri`."""
    bucket, _ = split_s3_uri(uri)
    keys = list_keys(s3, uri)
    if not keys:
        raise EvaluationError(f"no object under {uri}")
    body = s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read()
    return f"s3://{bucket}/{keys[0]}", body


def match_outputs(input_keys: list[str], input_prefix: str, output_keys: list[str],
                  output_prefix: str) -> dict[str, str]:  # fmt: skip
    """input key -> output key; EvaluationError naming inputs without (or with two) outputs."""
    by_relative = {key[len(input_prefix) :]: key for key in input_keys}
    matched: dict[str, str] = {}
    for output_key in output_keys:
        if not output_key.endswith(OUTPUT_SUFFIX):
            continue
        relative = output_key[len(output_prefix) : -len(OUTPUT_SUFFIX)]
        candidates = [
            key for rel, key in by_relative.items()
            if relative == rel or relative.endswith("/" + rel) or rel.endswith("/" + relative)
        ]  # fmt: skip
        if len(candidates) != 1:
            continue  # not one of ours (e.g. another run's output under a shared prefix)
        if candidates[0] in matched:
            raise EvaluationError(f"{candidates[0]} has two outputs: {output_key}, "
                                  f"{matched[candidates[0]]}")  # fmt: skip
        matched[candidates[0]] = output_key
    missing = [key for key in input_keys if key not in matched]
    if missing:
        raise EvaluationError(
            f"{len(missing)} of {len(input_keys)} inputs have no transform output, e.g. "
            + ", ".join(missing[:5])
        )
    return matched


def ranked_labels(output: bytes, key: str) -> list[str]:
    """The labels of one transform output, most probable first."""
    try:
        predictions = json.loads(output)["predictions"]
        return [prediction["label"] for prediction in predictions]
    except (ValueError, KeyError, TypeError) as error:
        raise EvaluationError(
            f"{key} is not inference.py's JSON ({{'predictions': [{{'label': ...}}]}}): {error}"
        ) from error


def score(
    pairs: list[tuple[str, list[str]]], classes: list[str], top_k: int = TOP_K
) -> dict[str, Any]:
    """Metrics over (true label, ranked predicted labels) pairs; `classes` fixes the order.

    Top-k accuracy uses k = min(`top_k`, number of classes); EvaluationError when a ranking holds
    fewer labels than that (the endpoint's CLASSIFIER_TOP_K is too small).
    """
    index = {name: i for i, name in enumerate(classes)}
    matrix = [[0] * len(classes) for _ in classes]
    top_k = min(top_k, len(classes))
    for truth, ranking in pairs:
        if truth not in index or not ranking or ranking[0] not in index:
            raise EvaluationError(f"label {truth!r} or prediction {ranking[:1]} is not a class")
        if len(ranking) < top_k:
            raise EvaluationError(
                f"{len(ranking)} predicted classes for a {truth} image; top-{top_k} accuracy "
                f"needs {top_k} (raise CLASSIFIER_TOP_K, evaluation.top_k)"
            )
        matrix[index[truth]][index[ranking[0]]] += 1
    per_class = {}
    for i, name in enumerate(classes):
        true_positive = matrix[i][i]
        predicted = sum(row[i] for row in matrix)
        support = sum(matrix[i])
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    count = len(pairs)
    correct = sum(matrix[i][i] for i in range(len(classes)))
    return {
        "count": count,
        "accuracy": correct / count if count else 0.0,
        f"top_{top_k}_accuracy": (
            sum(truth in ranking[:top_k] for truth, ranking in pairs) / count if count else 0.0
        ),
        "macro_f1": sum(c["f1"] for c in per_class.values()) / len(classes) if classes else 0.0,
        "per_class": per_class,
        "classes": classes,
        "confusion_matrix": matrix,
    }


def render_confusion_matrix(matrix: list[list[int]], classes: list[str]) -> bytes:
    """A PNG of the row-normalised confusion matrix (rows: true class, columns: predicted)."""
    n = len(classes)
    cell = max(2, min(MAX_CELL_PIXELS, MATRIX_PIXELS // max(n, 1)))
    margin = 160 if n <= MAX_LABELLED_CLASSES else 10
    image = Image.new("RGB", (margin + n * cell + 10, margin + n * cell + 10), "white")
    draw = ImageDraw.Draw(image)
    for row, counts in enumerate(matrix):
        total = sum(counts) or 1
        for column, value in enumerate(counts):
            shade = 255 - round(255 * value / total)
            x, y = margin + column * cell, margin + row * cell
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=(shade, shade, 255))
    if n <= MAX_LABELLED_CLASSES:
        for i, name in enumerate(classes):
            draw.text((4, margin + i * cell + cell // 3), name[:24], fill="black")
            draw.text((margin + i * cell + cell // 3, margin - 14), str(i + 1), fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def top_k_accuracy(report: Mapping[str, Any]) -> tuple[str, float]:
    """(`top_<k>_accuracy`, its value) of a `score` report."""
    return next((key, value) for key, value in report.items()
                if key.startswith("top_") and key.endswith("_accuracy"))  # fmt: skip


def _explanations_section(folder: str | None) -> str:
    """The link to the explanation report, which the explanation job writes into `folder`
    beside this page (after this page is written: a run that stops earlier leaves it dangling)."""
    if not folder:
        return ""
    return (
        f"<h2>Explanations</h2><p>Where the model looked: <a href='{html.escape(folder)}/"
        "report.html'>saliency maps</a> of a sample per class, of the misclassified images and "
        "of the most confused class pairs above, with the top-k answers and a deletion test of "
        "their faithfulness.</p>"
    )


def _jobs_section(measured: JobMetrics | None, tuning: Mapping | None) -> str:
    """The training curves and the tuning chart of the run whose model this report scores."""
    if measured is None:
        return ""
    problems = "".join(f"<p class='problem'>{html.escape(p)}</p>" for p in measured.problems)
    parts = ["<h2>Training</h2><p>Loss and accuracy per epoch of the training job.</p>", problems,
             charts.training_curves(measured.curves)]  # fmt: skip
    if tuning:
        trials = trial_table(measured.trials, tuning)
        parts.append(f"<h2>Tuning</h2><p>{html.escape(trials.metric)} of each trial of tuning job "
                     f"{html.escape(tuning['TuningJobName'])}; the best one "
                     f"({html.escape(tuning['BestTrainingJobName'])}) ringed.</p>"
                     + charts.tuning_chart(trials))  # fmt: skip
    return "".join(parts)


def html_page(title: str, body: str) -> str:
    """A self-contained page in the reports' style: `title` (plain text) as its title and
    heading, then `body` (HTML)."""
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}.problem{color:#c62828}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def render_html_report(
    report: Mapping[str, Any],
    explanations_folder: str | None = None,
    measured: JobMetrics | None = None,
    tuning: Mapping | None = None,
) -> str:
    """A self-contained HTML page: headline numbers, per-class table, the confusion matrix; given
    `measured` (what the run's jobs measured) the training curves, and the tuning chart of the
    `tuning` job (its XCom) when the run tuned; given `explanations_folder`, a link to the
    explanation report in that folder beside it."""
    top_key, top_value = top_k_accuracy(report)
    k = top_key.removeprefix("top_").removesuffix("_accuracy")
    headline = [("images", str(report["count"])), ("accuracy", f"{report['accuracy']:.4f}"),
                (f"top-{k} accuracy", f"{top_value:.4f}"),
                ("macro F1", f"{report['macro_f1']:.4f}")]  # fmt: skip
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{c['precision']:.3f}</td><td>{c['recall']:.3f}</td>"
        f"<td>{c['f1']:.3f}</td><td>{c['support']}</td></tr>"
        for name, c in report["per_class"].items()
    )
    return html_page(
        "Evaluation report",
        "<table>"
        + "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in headline)
        + "</table><h2>Per class</h2><table><tr><th>class</th><th>precision</th><th>recall</th>"
        f"<th>F1</th><th>support</th></tr>{rows}</table>"
        "<h2>Confusion matrix</h2><p>Rows: true class; columns: predicted class; shade: share of "
        "the row.</p>"
        + charts.confusion_matrix(report["confusion_matrix"], report["classes"])
        + _jobs_section(measured, tuning)
        + _explanations_section(explanations_folder),
    )


def evaluate_transform(
    s3,
    input_uri: str,
    output_uri: str,
    classes: list[str],
    report_uri: str,
    top_k: int = TOP_K,
    explanations_folder: str | None = None,
    measured: JobMetrics | None = None,
    tuning: Mapping | None = None,
) -> dict[str, Any]:
    """Score the transform of `input_uri` written to `output_uri` (top-k with k = min(`top_k`,
    classes)); the report, also uploaded under the s3:// prefix `report_uri`. The returned
    report names the uploads: report_uri (JSON), html_report_uri, confusion_matrix_uri. The HTML
    draws the curves and trials in `measured` (of the `tuning` job), and links to the
    explanation report in `explanations_folder` under `report_uri`, when given."""
    _, input_prefix = split_s3_uri(input_uri)
    bucket, output_prefix = split_s3_uri(output_uri.rstrip("/") + "/")
    matched = match_outputs(
        list_keys(s3, input_uri), input_prefix, list_keys(s3, output_uri), output_prefix
    )
    pairs = []
    for input_key, output_key in sorted(matched.items()):
        body = s3.get_object(Bucket=bucket, Key=output_key)["Body"].read()
        pairs.append((label_of(input_key), ranked_labels(body, output_key)))
    report = score(pairs, classes, top_k)
    report_bucket, report_prefix = split_s3_uri(report_uri.rstrip("/") + "/")
    report["report_uri"] = f"s3://{report_bucket}/{report_prefix}report.json"
    report["html_report_uri"] = f"s3://{report_bucket}/{report_prefix}report.html"
    report["confusion_matrix_uri"] = f"s3://{report_bucket}/{report_prefix}confusion_matrix.png"
    picture = render_confusion_matrix(report["confusion_matrix"], classes)
    uploads = {
        "confusion_matrix.png": (picture, "image/png"),
        "report.md": (format_report(report).encode(), "text/markdown"),
        "report.html": (
            render_html_report(report, explanations_folder, measured, tuning).encode(),
            "text/html",
        ),
        "report.json": (json.dumps(report, indent=2).encode(), "application/json"),
    }  # fmt: skip
    for name, (body, content_type) in uploads.items():
        s3.put_object(
            Bucket=report_bucket, Key=report_prefix + name, Body=body, ContentType=content_type
        )
    return report


def format_report(report: Mapping[str, Any]) -> str:
    """The headline numbers and the per-class table, for task logs."""
    top_key, top_value = top_k_accuracy(report)
    headline = [f"images: {report['count']}", f"accuracy: {report['accuracy']:.4f}",
                f"{top_key}: {top_value:.4f}", f"macro F1: {report['macro_f1']:.4f}"]  # fmt: skip
    width = max(len(name) for name in report["classes"]) if report["classes"] else 5
    rows = [f"{'class'.ljust(width)}  precision  recall  f1      support"] + [
        f"{name.ljust(width)}  {c['precision']:9.3f}  {c['recall']:6.3f}  {c['f1']:.3f}  "
        f"{c['support']:7d}"
        for name, c in report["per_class"].items()
    ]
    return (
        "Evaluation: " + ", ".join(headline) + "\n" + "\n".join(rows)
        + f"\nreport: {report['report_uri']} (HTML: {report['html_report_uri']})"
        + f"\nconfusion matrix: {report['confusion_matrix_uri']}"
    )  # fmt: skip
