"""The Airflow UI as a user meets it after `make demo` and `make up`: a run triggered as the demo
triggers it (`demo.run.run_dag`), then log in, read the gate's log (the rule table) and the
training task's log (the job's epochs), open the run's model-run page from the gate's extra link
(rule table in colour, confusion matrix, the evaluation report with its charts, reports streamed
through the plugin, nothing for a logged-out user or outside the project's prefixes), approve a
deployment under Required Actions, read the history across both runs.

With SCREENSHOT_DIR set (`make screenshots`), the pages' screenshots are written there.

Runs the real stack (`devtools.stack`: the local runtime and `airflow standalone`, each in its own
process group) on free ports with its own folders, and drives Debian's chromium with Playwright.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from xml.etree import ElementTree

import boto3
import pytest
from playwright.sync_api import sync_playwright
from stack_access import log_tail, running_stack

from demo.run import DAG_ID, AirflowApi, run_dag
from devtools.stack import Stack

# The DAG's task ids this module reads, in one place (they move into TaskGroups: <group>.<task>).
# The candidate.* tasks are mapped: one map index per candidate architecture of the settings.
GATE_TASK = "candidate.gate.gate_on_rules"
APPROVAL_TASK = "candidate.gate.approve_deployment"
TRAINING_TASK = "candidate.train.train_best_model"
EVALUATE_TASK = "candidate.evaluate.evaluate"
MODEL_TASK = "deploy.create_model"
# The candidate whose gate, training and page the demo run's test reads (the first listed).
CANDIDATE = 0
# include/local.yaml's candidates, which the stack's runs compare.
LOCAL_CANDIDATES = {"simplecnn", "mobilenet-v2"}

SCREENSHOT_DIR = os.environ.get("SCREENSHOT_DIR")
MODEL_RUNS = "/model-runs"
RULE_LINK = "Rule table and profiler report"
# The plugin's colour per rule status (sagemaker_lifecycle/ui/pages.py), as the browser computes it.
STATUS_RGB = {"NoIssuesFound": "rgb(27, 127, 59)", "IssuesFound": "rgb(198, 40, 40)",
              "Error": "rgb(230, 81, 0)"}  # fmt: skip
DEMO_CLASSES = 4
TRIGGER_CLEANUP_S = 120

# The first run took 21 minutes on 2026-12-01 with the two cores shared at load 20.
RUN_TIMEOUT_S = 1800
# A run takes minutes on two cores; the waits below, not pytest's default 600 s, bound it.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2 * RUN_TIMEOUT_S)]

# A run whose Overtraining (policy approve) fires at once, and whose approval waits long enough
# for the browser: no saved step improves the loss by 1000.
APPROVAL_CONF = {"overrides": {"rules": {
    "debugger": {"Overtraining": {"delta": "1000", "patience_train": "1"}},
    "approval": {"timeout_seconds": 900, "default": "Reject"},
}}}  # fmt: skip
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Headless flags for a machine without network or GPU (see README, Development).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PARKED_EVENT_SECONDS = 30
# Playwright gives an API request 30 s; a busy two-core machine's api-server can take longer.
API_TIMEOUT_MS = 120_000
DAG_PARSE_TIMEOUT_S = 300
# The rules the DAG runs, with their kinds and default policies as the README documents them.
DOCUMENTED_RULES = {
    "VanishingGradient": ("debugger", "block"), "Overfit": ("debugger", "approve"),
    "Overtraining": ("debugger", "approve"), "PoorWeightInitialization": ("debugger", "block"),
    "LossNotDecreasing": ("debugger", "approve"), "LowGPUUtilization": ("profiler", "warn"),
    "ProfilerReport": ("profiler", "warn"),
}  # fmt: skip
TABLE_HEADER_LINE = re.compile(r"^\s*rule\s+kind\s+status\s+step\s+policy\s+finding\s*$")
TABLE_ROW = re.compile(
    r"^\s*(?P<rule>[A-Za-z]+)\s+(?P<kind>debugger|profiler)\s+(?P<status>[A-Za-z]+)"
    r"\s+(?P<step>\d*)\s*(?P<policy>block|approve|warn)\s+(?P<finding>.+)$"
)
TRAINING_JOB_IN_LOG = re.compile(r"Rule outcomes of (\S+):")
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Stack:
    with running_stack(tmp_path_factory.mktemp("ui_stack")) as stack:
        yield stack


@pytest.fixture
def page(stack):
    assert Path(CHROMIUM).exists(), "chromium is missing: `make browser` installs Debian's"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def log_in(page, stack: Stack) -> None:
    page.goto(stack.airflow_url)
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(stack.admin_password())
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{stack.airflow_url}/")


def open_dag(page, stack: Stack) -> None:
    """The DAG page, once the dag-processor has parsed the file. The API says when (a busy
    machine renders the page seconds after it loads, so its button is waited for, not polled)."""
    api = f"{stack.airflow_url}/api/v2"
    deadline = time.monotonic() + DAG_PARSE_TIMEOUT_S
    while not page.request.get(f"{api}/dags/{DAG_ID}", timeout=API_TIMEOUT_MS).ok:
        if time.monotonic() > deadline:
            errors = page.request.get(f"{api}/importErrors", timeout=API_TIMEOUT_MS).text()
            log = log_tail(stack.run_dir / "airflow.log")
            pytest.fail(f"{DAG_ID} was not parsed in {DAG_PARSE_TIMEOUT_S} s; import errors: "
                        f"{errors}\nairflow.log:\n{log}")  # fmt: skip
        time.sleep(3)
    page.goto(f"{stack.airflow_url}/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger Dag").wait_for()


def rule_table(log_text: str) -> dict[str, dict[str, str]]:
    """The gate log's rule table (gate.TABLE_HEADER's columns), one row per rule, as shown."""
    lines = log_text.splitlines()
    header = next(i for i, line in enumerate(lines) if TABLE_HEADER_LINE.match(line))
    rows = {}
    for line in lines[header + 1 :]:
        row = TABLE_ROW.match(line)
        if not row:
            break
        rows[row["rule"]] = row.groupdict()
    return rows


def runtime_sagemaker(stack: Stack):
    """A SageMaker client of the stack's runtime, to read what it reports apart from the UI."""
    key_pair = stack.key_pair()
    return boto3.client("sagemaker", endpoint_url=stack.runtime_url, region_name="us-east-1",
                        aws_access_key_id=key_pair.access_key_id,
                        aws_secret_access_key=key_pair.secret_access_key)  # fmt: skip


def reported_statuses(stack: Stack, training_job: str) -> dict[str, str]:
    """The rule statuses the runtime reports for the job."""
    job = runtime_sagemaker(stack).describe_training_job(TrainingJobName=training_job)
    statuses = [*job.get("DebugRuleEvaluationStatuses", []),
                *job.get("ProfilerRuleEvaluationStatuses", [])]  # fmt: skip
    return {status["RuleConfigurationName"]: status["RuleEvaluationStatus"] for status in statuses}


def wait_for_run(page, stack: Stack) -> dict:
    """The newest run, once it has finished (the UI's own API session reads it)."""
    url = f"{stack.airflow_url}/api/v2/dags/{DAG_ID}/dagRuns?order_by=-run_after&limit=1"
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        runs = page.request.get(url, timeout=API_TIMEOUT_MS).json()["dag_runs"]
        if runs and runs[0]["state"] in ("success", "failed"):
            return runs[0]
        time.sleep(5)
    pytest.fail(f"the run did not finish within {RUN_TIMEOUT_S} s")


def task_instance_url(stack: Stack, run_id: str, task_id: str, map_index: int = -1) -> str:
    """The REST API's task instance (a mapped one's map index is part of the path)."""
    quoted = urllib.parse.quote(run_id, safe="")
    mapped = f"/{map_index}" if map_index >= 0 else ""
    return (f"{stack.airflow_url}/api/v2/dags/{DAG_ID}/dagRuns/{quoted}/taskInstances/{task_id}"
            f"{mapped}")  # fmt: skip


def task_state(page, stack: Stack, run_id: str, task_id: str, map_index: int = -1) -> str | None:
    url = task_instance_url(stack, run_id, task_id, map_index)
    return page.request.get(url, timeout=API_TIMEOUT_MS).json().get("state")


def wait_for_task_state(page, stack: Stack, run_id: str, task_id: str, states,
                        map_index: int = -1) -> str:  # fmt: skip
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        state = task_state(page, stack, run_id, task_id, map_index)
        if state in states:
            return state
        time.sleep(3)
    pytest.fail(f"{task_id} [{map_index}] never reached {states} within {RUN_TIMEOUT_S} s")


def wait_for_map_indices(page, stack: Stack, run_id: str, task_id: str) -> list[int]:
    """The map indices of a mapped task, once its group has expanded (one per candidate)."""
    url = f"{task_instance_url(stack, run_id, task_id)}/listMapped"
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        listed = page.request.get(url, timeout=API_TIMEOUT_MS)
        if listed.ok and listed.json()["task_instances"]:
            return sorted(ti["map_index"] for ti in listed.json()["task_instances"])
        time.sleep(3)
    pytest.fail(f"{task_id} was not expanded within {RUN_TIMEOUT_S} s")


def screenshot(page, stack: Stack, name: str) -> None:
    folder = Path(SCREENSHOT_DIR or stack.run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=True)


def trigger_rows(stack: Stack) -> int:
    """Rows of Airflow's trigger table (the stack's metadata database is SQLite)."""
    with contextlib.closing(sqlite3.connect(stack.airflow_home / "airflow.db")) as db:
        return db.execute("SELECT count(*) FROM trigger").fetchone()[0]


def scored_trials(stack: Stack, training_job: str) -> int:
    """How many trials of the tuning job that chose `training_job`'s settings have an
    objective, as the runtime lists them (the tuning chart has a point for each). The two jobs
    of a candidate share the run stamp: dogbreed-train-<stamp>-<i>, dogbreed-tune-<stamp>-<i>."""
    tuning_job = training_job.replace("dogbreed-train-", "dogbreed-tune-", 1)
    paginator = runtime_sagemaker(stack).get_paginator(
        "list_training_jobs_for_hyper_parameter_tuning_job"
    )
    pages = paginator.paginate(HyperParameterTuningJobName=tuning_job)
    return sum("FinalHyperParameterTuningJobObjectiveMetric" in trial
               for page in pages for trial in page["TrainingJobSummaries"])  # fmt: skip


def svg_elements(html: str, css_class: str) -> list:
    """The elements of class `css_class` in the inline SVGs of an HTML page."""
    found = [e for svg in re.findall(r"<svg.*?</svg>", html, re.S)
             for e in ElementTree.fromstring(svg).iter()]  # fmt: skip
    return [element for element in found if element.get("class") == css_class]


def check_evaluation_report(report: str, epochs: int, trials: int) -> None:
    """The report draws a point per epoch of each training curve, a point per tuning trial with
    the best one ringed, and a cell per class pair of the confusion matrix."""
    training, tuning = report.split("<h2>Training</h2>")[1].split("<h2>Tuning</h2>")
    per_series = Counter(point.get("data-series") for point in svg_elements(training, "point"))
    assert per_series and set(per_series.values()) == {epochs}, per_series
    assert len(svg_elements(tuning, "point")) == trials
    assert len(svg_elements(tuning, "best")) == 1
    assert len(svg_elements(report, "cell")) == DEMO_CLASSES**2


def check_model_run_page(
    page, stack: Stack, run_id: str, statuses: dict[str, str], epochs: int, trials: int
) -> None:
    """The gate's extra link (candidate CANDIDATE's) leads to the run's page of that candidate;
    the comparison names one winner; the candidate's rule table, confusion matrix and reports are
    there (the evaluation report with its charts: `epochs` and `trials` are what its jobs did),
    and the plugin refuses keys outside the project's prefixes."""
    quoted = urllib.parse.quote(run_id, safe="")
    # The run's "Model run" tab (the plugin's external view) shows the page in Airflow's frame.
    page.goto(f"{stack.airflow_url}/dags/{DAG_ID}/runs/{quoted}")
    page.get_by_text("Model run", exact=True).first.click()
    page.frame_locator("iframe").locator("table.rules").wait_for()
    page.frame_locator("iframe").locator("table.candidates strong.winner").wait_for()
    gate = task_instance_url(stack, run_id, GATE_TASK)
    links = page.request.get(f"{gate}/links", params={"map_index": CANDIDATE},
                             timeout=API_TIMEOUT_MS).json()  # fmt: skip
    link = links["extra_links"][RULE_LINK]
    assert link.endswith(f"{MODEL_RUNS}/runs/{quoted}?candidate={CANDIDATE}#rules"), link
    page.goto(urllib.parse.urljoin(stack.airflow_url, link))
    page.locator("table.rules").wait_for()
    assert page.locator("table.candidates strong.winner").count() == 1
    shown = {}
    for row in page.locator("table.rules tr").all()[1:]:
        rule = row.locator("td").first.inner_text()
        badge = row.locator(".status")
        shown[rule] = badge.inner_text()
        colour = badge.evaluate("element => getComputedStyle(element).backgroundColor")
        assert colour == STATUS_RGB[shown[rule]], (rule, shown[rule], colour)
    assert shown == statuses
    cells = page.locator("svg.confusion-matrix rect.cell")
    assert cells.count() == DEMO_CLASSES**2
    assert page.locator("#tuning svg circle.best").count() == 1
    screenshot(page, stack, "model-run.png")
    # The local profile's two candidates side by side, each with its own report, and the
    # comparison's page beside them.
    rows = page.locator("table.candidates tr").all()[1:]
    assert {row.locator("td").nth(1).inner_text() for row in rows} == LOCAL_CANDIDATES
    reports = page.locator("#candidates").get_by_role("link", name="Evaluation report")
    assert len({link.get_attribute("href") for link in reports.all()}) == len(LOCAL_CANDIDATES)
    comparison = page.locator("#candidates").get_by_role("link", name="Comparison report")
    answer = page.request.get(urllib.parse.urljoin(stack.airflow_url,
                                                   comparison.get_attribute("href")))  # fmt: skip
    assert answer.ok and all(name in answer.text() for name in LOCAL_CANDIDATES), answer.status
    evaluation = page.locator("#evaluation").get_by_role("link", name="Evaluation report")
    report = evaluation.get_attribute("href")
    report_url = urllib.parse.urljoin(stack.airflow_url, report)
    answer = page.request.get(report_url)
    assert answer.ok and "Confusion matrix" in answer.text(), answer.status
    assert answer.headers["content-security-policy"] == "sandbox"
    check_evaluation_report(answer.text(), epochs, trials)
    page.goto(report_url)
    page.locator("svg.confusion-matrix").wait_for()
    screenshot(page, stack, "evaluation-report.png")
    objects = f"{stack.airflow_url}{MODEL_RUNS}/runs/{quoted}/objects/"
    for refused in ("evaluation/%2E%2E/datasets/train/x.jpg", "datasets/train/x.jpg"):
        answer = page.request.get(objects + refused)
        assert answer.status == 403, (refused, answer.status, answer.text())


def test_a_demo_run_shows_the_rule_table_in_the_gate_log_and_the_epochs_in_training(page, stack):
    # Triggered as `make demo` triggers its run: through the REST API, run by the stack's
    # scheduler and triggerer, so its task logs land where the UI reads them.
    run = run_dag(AirflowApi(stack))
    log_in(page, stack)
    run_path = f"{stack.airflow_url}/dags/{DAG_ID}/runs/{urllib.parse.quote(run.run_id, safe='')}"
    page.goto(f"{run_path}/tasks/{GATE_TASK}/mapped/{CANDIDATE}")
    page.get_by_text("Rule outcomes of").first.wait_for()
    body = page.inner_text("body")
    screenshot(page, stack, "gate-log.png")
    table = rule_table(body)
    assert set(table) == set(DOCUMENTED_RULES), f"rule rows in the gate's log: {sorted(table)}"
    for rule, (kind, policy) in DOCUMENTED_RULES.items():
        assert (table[rule]["kind"], table[rule]["policy"]) == (kind, policy), table[rule]
    # Each row's status is the one SageMaker reports; a debugger finding's step is where it fired.
    training_job = TRAINING_JOB_IN_LOG.search(body).group(1)
    assert {rule: row["status"] for rule, row in table.items()} == reported_statuses(
        stack, training_job
    )
    for row in table.values():
        if row["kind"] == "debugger" and row["status"] == "IssuesFound":
            assert f"at step {row['step']}" in row["finding"], row
    assert run.succeeded, f"the demo run failed; gate log:\n{body[-3000:]}"
    # The training job's own epoch lines, which the deferred task's trigger streams from the
    # runtime's CloudWatch Logs, are in the task log the UI shows.
    page.goto(f"{run_path}/tasks/{TRAINING_TASK}/mapped/{CANDIDATE}")
    epoch_line = re.compile(rf"\[{re.escape(training_job)}\] .*#metrics epoch=1 .*valid_acc=")
    page.get_by_text(epoch_line).first.wait_for()
    screenshot(page, stack, "training-log.png")
    # What the run's jobs did, as the runtime reports it: the report draws a point per epoch.
    job = runtime_sagemaker(stack).describe_training_job(TrainingJobName=training_job)
    epochs = int(job["HyperParameters"]["epochs"].strip('"'))
    trials = scored_trials(stack, training_job)
    check_model_run_page(page, stack, run.run_id, reported_statuses(stack, training_job),
                         epochs, trials)  # fmt: skip
    # The triggerer ran every deferred wait of the run and removed its rows once they fired.
    deadline = time.monotonic() + TRIGGER_CLEANUP_S
    while trigger_rows(stack) and time.monotonic() < deadline:
        time.sleep(5)
    assert trigger_rows(stack) == 0


def test_a_logged_out_user_gets_nothing_from_the_plugin(stack):
    for path in ("/", "/runs/any", "/runs/any/objects/evaluation/x/report.html"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{stack.airflow_url}{MODEL_RUNS}{path}", timeout=60)
        assert refused.value.code in (401, 403), (path, refused.value.code)
        assert "Model" not in refused.value.read().decode(), path


def approve(page, stack: Stack, run_id: str, map_index: int) -> None:
    """Wait until candidate `map_index` asks, read the request, approve."""
    asked_or_ended = ("awaiting_input", "success", "failed", "skipped", "upstream_failed")
    state = wait_for_task_state(page, stack, run_id, APPROVAL_TASK, asked_or_ended, map_index)
    assert state == "awaiting_input", f"{APPROVAL_TASK} [{map_index}] is {state}: nothing asked"
    quoted = urllib.parse.quote(run_id, safe="")
    page.goto(f"{stack.airflow_url}/dags/{DAG_ID}/runs/{quoted}/tasks/{APPROVAL_TASK}"
              f"/mapped/{map_index}/required_actions")  # fmt: skip
    page.get_by_text("Overtraining found issues").first.wait_for()
    body = page.inner_text("body")
    for shown in ("Tuning objective", "Final metrics", "Profiler report", "IssuesFound"):
        assert shown in body, f"{shown!r} missing from the approval request"
    screenshot(page, stack, f"required-action-{map_index}.png" if map_index else
               "required-action.png")  # fmt: skip
    # Seen on Airflow 3.3.2 under load: an answer given before the scheduler has processed the
    # executor's event for the parked attempt resumes the task, then that late event ("finished
    # with state success, but the task instance's state attribute is queued") fails it. A person
    # reading the request takes longer than this; the test waits as long.
    time.sleep(PARKED_EVENT_SECONDS)
    page.get_by_role("button", name="Approve").click()


def test_user_approves_the_deployment_under_required_actions(page, stack):
    log_in(page, stack)
    open_dag(page, stack)
    # The run's conf makes an approve rule fire; the UI's own API session triggers it.
    api = f"{stack.airflow_url}/api/v2/dags/{DAG_ID}"
    assert page.request.patch(api, data={"is_paused": False}, timeout=API_TIMEOUT_MS).ok
    triggered = page.request.post(f"{api}/dagRuns", data={"logical_date": None,
                                                         "conf": APPROVAL_CONF},
                                  timeout=API_TIMEOUT_MS)  # fmt: skip
    assert triggered.ok, triggered.text()
    run_id = triggered.json()["dag_run_id"]

    # The conf's rule fires for every candidate: each asks, and each is approved in turn.
    map_indices = wait_for_map_indices(page, stack, run_id, APPROVAL_TASK)
    for map_index in map_indices:
        approve(page, stack, run_id, map_index)

    run = wait_for_run(page, stack)
    assert run["dag_run_id"] == run_id and run["state"] == "success", run
    assert task_state(page, stack, run_id, MODEL_TASK) == "success"
    assert [task_state(page, stack, run_id, EVALUATE_TASK, i) for i in map_indices] == [
        "success"
    ] * len(map_indices)


def test_the_history_has_a_point_and_a_grid_row_per_run(page, stack):
    log_in(page, stack)
    runs = page.request.get(f"{stack.airflow_url}/api/v2/dags/{DAG_ID}/dagRuns",
                            timeout=API_TIMEOUT_MS).json()["dag_runs"]  # fmt: skip
    page.goto(f"{stack.airflow_url}{MODEL_RUNS}/")
    page.locator("table.history").wait_for()
    assert page.locator("#metric svg circle.point").count() == len(runs) >= 2
    assert page.locator("table.history tr").count() == len(runs) + 1
    deployed = page.locator("table.history tr td:last-child").all_inner_texts()
    assert deployed == ["yes"] * len(runs)
    # The candidates column: how many, and the winner compare picked.
    candidates = page.locator("table.history tr td:nth-child(5)").all_inner_texts()
    assert all(", winner " in text for text in candidates), candidates
    screenshot(page, stack, "model-history.png")
