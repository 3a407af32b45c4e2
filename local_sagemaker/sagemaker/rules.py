"""Debugger and profiler rule evaluations attached to training jobs.

When a training job has ``DebugRuleConfigurations`` / ``ProfilerRuleConfigurations``, SageMaker
runs one processing job per rule beside it. So does the local runtime, through the training
observer hooks (:class:`~local_sagemaker.sagemaker.training.TrainingObserver`):

- ``training_started``: the host agent (``local_sagemaker.system_metrics.SystemMetricsSampler``)
  starts sampling into the job's profiler output if profiling is on or a profiler rule is
  configured; each rule starts as its own process (the container image's Python running the
  configured rule evaluator, ``RuntimeConfig.rule_evaluator``, in its own process group) named
  like AWS's rule jobs,
  ``<job[:26]>-<RuleConfigurationName[:26]>-<8 hex>``, ARN ``processing-job/<lower-cased name>``,
  output in CloudWatch Logs ``/aws/sagemaker/ProcessingJobs`` stream ``<rule job>/algo-1-<epoch>``.
- rules read the job's debug output (smdebug tensors) and profiler output while it trains and
  end when the end-of-job markers appear; their status is ``InProgress`` until they end, then
  ``NoIssuesFound``, ``IssuesFound`` (StatusDetails ``RuleEvaluationConditionMet: ...``) or
  ``Error``, as the evaluator wrote them to ``<output dir>/result.json`` (the one result channel,
  the same file the rule's processing job leaves on AWS). A rule's output folder is uploaded to
  ``<S3OutputPath>/<job>/rule-output/<RuleConfigurationName>/`` (the rule's own S3OutputPath,
  else the job's OutputDataConfig one).
- ``training_finished``: the sampler stops (writing its end marker) and the profiler output is
  uploaded again with its last samples; the debug end marker is written if the job did not; a
  Stopped job's rules are stopped (``Stopped``); rules get ``RULE_GRACE_SECONDS`` to finish.
- ``describe_extras``: ``DebugRuleEvaluationStatuses`` / ``ProfilerRuleEvaluationStatuses``.

Evaluations are durable records; at start-up, rules left running by an earlier runtime are
killed and marked Error.
"""

import json
import logging
import os
import secrets
import threading
import time

from local_sagemaker.executor.processes import kill_leftover_group
from local_sagemaker.sagemaker.jobs import ACTIVE_STATUSES, interruption_reason
from local_sagemaker.sagemaker.training import TrainingObserver
from local_sagemaker.system_metrics import END_OF_JOB_MARKER, SystemMetricsSampler

log = logging.getLogger(__name__)

RULE_EVALUATIONS = "rule-evaluations"
PROCESSING_LOG_GROUP = "/aws/sagemaker/ProcessingJobs"
RESULT_FILE = "result.json"  # what the evaluator leaves in its output folder
# (request member, DescribeTrainingJob member) per kind of rule.
RULE_KINDS = (
    ("DebugRuleConfigurations", "DebugRuleEvaluationStatuses"),
    ("ProfilerRuleConfigurations", "ProfilerRuleEvaluationStatuses"),
)
# How long rules may keep running once their training job has ended.
RULE_GRACE_SECONDS = 300
STATUS_DETAILS_LIMIT = 1024


def rule_job_name(training_job_name: str, rule_configuration_name: str) -> str:
    """AWS's observed rule job name: ``<job[:26]>-<RuleConfigurationName[:26]>-<8 hex>``."""
    return f"{training_job_name[:26]}-{rule_configuration_name[:26]}-{secrets.token_hex(4)}"


def _evaluator_command(
    python: str, evaluator, parameters: dict, paths, output_dir, training_job: str
):
    """The rule evaluator's command line for one rule of ``training_job``."""
    return [
        python,
        str(evaluator),
        "--rule-parameters", json.dumps(parameters),
        "--debug-output", str(paths.debug_output),
        "--profiler-output", str(paths.profiler_output),
        "--output-dir", str(output_dir),
        "--training-job-name", training_job,
    ]  # fmt: skip


def _evaluation_in(record: dict, config_name: str) -> dict:
    """The evaluation of one rule configuration in a training job's rule-evaluations record."""
    return next(e for e in record["evaluations"] if e["name"] == config_name)


def _profiling_enabled(job: dict) -> bool:
    return job.get("ProfilingStatus") == "Enabled" or bool(job.get("ProfilerRuleConfigurations"))


def _read_result(output_dir) -> dict:
    """The evaluator's result.json (``status``, ``status_details``, ...), or {} without one."""
    try:
        return json.loads((output_dir / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return {}


class _RuleObserver(TrainingObserver):
    """Forwards a training job's life to the rules family."""

    def __init__(self, rules):
        self.rules = rules

    def training_started(self, job, paths):
        self.rules.start_rule_evaluations(job, paths)

    def training_finished(self, job, paths):
        self.rules.end_rule_evaluations(job, paths)

    def describe_extras(self, job):
        return self.rules.rule_evaluation_statuses(job)


class RuleEvaluations:
    """The rules family of the SageMaker backend, given the training family it follows (see the
    module docstring)."""

    def __init__(self, services, training):
        self.config = services.config
        self.store = services.store
        self.s3 = services.s3
        self.executor = services.executor
        self.training = training
        self._lock = threading.RLock()
        self._rule_processes = {}  # (training job, RuleConfigurationName) -> ManagedProcess
        self._samplers = {}  # training job -> SystemMetricsSampler
        self._training_ended_at = {}  # training job -> time.monotonic() at its end
        self._shutting_down = False
        training.observers.append(_RuleObserver(self))

    def recover(self) -> None:
        """At start-up: rules left running by an earlier runtime are killed and marked Error."""
        for record in self.store.list(RULE_EVALUATIONS):
            for evaluation in record["evaluations"]:
                if evaluation["status"]["RuleEvaluationStatus"] not in ACTIVE_STATUSES:
                    continue
                if evaluation.get("process") and kill_leftover_group(evaluation["process"]):
                    log.info("killed leftover rule process %s", evaluation["process"]["pid"])
                self._change_evaluation(
                    record["training_job"],
                    evaluation["name"],
                    RuleEvaluationStatus="Error",
                    StatusDetails=interruption_reason("restarted", "rule"),
                )

    def shutdown(self) -> None:
        """End samplers and rule processes; records stay InProgress and become Error at the next
        start-up, as after a crash."""
        self._shutting_down = True
        for sampler in list(self._samplers.values()):
            sampler.stop()
        for process in list(self._rule_processes.values()):
            process.stop(grace_seconds=0)

    # -- records -------------------------------------------------------------------------------

    def _change_evaluation(
        self, job_name: str, config_name: str, process: dict | None = None, **status
    ) -> None:
        """Record the rule's evaluator ``process`` identity and/or ``status`` members."""
        with self._lock:
            record = self.store.get(RULE_EVALUATIONS, job_name)
            evaluation = _evaluation_in(record, config_name)
            if process is not None:
                evaluation["process"] = process
            if status:
                evaluation["status"].update(status, LastModifiedTime=time.time())
            self.store.put(RULE_EVALUATIONS, job_name, record)

    def rule_evaluation_statuses(self, job: dict) -> dict:
        """DescribeTrainingJob's rule members: every configured rule, InProgress until its
        evaluation has started and ended."""
        record = self.store.get(RULE_EVALUATIONS, job["TrainingJobName"])
        recorded = {e["name"]: e["status"] for e in record["evaluations"]} if record else {}
        extras = {}
        for request_member, describe_member in RULE_KINDS:
            configs = job.get(request_member) or []
            if configs:
                extras[describe_member] = [
                    recorded.get(c["RuleConfigurationName"])
                    or {
                        "RuleConfigurationName": c["RuleConfigurationName"],
                        "RuleEvaluationStatus": "InProgress",
                        "LastModifiedTime": job["CreationTime"],
                    }
                    for c in configs
                ]
        return extras

    # -- training started ----------------------------------------------------------------------

    def start_rule_evaluations(self, job: dict, paths) -> None:
        """Start the host agent (if profiling) and one evaluator process per rule."""
        name = job["TrainingJobName"]
        if _profiling_enabled(job):
            interval_ms = job.get("ProfilerConfig", {}).get("ProfilingIntervalInMilliseconds", 500)
            self._samplers[name] = SystemMetricsSampler(
                paths.profiler_output,
                root_pids=lambda: self.training.process_ids(name),
                interval_seconds=interval_ms / 1000,
            ).start()
        configs = [
            config for request_member, _ in RULE_KINDS for config in job.get(request_member) or []
        ]
        if not configs:
            return
        record = {"training_job": name, "evaluations": []}
        for config in configs:
            job_name = rule_job_name(name, config["RuleConfigurationName"])
            record["evaluations"].append(
                {
                    "name": config["RuleConfigurationName"],
                    "rule_job_name": job_name,
                    "process": None,
                    "status": {
                        "RuleConfigurationName": config["RuleConfigurationName"],
                        "RuleEvaluationJobArn": self.config.arn("processing-job", job_name),
                        "RuleEvaluationStatus": "InProgress",
                        "LastModifiedTime": time.time(),
                    },
                }
            )
        self.store.put(RULE_EVALUATIONS, name, record)
        for config, evaluation in zip(configs, record["evaluations"], strict=True):
            self._launch_rule(job, paths, config, evaluation["rule_job_name"])

    def _launch_rule(self, job: dict, paths, config: dict, job_name: str) -> None:
        training_job = job["TrainingJobName"]
        config_name = config["RuleConfigurationName"]
        parameters = config.get("RuleParameters") or {}
        if "rule_to_invoke" not in parameters:
            self._change_evaluation(
                training_job,
                config_name,
                RuleEvaluationStatus="Error",
                StatusDetails="ClientError: RuleParameters has no rule_to_invoke: the local "
                "runtime evaluates SageMaker's built-in rules only, not custom rule images.",
            )
            return
        output_dir = paths.job_dir / "rule-output" / config_name
        output_dir.mkdir(parents=True, exist_ok=True)
        try:
            process = self.executor.start_process(
                _evaluator_command(
                    self.executor.python_for_image(config["RuleEvaluatorImage"]),
                    self.config.rule_evaluator,
                    parameters,
                    paths,
                    output_dir,
                    training_job,
                ),
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                cwd=output_dir,
                log_group=PROCESSING_LOG_GROUP,
                log_stream=f"{job_name}/algo-1-{int(time.time())}",
                on_started=lambda identity: self._change_evaluation(
                    training_job, config_name, process=identity
                ),
            )
        except OSError as error:
            self._change_evaluation(
                training_job,
                config_name,
                RuleEvaluationStatus="Error",
                StatusDetails=f"InternalServerError: the rule evaluator did not start: {error}",
            )
            return
        self._rule_processes[(training_job, config_name)] = process
        threading.Thread(
            target=self._watch_rule,
            args=(job, config, process, output_dir),
            daemon=True,
            name=f"rule-{job_name}",
        ).start()

    def _watch_rule(self, job: dict, config: dict, process, output_dir) -> None:
        """Wait for the rule process (stopping it RULE_GRACE_SECONDS after training ended),
        then record its outcome and upload its output."""
        training_job = job["TrainingJobName"]
        config_name = config["RuleConfigurationName"]
        code, timed_out = None, None
        while code is None:
            code = process.wait(timeout=1.0)
            ended_at = self._training_ended_at.get(training_job)
            if code is None and ended_at and time.monotonic() - ended_at > RULE_GRACE_SECONDS:
                code = process.stop(self.config.stop_grace_seconds)
                timed_out = (
                    f"ClientError: the rule did not finish within {RULE_GRACE_SECONDS} s "
                    "after the training job ended."
                )
        self._rule_processes.pop((training_job, config_name), None)
        if self._shutting_down:
            return
        result = _read_result(output_dir)
        if timed_out:
            result.setdefault("status_details", timed_out)
        status, details = self._rule_outcome(training_job, config_name, result, code, process)
        self._upload_rule_output(job, config, output_dir)
        self._change_evaluation(
            training_job,
            config_name,
            RuleEvaluationStatus=status,
            StatusDetails=details[:STATUS_DETAILS_LIMIT],
        )
        log.info("rule %s of %s: %s", config_name, training_job, status)

    def _rule_outcome(self, training_job: str, config_name: str, result: dict, code, process):
        """(RuleEvaluationStatus, StatusDetails) of an ended rule process."""
        evaluation = _evaluation_in(self.store.get(RULE_EVALUATIONS, training_job), config_name)
        stopping = evaluation["status"]["RuleEvaluationStatus"] == "Stopping"
        if stopping and "status" not in result:
            return "Stopped", "The training job was stopped."
        if "status" in result:
            return result["status"], result["status_details"]
        tail = " | ".join(process.stderr_tail)
        details = result.get("status_details") or (
            f"InternalServerError: the rule evaluator exited with code {code} without a "
            f"result: {tail}"
        )
        return "Error", details

    def _upload_rule_output(self, job: dict, config: dict, output_dir) -> None:
        base = config.get("S3OutputPath") or job["OutputDataConfig"]["S3OutputPath"]
        prefix = f"{base.rstrip('/')}/{job['TrainingJobName']}/rule-output/"
        try:
            self.s3.upload_directory(output_dir, prefix + config["RuleConfigurationName"])
        except Exception:
            log.exception("uploading rule output of %s failed", config["RuleConfigurationName"])

    # -- training finished ---------------------------------------------------------------------

    def end_rule_evaluations(self, job: dict, paths) -> None:
        """Stop the host agent, make sure rules see the end of the job, stop a Stopped job's
        rules, and start the rules' grace period."""
        name = job["TrainingJobName"]
        sampler = self._samplers.pop(name, None)
        if sampler is not None:
            sampler.stop()
            s3_output = job.get("ProfilerConfig", {}).get("S3OutputPath")
            if s3_output:
                self.s3.upload_directory(
                    paths.profiler_output, f"{s3_output.rstrip('/')}/{name}/profiler-output"
                )
        record = self.store.get(RULE_EVALUATIONS, name)
        if record is None:
            self._record_rules_never_started(job)
            return
        if job["TrainingJobStatus"] == "Stopped":
            self._stop_rules(name)
        for directory in (paths.debug_output, paths.profiler_output / "system"):
            directory.mkdir(parents=True, exist_ok=True)
            (directory / END_OF_JOB_MARKER).touch()
        self._training_ended_at[name] = time.monotonic()

    def _stop_rules(self, training_job: str) -> None:
        running = [
            (config_name, process)
            for (job_name, config_name), process in list(self._rule_processes.items())
            if job_name == training_job
        ]
        for config_name, _ in running:
            self._change_evaluation(training_job, config_name, RuleEvaluationStatus="Stopping")
        for _, process in running:
            process.stop(self.config.stop_grace_seconds)

    def _record_rules_never_started(self, job: dict) -> None:
        """The job ended before training started (a setup failure): nothing to evaluate."""
        statuses = self.rule_evaluation_statuses(job)
        if not statuses:
            return
        details = "ClientError: the training job ended before training started; no data."
        evaluations = [
            {
                "name": status["RuleConfigurationName"],
                "process": None,
                "status": {
                    **status,
                    "RuleEvaluationStatus": "Error",
                    "StatusDetails": details,
                    "LastModifiedTime": time.time(),
                },
            }
            for kind_statuses in statuses.values()
            for status in kind_statuses
        ]
        record = {"training_job": job["TrainingJobName"], "evaluations": evaluations}
        self.store.put(RULE_EVALUATIONS, job["TrainingJobName"], record)
