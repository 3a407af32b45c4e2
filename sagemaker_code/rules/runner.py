"""Evaluate one built-in rule over a training job's debug or profiler output.

:func:`evaluate` is what ``evaluate_rules.py`` (one rule per process, as SageMaker runs one
processing job per rule) calls. It returns a :class:`RuleOutcome` and writes it to
``<output_dir>/result.json``. Tensor rules read the smdebug trial in ``debug_output`` and profiler
rules the system metrics in ``profiler_output``; both wait for data while the training job is
still running and finish once its end-of-job marker exists.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path

from rules.outcome import ERROR, ISSUES_FOUND, NO_ISSUES_FOUND, RuleOutcome
from rules.parameters import RuleParameterError, parse_parameters
from rules.profiler_rules import NOT_EVALUATED, SYSTEM_RULES, SystemRule, sub_rules_for_report
from rules.report import render_report
from rules.system_metrics import SystemMetricsReader

PROFILER_REPORT = "ProfilerReport"
RESULT_FILE = "result.json"
# The names in rules.tensor_rules.TENSOR_RULES. That module is imported only for them: smdebug
# imports torch, seconds of start-up that profiler rules do without.
TENSOR_RULE_NAMES = (
    "VanishingGradient",
    "LossNotDecreasing",
    "Overfit",
    "Overtraining",
    "PoorWeightInitialization",
)


def known_rules() -> list[str]:
    return sorted([*TENSOR_RULE_NAMES, *SYSTEM_RULES, PROFILER_REPORT])


def evaluate(
    rule_name: str,
    parameters: dict[str, str],
    debug_output: Path,
    profiler_output: Path,
    output_dir: Path,
    *,
    job_name: str = "",
    poll_seconds: float = 2.0,
) -> RuleOutcome:
    """Run ``rule_name`` to its end and write result.json; every failure becomes Error."""
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        outcome = _evaluate(
            rule_name,
            parameters,
            debug_output,
            profiler_output,
            output_dir,
            job_name,
            poll_seconds,
        )
    except RuleParameterError as error:
        outcome = RuleOutcome(rule_name, ERROR, f"ClientError: {error}")
    except Exception as error:  # an engine failure is the rule's Error status, not a crash
        traceback.print_exc()
        outcome = RuleOutcome(
            rule_name, ERROR, f"InternalServerError: {type(error).__name__}: {error}"
        )
    (output_dir / RESULT_FILE).write_text(json.dumps(outcome.to_json(), indent=2))
    return outcome


def _evaluate(rule_name, parameters, debug_output, profiler_output, output_dir, job_name, poll):
    if rule_name in TENSOR_RULE_NAMES:
        from rules.tensor_rules import evaluate_tensor_rule  # see TENSOR_RULE_NAMES

        return evaluate_tensor_rule(rule_name, parameters, debug_output)
    reader = SystemMetricsReader(profiler_output)
    if rule_name == PROFILER_REPORT:
        print(f"Building the profiler report over {profiler_output}", flush=True)
        return _run_profiler_report(
            sub_rules_for_report(parameters), reader, output_dir, job_name, poll
        )
    if rule_name in SYSTEM_RULES:
        rule_class = SYSTEM_RULES[rule_name]
        rule = rule_class(**parse_parameters(rule_name, rule_class.PARAMETERS, parameters))
        print(f"Evaluating {rule_name} {rule.parameters} over {profiler_output}", flush=True)
        return _run_system_rule(rule, reader, poll)
    raise RuleParameterError(
        f"Unknown rule_to_invoke {rule_name!r}; built-in rules: {', '.join(known_rules())}"
    )


def _run_system_rule(rule: SystemRule, reader: SystemMetricsReader, poll: float) -> RuleOutcome:
    """Evaluates every ``scan_interval_us`` while the job runs (IssuesFound as soon as the rule
    triggers) and once more when it has ended; checks for the end every ``poll`` seconds."""
    scan_seconds = rule.parameters["scan_interval_us"] / 1_000_000
    next_scan = time.monotonic()
    while True:
        ended = reader.training_ended()  # checked before reading so no final sample is missed
        if ended or time.monotonic() >= next_scan:
            next_scan = time.monotonic() + scan_seconds
            report = rule.evaluate(reader.read())
            if report.triggered:
                return RuleOutcome(rule.name, ISSUES_FOUND, report.finding, report.datapoints)
            if ended:
                return RuleOutcome(rule.name, NO_ISSUES_FOUND, report.finding)
        time.sleep(poll)


def _run_profiler_report(
    sub_rules: list[SystemRule],
    reader: SystemMetricsReader,
    output_dir: Path,
    job_name: str,
    poll: float,
) -> RuleOutcome:
    """Waits for the end of training, then writes profiler-output/profiler-report.html and
    profiler-output/profiler-reports/<Rule>.json; IssuesFound if any sub-rule triggered."""
    while not reader.training_ended():
        time.sleep(poll)
    metrics = reader.read()
    reports = [rule.evaluate(metrics) for rule in sub_rules]
    report_dir = output_dir / "profiler-output"
    (report_dir / "profiler-reports").mkdir(parents=True, exist_ok=True)
    for report in reports:
        path = report_dir / "profiler-reports" / f"{report.rule}.json"
        path.write_text(json.dumps(report.to_json(), indent=2))
    html = render_report(job_name, metrics, reports, NOT_EVALUATED)
    (report_dir / "profiler-report.html").write_text(html)
    triggered = [report for report in reports if report.triggered]
    if not triggered:
        return RuleOutcome(
            PROFILER_REPORT,
            NO_ISSUES_FOUND,
            f"No profiler rule triggered over {len(metrics.samples)} samples; "
            "see profiler-output/profiler-report.html.",
        )
    return RuleOutcome(
        PROFILER_REPORT,
        ISSUES_FOUND,
        " ".join(f"{report.rule}: {report.finding}" for report in triggered),
        len(metrics.samples),
    )
