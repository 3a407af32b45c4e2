"""The model-run pages' pure parts: records from XComs, the S3 key policy, charts and pages."""

from __future__ import annotations

import dataclasses
import json
import re
from types import SimpleNamespace
from xml.etree import ElementTree

import pytest
from airflow.models.taskinstancekey import TaskInstanceKey
from sagemaker_lifecycle import charts
from sagemaker_lifecycle.gate import Decision, RuleOutcome, Verdict
from sagemaker_lifecycle.job_metrics import trial_table
from sagemaker_lifecycle.operators import TrainingJobOperator
from sagemaker_lifecycle.sensors import RuleGateSensor
from sagemaker_lifecycle.ui import links, pages
from sagemaker_lifecycle.ui.links import (
    EvaluationReportLink,
    RuleTableLink,
    SageMakerJobLink,
    TrainingLogLink,
    model_run_url,
)
from sagemaker_lifecycle.ui.records import (
    APPROVAL_TASK,
    CANDIDATE_SOURCES,
    SOURCES,
    UNMAPPED,
    CandidateRecord,
    RunDetails,
    RunRecord,
    checked_key,
    history_rows,
    run_record,
)

PREFIXES = ("jobs/", "evaluation/", "datasets/catalog/")
CLASSES = ["001.Affenpinscher", "002.Afghan_hound", "003.Airedale_terrier"]


def verdict(decision: Decision, **statuses: str) -> dict:
    outcomes = [
        RuleOutcome(rule, status, f"{rule} fired at step 7" if status == "IssuesFound" else "",
                    policy="block" if rule == "VanishingGradient" else "warn")
        for rule, status in statuses.items()
    ]  # fmt: skip
    return {**Verdict(decision, outcomes, []).as_dict(), "profiler_report": None}


SETTINGS = {"aws": {"bucket": "bucket"}, "dataset": {"s3_prefix": "datasets"},
            "candidates": [{"name": "resnet50", "hyperparameters": {}},
                           {"name": "mobilenet_v2", "hyperparameters": {}}]}  # fmt: skip


def run_xcoms(**parts) -> dict:
    """Run-level XComs keyed as the reader keys them: (task id, key, map index -1)."""
    return {(*SOURCES[name], UNMAPPED): value for name, value in parts.items()}


def candidate_xcoms(map_index: int, **parts) -> dict:
    """One candidate's XComs: its tasks in the mapped group, at its map index."""
    return {(*CANDIDATE_SOURCES[name], map_index): value for name, value in parts.items()}


def evaluation(name: str, map_index: int, accuracy: float) -> dict:
    """evaluate's XCom, as the mapped task pushes it."""
    prefix = f"s3://bucket/evaluation/transform-{map_index}"
    return {"candidate": name, "map_index": map_index, "accuracy": accuracy,
            "top_3_accuracy": 1.0, "macro_f1": 0.8, "count": 12,
            "report_uri": f"{prefix}/report.json",
            "html_report_uri": f"{prefix}/report.html"}  # fmt: skip


def recorded_run(run_id: str, run_after: str, accuracy: float | None, deployed: bool,
                 **statuses: str) -> RunRecord:  # fmt: skip
    """A run of one candidate before compare, as its XComs would describe it (the shapes the
    tasks return)."""
    xcoms = {
        **run_xcoms(settings={"aws": {"bucket": "bucket"}, "dataset": {"s3_prefix": "datasets"}}),
        **candidate_xcoms(0, training={"TrainingJobName": f"train-{run_id}",
                                       "FinalMetrics": {"valid_acc": 0.5}},
                          verdict=verdict(Decision.DEPLOY, **statuses)),
    }  # fmt: skip
    if deployed:
        xcoms |= run_xcoms(endpoint={"EndpointName": "ep", "EndpointConfigName": f"cfg-{run_id}",
                                     "PreviousEndpointConfigName": None})  # fmt: skip
    if accuracy is not None:
        xcoms |= candidate_xcoms(0, evaluation=evaluation("resnet50", 0, accuracy))
    return run_record(run_id, "success", run_after, xcoms, {(APPROVAL_TASK, 0): "success"})


def two_candidate_run(run_id: str = "r2c") -> RunRecord:
    """resnet50 (map index 0) blocked by its gate, mobilenet_v2 (1) evaluated and the winner."""
    winner = evaluation("mobilenet_v2", 1, 0.82)
    comparison = {
        "metric": "accuracy", "winner": "mobilenet_v2", "top_k_key": "top_3_accuracy",
        "classes": CLASSES, "per_class_f1": {}, "confusion_differences": [],
        "candidates": [{"name": "mobilenet_v2", "accuracy": 0.82, "top_k_key": "top_3_accuracy",
                        "top_3_accuracy": 1.0, "macro_f1": 0.8, "count": 12,
                        "model_bytes": 9_400_000, "seconds_per_image": 0.0125,
                        "report_uri": winner["report_uri"],
                        "html_report_uri": winner["html_report_uri"],
                        "rank": 1, "metric_value": 0.82}],
        "dropped": {"resnet50": "blocked by the gate: VanishingGradient found issues"},
    }  # fmt: skip
    xcoms = {
        **run_xcoms(settings=SETTINGS, compared={
            "winner": {"candidate": "mobilenet_v2", "map_index": 1, "report": winner},
            "comparison": comparison,
            "comparison_uri": "s3://bucket/evaluation/compare-r2c/comparison.json",
            "html_uri": "s3://bucket/evaluation/compare-r2c/comparison.html"}),
        **candidate_xcoms(0, training={"TrainingJobName": "dogbreed-train-r2c-0",
                                       "FinalMetrics": {"valid_acc": 0.3}},
                          verdict=verdict(Decision.BLOCK, VanishingGradient="IssuesFound")),
        **candidate_xcoms(1, training={"TrainingJobName": "dogbreed-train-r2c-1",
                                       "FinalMetrics": {"valid_acc": 0.7}},
                          verdict=verdict(Decision.DEPLOY, VanishingGradient="NoIssuesFound",
                                          Overfit="IssuesFound"),
                          evaluation=winner),
    }  # fmt: skip
    states = {("candidate.gate.gate_on_rules", 0): "failed",
              (APPROVAL_TASK, 0): "upstream_failed",
              ("candidate.gate.gate_on_rules", 1): "success",
              (APPROVAL_TASK, 1): "success"}  # fmt: skip
    return run_record(run_id, "success", "2026-12-02", xcoms, states)


def run_before_compare(compare_state: str | None = None) -> RunRecord:
    """A run in progress: candidate 0's gate failed, candidate 1 still training (compare has
    `compare_state`, None before it is scheduled)."""
    xcoms = {
        **run_xcoms(settings=SETTINGS),
        **candidate_xcoms(0, training={"TrainingJobName": "dogbreed-train-rip-0",
                                       "FinalMetrics": {"valid_acc": 0.3}},
                          verdict=verdict(Decision.BLOCK, VanishingGradient="IssuesFound")),
    }  # fmt: skip
    states = {("candidate.train.tune_hyperparameters", 0): "success",
              ("candidate.train.train_best_model", 0): "success",
              ("candidate.gate.gate_on_rules", 0): "failed",
              ("candidate.train.tune_hyperparameters", 1): "success",
              ("candidate.train.train_best_model", 1): "running",
              # the group before it expanded: no candidate's row
              ("candidate.evaluate.evaluate", UNMAPPED): "scheduled",
              ("compare.compare_candidates", UNMAPPED): compare_state}  # fmt: skip
    return run_record("rip", "running", "2026-12-03", xcoms, states)


def object_url(run_id: str, uri: str) -> str:
    return f"/model-runs/runs/{run_id}/objects/{uri.removeprefix('s3://').partition('/')[2]}"


def parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)


SVG = "{http://www.w3.org/2000/svg}"


def test_a_record_takes_each_part_from_its_task_xcom():
    record = recorded_run("r1", "2026-12-01T00:00:00", 0.75, True, Overfit="NoIssuesFound")
    assert record.bucket == "bucket"
    assert record.deployed and record.headline_metric == ("accuracy", 0.75)
    assert record.rule_statuses == {"Overfit": "NoIssuesFound"}
    assert record.approval_state == "success"
    unevaluated = recorded_run("r2", "2026-12-02T00:00:00", None, False)
    assert unevaluated.headline_metric == ("valid_acc", 0.5) and not unevaluated.deployed


@pytest.mark.parametrize("key", [
    "jobs/train-1/rule-output/ProfilerReport/profiler-output/profiler-report.html",
    "evaluation/transform-1/report.html",
    "datasets/catalog/0123456789abcdef.json",
])  # fmt: skip
def test_keys_under_the_project_prefixes_are_served(key):
    assert checked_key(key, PREFIXES) == key


@pytest.mark.parametrize(("key", "why"), [
    ("evaluation/../secrets/key.pem", "'..' segment"),
    ("evaluation/./report.html", "'.' or '..' segment"),
    ("evaluation//report.html", "empty"),
    ("jobs/..", "'.' or '..' segment"),
    ("/evaluation/report.html", "not a plain S3 key"),
    ("evaluation\\..\\x", "not a plain S3 key"),
    ("", "not a plain S3 key"),
    ("datasets/train/001.A/1.jpg", "outside the project's prefixes"),
    ("other/evaluation/report.html", "outside the project's prefixes"),
])  # fmt: skip
def test_keys_outside_the_prefixes_or_with_traversal_are_refused_naming_why(key, why):
    with pytest.raises(ValueError, match=re.escape(why)):
        checked_key(key, PREFIXES)


def test_the_tuning_chart_has_a_point_per_trial_and_rings_the_best():
    trials = [
        {"TrainingJobName": f"t-{n}", "TrainingJobStatus": "Completed", "CreationTime": f"0{n}",
         "FinalHyperParameterTuningJobObjectiveMetric": {"Value": value},
         "TunedHyperParameters": {"lr": str(n)}}
        for n, value in ((3, 0.6), (1, 0.4), (2, 0.9))
    ]  # fmt: skip
    rows = trial_table(trials, None).rows
    assert [(row["number"], row["name"]) for row in rows] == [(1, "t-1"), (2, "t-2"), (3, "t-3")]
    record = RunRecord("r", "success", "x", candidates=[CandidateRecord(0, "resnet50", tuning={
        "TuningJobName": "tune", "BestTrainingJobName": "t-2",
        "ObjectiveMetric": {"MetricName": "valid_acc"}})])  # fmt: skip
    html = pages.tuning_section(record, RunDetails(trials=trials))
    svg = parse(re.search(r"<svg.*?</svg>", html).group(0))
    assert len(svg.findall(f"{SVG}circle[@class='point']")) == 3
    (best,) = svg.findall(f"{SVG}circle[@class='best']")
    assert "0.9" in best.find(f"{SVG}title").text
    assert "2 (best)" in html


def test_a_line_chart_places_higher_values_higher():
    svg = parse(charts.line_chart({"valid_acc": [(1, 0.2), (2, 0.8)]}, "epoch", "accuracy"))
    low, high = svg.findall(f"{SVG}circle[@class='point']")
    assert float(high.get("cy")) < float(low.get("cy"))
    assert svg.find(f"{SVG}polyline") is not None


def test_a_chart_without_data_says_so():
    assert "no data recorded" in charts.line_chart({"loss": []}, "epoch", "loss")


def test_the_confusion_matrix_has_a_cell_per_pair_with_its_count():
    matrix = [[3, 1, 0], [0, 4, 0], [2, 0, 2]]
    svg = parse(charts.confusion_matrix(matrix, CLASSES))
    cells = svg.findall(f"{SVG}rect[@class='cell']")
    assert len(cells) == 9
    assert cells[1].find(f"{SVG}title").text == (
        "true 001.Affenpinscher, predicted 002.Afghan_hound: 1"
    )
    # Shaded by the share of the row: the diagonal of a perfect row is the darkest cell.
    assert cells[4].get("fill") == "rgb(55,55,255)"
    assert [text.text for text in svg.findall(f"{SVG}text")][:9] == [
        str(n) for row in matrix for n in row]  # fmt: skip


def test_a_133_class_matrix_shrinks_its_cells_and_keeps_counts_in_the_tooltips():
    breeds = [f"{n:03d}.Breed" for n in range(1, 134)]
    matrix = [[5 if row == column else 0 for column in range(133)] for row in range(133)]
    svg = parse(charts.confusion_matrix(matrix, breeds))
    cells = svg.findall(f"{SVG}rect[@class='cell']")
    assert len(cells) == 133**2
    assert int(svg.get("width")) <= charts.MATRIX_LABEL + charts.MATRIX_PIXELS + 8
    assert cells[0].find(f"{SVG}title").text == "true 001.Breed, predicted 001.Breed: 5"
    assert len(svg.findall(f"{SVG}text")) == 2 * 133  # the class labels only, no counts


def test_the_rule_table_colours_each_status():
    record = recorded_run("r", "x", None, False, VanishingGradient="IssuesFound",
                          Overfit="NoIssuesFound", LowGPUUtilization="Error")  # fmt: skip
    html = pages.gate_section(record, object_url)
    badges = dict(re.findall(r"data-status='(\w+)' style='background:(#\w+)'", html))
    assert badges == {"IssuesFound": "#c62828", "NoIssuesFound": "#1b7f3b", "Error": "#e65100"}
    row = re.search(r"<tr><td>VanishingGradient</td>.*?</tr>", html).group(0)
    assert "<td>7</td>" in row and "fired at step 7" in row
    assert "not needed" in html


def test_a_blocked_run_still_shows_its_rule_table():
    blocked = verdict(Decision.BLOCK, VanishingGradient="IssuesFound")
    shown = CandidateRecord(0, "resnet50", verdict=blocked)
    record = RunRecord("r", "failed", "x", candidates=[shown])
    assert "<strong class='verdict'>block</strong>" in pages.gate_section(record, object_url)


def test_the_run_page_links_reports_through_the_plugin():
    record = recorded_run("r1", "x", 0.75, True, Overfit="NoIssuesFound")
    report = {"classes": CLASSES, "confusion_matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
              "per_class": {name: {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
                            for name in CLASSES}}  # fmt: skip
    details = RunDetails(report=report, pictures=["s3://bucket/evaluation/t/explain/1.png"])
    html = pages.run_page(record, details, object_url, "/model-runs")
    assert "href='/model-runs/runs/r1/objects/evaluation/transform-0/report.html'" in html
    assert "src='/model-runs/runs/r1/objects/evaluation/t/explain/1.png'" in html
    assert "class='confusion-matrix'" in html
    assert html.count("<tr><td>00") == len(CLASSES)  # the per-class rows
    anchors = ("dataset", "candidates", "tuning", "training", "rules", "evaluation", "deployment")
    for anchor in anchors:
        assert f"<section id='{anchor}'>" in html


def test_recorded_values_are_escaped():
    record = recorded_run("<script>", "x", None, False, **{"Over<b>fit": "NoIssuesFound"})
    html = pages.run_page(record, RunDetails(), object_url, "/model-runs")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "Over<b>fit" not in html


def test_the_history_has_one_point_per_measured_run_oldest_first_and_a_rule_grid():
    records = [
        recorded_run("r2", "2026-12-08", 0.9, True, Overfit="NoIssuesFound"),
        recorded_run("r1", "2026-12-01", 0.7, False, Overfit="IssuesFound"),
        recorded_run("r3", "2026-12-15", None, False, Overfit="Error"),
    ]
    assert [row["run_id"] for row in history_rows(records)] == ["r1", "r2", "r3"]
    html = pages.history_page(records, "/model-runs")
    svg = parse(re.search(r"<svg.*?</svg>", html).group(0))
    points = svg.findall(f"{SVG}circle[@class='point']")
    assert len(points) == 3  # two accuracies and r3's valid_acc
    grid = re.search(r"<table class='history'>.*?</table>", html).group(0)
    assert grid.count("data-status=") == 3
    assert re.findall(r"<td>(yes|no)</td></tr>", grid) == ["no", "yes", "no"]
    assert "href='/model-runs/runs/r1'" in grid


def test_the_record_is_the_winners_once_compare_has_run():
    record = two_candidate_run()
    assert [(c.map_index, c.name) for c in record.candidates] == [(0, "resnet50"),
                                                                  (1, "mobilenet_v2")]  # fmt: skip
    assert record.shown.name == "mobilenet_v2"
    assert record.training["TrainingJobName"] == "dogbreed-train-r2c-1"
    assert record.headline_metric == ("accuracy", 0.82)
    assert record.rule_statuses == {"VanishingGradient": "NoIssuesFound", "Overfit": "IssuesFound"}
    assert record.approval_state == "success"
    assert record.shown_because == "Showing the winner by accuracy: candidate 1 (mobilenet_v2)."


def test_before_compare_the_record_is_candidate_0s_and_says_so():
    record = run_before_compare()
    assert [c.map_index for c in record.candidates] == [0, 1]
    assert record.shown.map_index == 0 and record.training["TrainingJobName"].endswith("-0")
    assert record.verdict["decision"] == "block"
    assert record.shown_because == (
        "compare_candidates has not run yet: showing candidate 0 (resnet50)."
    )
    assert "compare_candidates has not run yet" in pages.run_page(
        record, RunDetails(), object_url, "/model-runs")  # fmt: skip


def test_a_run_whose_compare_failed_says_so():
    record = run_before_compare(compare_state="failed")
    assert record.shown_because == (
        "compare_candidates failed without a winner: showing candidate 0 (resnet50)."
    )


def test_a_candidate_asked_for_is_shown_instead_of_the_winner():
    record = dataclasses.replace(two_candidate_run(), selected=0)
    assert record.training["TrainingJobName"] == "dogbreed-train-r2c-0"
    assert record.shown_because == "Showing candidate 0 (resnet50), as asked."


def test_the_candidates_table_marks_the_winner_and_says_why_the_others_were_dropped():
    html = pages.candidates_section(two_candidate_run(), object_url)
    rows = re.findall(r"<tr>(.*?)</tr>", html)
    assert rows[0] == ("<th>rank</th><th>candidate</th><th>accuracy</th><th>top 3 accuracy</th>"
                       "<th>macro F1</th><th>model size</th><th>ms per image</th>"
                       "<th>report</th><th>outcome</th>")  # fmt: skip
    winner, dropped = (re.findall(r"<td>(.*?)</td>", row) for row in rows[1:])
    assert winner == [
        "1", "mobilenet_v2", "0.8200", "1.0000", "0.8000", "9.4 MB", "12.5",
        "<a href='/model-runs/runs/r2c/objects/evaluation/transform-1/report.html'>"
        "Evaluation report</a>",
        "<strong class='winner'>winner</strong>",
    ]  # fmt: skip
    assert dropped == ["", "resnet50", "", "", "", "", "", "",
                       "dropped: blocked by the gate: VanishingGradient found issues"]  # fmt: skip
    assert ("<a href='/model-runs/runs/r2c/objects/evaluation/compare-r2c/comparison.html'>"
            "Comparison report</a>") in html  # fmt: skip


def test_before_compare_each_candidate_shows_its_task_states():
    html = pages.candidates_section(run_before_compare(), object_url)
    rows = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", html)[1:]]
    assert rows == [
        ["0", "resnet50", "train.tune_hyperparameters: success, train.train_best_model: success, "
         "gate.gate_on_rules: failed", ""],
        ["1", "mobilenet_v2",
         "train.tune_hyperparameters: success, train.train_best_model: running", ""],
    ]  # fmt: skip


def test_the_rule_table_is_the_winners():
    html = pages.gate_section(two_candidate_run(), object_url)
    assert "<strong class='verdict'>deploy</strong>" in html
    table = re.search(r"<table class='rules'>.*?</table>", html).group(0)
    assert re.findall(r"<th>(.*?)</th>", table) == [
        "rule", "kind", "status", "step", "policy", "finding"]  # fmt: skip
    assert re.findall(r"<tr><td>(\w+)</td>", table) == ["VanishingGradient", "Overfit"]
    overfit = re.search(r"<tr><td>Overfit</td>.*?</tr>", table).group(0)
    assert "data-status='IssuesFound'" in overfit and "<td>7</td>" in overfit


def test_the_history_shows_the_winners_metric_and_the_candidates():
    records = [two_candidate_run(), run_before_compare()]
    rows = history_rows(records)
    assert [(row["metric"], row["candidates"], row["winner"]) for row in rows] == [
        (("accuracy", 0.82), 2, "mobilenet_v2"), (("valid_acc", 0.3), 2, None)]  # fmt: skip
    grid = re.search(r"<table class='history'>.*?</table>", pages.history_page(records, "/m"))
    assert "<td>2, winner mobilenet_v2</td>" in grid.group(0) and "<td>2</td>" in grid.group(0)


def test_links_point_at_the_run_page_section():
    assert model_run_url("manual__2026-12-01T00:00:00+00:00", "rules") == (
        "/model-runs/runs/manual__2026-12-01T00%3A00%3A00%2B00%3A00#rules"
    )
    assert model_run_url("manual__1", "evaluation", 1) == (
        "/model-runs/runs/manual__1?candidate=1#evaluation"
    )


@pytest.fixture
def connections(monkeypatch):
    """Two Airflow AWS connections from the environment: the local runtime's and AWS's."""
    monkeypatch.setenv("AIRFLOW_CONN_LOCAL_RUNTIME", json.dumps({
        "conn_type": "aws", "extra": {"region_name": "us-east-1",
                                      "endpoint_url": "http://127.0.0.1:4570"}}))  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_ON_AWS", json.dumps({
        "conn_type": "aws", "extra": {"region_name": "eu-west-1"}}))  # fmt: skip


def gate_and_training(conn_id: str) -> tuple[RuleGateSensor, TrainingJobOperator]:
    """The gate and the training task as the DAG builds them, once the job has started."""
    gate = RuleGateSensor(task_id="candidate.gate.gate_on_rules", rules={},
                          training_job_name="dogbreed-train-1", aws_conn_id=conn_id)  # fmt: skip
    training = TrainingJobOperator(task_id="candidate.train.train_best_model", config={},
                                   aws_conn_id=conn_id)  # fmt: skip
    training.job_name = "dogbreed-train-1"
    return gate, training


RUN_KEY = TaskInstanceKey("dog_breed_classifier", "candidate.gate.gate_on_rules", "manual__1", 1)
# The same task of candidate 1 (the group is mapped: one map index per candidate).
CANDIDATE_KEY = RUN_KEY._replace(map_index=1)


def test_links_open_the_run_page_against_the_local_runtime(connections):
    gate, training = gate_and_training("local_runtime")
    assert RuleTableLink().get_link(gate, ti_key=RUN_KEY) == "/model-runs/runs/manual__1#rules"
    assert TrainingLogLink().get_link(training, ti_key=RUN_KEY) == (
        "/model-runs/runs/manual__1#training-log"
    )


def test_a_mapped_tasks_link_opens_the_page_of_its_candidate(connections):
    gate, _ = gate_and_training("local_runtime")
    assert RuleTableLink().get_link(gate, ti_key=CANDIDATE_KEY) == (
        "/model-runs/runs/manual__1?candidate=1#rules"
    )


def test_the_evaluation_link_on_aws_reads_its_own_candidates_report(connections, monkeypatch):
    reports = {1: {"html_report_uri": "s3://bucket/evaluation/transform-1/report.html"}}
    monkeypatch.setattr(links.XCom, "get_value",
                        lambda ti_key, key: reports.get(ti_key.map_index))  # fmt: skip
    evaluate = SimpleNamespace(aws_conn_id="on_aws")  # the @task's operator: only its connection
    assert EvaluationReportLink().get_link(evaluate, ti_key=CANDIDATE_KEY) == (
        "https://console.aws.amazon.com/s3/object/bucket?region=eu-west-1"
        "&prefix=evaluation/transform-1/report.html"
    )
    assert EvaluationReportLink().get_link(evaluate, ti_key=RUN_KEY) == ""


def test_links_open_the_aws_consoles_on_aws(connections):
    gate, training = gate_and_training("on_aws")
    assert RuleTableLink().get_link(gate, ti_key=RUN_KEY) == (
        "https://console.aws.amazon.com/sagemaker/home?region=eu-west-1#/jobs/dogbreed-train-1"
    )
    job_link = SageMakerJobLink().get_link(training, ti_key=RUN_KEY)
    assert job_link.endswith("#/jobs/dogbreed-train-1")
    log_link = TrainingLogLink().get_link(training, ti_key=RUN_KEY)
    assert log_link.startswith("https://console.aws.amazon.com/cloudwatch/home?region=eu-west-1")
    assert log_link.endswith("logStreamNameFilter$3Ddogbreed-train-1")


def test_the_run_route_shows_the_candidate_asked_for_and_refuses_one_the_run_lacks(monkeypatch):
    from fastapi.testclient import TestClient
    from sagemaker_lifecycle.ui import app as plugin

    # Auth is Airflow's and the AWS reads are the reader's: the route's own choice is tested.
    monkeypatch.setitem(plugin.app.dependency_overrides, plugin.can_read_runs.dependency,
                        lambda: None)  # fmt: skip
    monkeypatch.setattr(plugin, "_record", lambda run_id: two_candidate_run(run_id))
    monkeypatch.setattr(plugin, "_client", lambda service: None)
    monkeypatch.setattr(plugin.reader, "run_details", lambda *args: RunDetails())
    client = TestClient(plugin.app)
    assert "Showing candidate 0 (resnet50), as asked." in client.get("/runs/r?candidate=0").text
    assert "Showing the winner by accuracy" in client.get("/runs/r").text
    missing = client.get("/runs/r?candidate=5")
    assert missing.status_code == 404 and "has no candidate 5" in missing.text
