"""evaluate_rules.py as the runtime runs it: a process started before the training job saves
anything, which waits for steps and ends when the job ends, with a machine-readable last line."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from smdebug_runs import SAGEMAKER_CODE, Scenario, record_training

pytestmark = pytest.mark.e2e  # starts real processes

RESULT_LINE_PREFIX = "#rule-result "


def start_rule(tmp_path, rule, *extra):
    log = tmp_path / "rule.log"
    command = [
        sys.executable,
        str(SAGEMAKER_CODE / "evaluate_rules.py"),
        "--rule", rule,
        "--debug-output", str(tmp_path / "debug-output"),
        "--profiler-output", str(tmp_path / "profiler-output"),
        "--output-dir", str(tmp_path / "rule-output"),
        "--poll-seconds", "0.5",
        *extra,
    ]  # fmt: skip
    with log.open("w") as stream:
        process = subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT)
    return process, log


# A bound, not a pause: importing smdebug and torch takes a minute on a loaded 2-core host.
def wait_for_text(log, text, timeout=240):
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert time.monotonic() < deadline, f"{text!r} never appeared in:\n{log.read_text()}"
        time.sleep(0.2)


def result_line(log) -> dict:
    last = log.read_text().strip().splitlines()[-1]
    assert last.startswith(RESULT_LINE_PREFIX), last
    return json.loads(last[len(RESULT_LINE_PREFIX) :])


def test_rule_waits_for_the_running_job_then_reports(tmp_path):
    process, log = start_rule(tmp_path, "VanishingGradient")
    try:
        wait_for_text(log, "Evaluating VanishingGradient")
        time.sleep(2)
        assert process.poll() is None, "the rule must wait while the job has saved nothing"
        record_training(tmp_path / "debug-output", Scenario(init_scale=1e-3, depth=4, epochs=1))
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    result = result_line(log)
    assert result["status"] == "IssuesFound"
    assert result["status_details"].startswith(
        "RuleEvaluationConditionMet: Evaluation of the rule VanishingGradient at step 0"
    )
    assert json.loads((tmp_path / "rule-output" / "result.json").read_text()) == result


def test_rule_parameters_come_as_the_rule_configuration_sends_them(tmp_path):
    """rule_to_invoke inside RuleParameters names the rule; a bad value exits 1 with Error."""
    parameters = json.dumps({"rule_to_invoke": "LowGPUUtilization", "window": "zero"})
    process, log = start_rule(tmp_path, "", "--rule-parameters", parameters, "--training-complete")
    assert process.wait(timeout=60) == 1
    result = result_line(log)
    assert result["rule"] == "LowGPUUtilization"
    assert result["status"] == "Error"
    assert "window='zero' is invalid" in result["status_details"]
