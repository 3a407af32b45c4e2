"""The Airflow UI as a user meets it after `make up`: log in, trigger the DAG, read the gate's log,
approve a deployment under Required Actions.

Runs the real stack (`devtools.stack`: the local runtime and `airflow standalone`, each in its own
process group) on free ports with its own folders, and drives Debian's chromium with Playwright.
"""

from __future__ import annotations

import re
import shutil
import time
import urllib.parse
from pathlib import Path

import boto3
import pytest
from playwright.sync_api import sync_playwright
from stack_access import log_tail, running_stack

from devtools.stack import Stack

RUN_TIMEOUT_S = 900
# A run takes minutes on two cores; the waits below, not pytest's default 600 s, bound it.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2 * RUN_TIMEOUT_S)]

DAG_ID = "dog_breed_classifier"
GATE_TASK = "gate_on_rules"
APPROVAL_TASK = "approve_deployment"
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


def reported_statuses(stack: Stack, training_job: str) -> dict[str, str]:
    """The rule statuses the runtime reports for the job, read apart from the UI."""
    key_pair = stack.key_pair()
    sagemaker = boto3.client("sagemaker", endpoint_url=stack.runtime_url, region_name="us-east-1",
                             aws_access_key_id=key_pair.access_key_id,
                             aws_secret_access_key=key_pair.secret_access_key)  # fmt: skip
    job = sagemaker.describe_training_job(TrainingJobName=training_job)
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


def task_state(page, stack: Stack, run_id: str, task_id: str) -> str | None:
    quoted = urllib.parse.quote(run_id, safe="")
    url = f"{stack.airflow_url}/api/v2/dags/{DAG_ID}/dagRuns/{quoted}/taskInstances/{task_id}"
    return page.request.get(url, timeout=API_TIMEOUT_MS).json().get("state")


def wait_for_task_state(page, stack: Stack, run_id: str, task_id: str, states) -> str:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        state = task_state(page, stack, run_id, task_id)
        if state in states:
            return state
        time.sleep(3)
    pytest.fail(f"{task_id} never reached {states} within {RUN_TIMEOUT_S} s")


def test_user_triggers_the_dag_and_reads_the_rule_table_in_the_gate_log(page, stack):
    log_in(page, stack)
    open_dag(page, stack)

    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text(f"Unpause {DAG_ID} on trigger").wait_for()
    dialog.get_by_role("button", name="Trigger").click()

    run = wait_for_run(page, stack)
    run_id = urllib.parse.quote(run["dag_run_id"], safe="")
    page.goto(f"{stack.airflow_url}/dags/{DAG_ID}/runs/{run_id}/tasks/{GATE_TASK}")
    page.get_by_text("Rule outcomes of").first.wait_for()
    body = page.inner_text("body")
    page.screenshot(path=str(stack.run_dir / "gate-log.png"), full_page=True)
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
    assert run["state"] == "success", f"run ended {run['state']}; gate log:\n{body[-3000:]}"


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

    asked_or_ended = ("awaiting_input", "success", "failed", "skipped", "upstream_failed")
    state = wait_for_task_state(page, stack, run_id, APPROVAL_TASK, asked_or_ended)
    assert state == "awaiting_input", f"{APPROVAL_TASK} is {state}: nothing was asked"
    quoted = urllib.parse.quote(run_id, safe="")
    page.goto(f"{stack.airflow_url}/dags/{DAG_ID}/runs/{quoted}/tasks/{APPROVAL_TASK}"
              "/required_actions")  # fmt: skip
    page.get_by_text("Overtraining found issues").first.wait_for()
    body = page.inner_text("body")
    for shown in ("Tuning objective", "Final metrics", "Profiler report", "IssuesFound"):
        assert shown in body, f"{shown!r} missing from the approval request"
    page.screenshot(path=str(stack.run_dir / "required-action.png"), full_page=True)
    # Seen on Airflow 3.3.2 under load: an answer given before the scheduler has processed the
    # executor's event for the parked attempt resumes the task, then that late event ("finished
    # with state success, but the task instance's state attribute is queued") fails it. A person
    # reading the request takes longer than this; the test waits as long.
    time.sleep(PARKED_EVENT_SECONDS)
    page.get_by_role("button", name="Approve").click()

    run = wait_for_run(page, stack)
    assert run["dag_run_id"] == run_id and run["state"] == "success", run
    assert task_state(page, stack, run_id, "create_model") == "success"
    assert task_state(page, stack, run_id, "evaluate") == "success"
