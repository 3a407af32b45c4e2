"""Rules attached to a real training job in the local runtime, checked as a client sees them:
DescribeTrainingJob's rule statuses, rule jobs' logs, and rule output in S3."""

import json
import re
import time

import pytest
from runtime_support import (
    BUCKET,
    SAGEMAKER,
    RuntimeProcess,
    process_alive,
    raw_call,
    shape_violations,
    training_request,
    upload_script,
    wait_for_log_line,
    wait_for_status,
)

pytestmark = pytest.mark.e2e

RULES_IMAGE = "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"
TERMINAL_RULE_STATUSES = ("NoIssuesFound", "IssuesFound", "Error", "Stopped")

# A training script as users write them: the hook comes from SageMaker's debughookconfig.json.
# Weights scaled by 1e-3 make the first layers' gradients vanish; TRAIN and EVAL losses are
# equal (random labels, a model that cannot learn), so Overfit has nothing to find.
TINY_INIT_SCRIPT = """
import sys, time
import torch
from torch import nn
import smdebug.pytorch as smd

torch.manual_seed(0)
torch.set_num_threads(1)
layers = [nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU()]
model = nn.Sequential(*layers, nn.Linear(16, 3))
with torch.no_grad():
    for parameter in model.parameters():
        parameter.mul_(1e-3)
hook = smd.Hook.create_from_json_file()
hook.register_module(model)
loss_function = nn.CrossEntropyLoss()
hook.register_loss(loss_function)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
for epoch in range(2):
    hook.set_mode(smd.modes.TRAIN)
    for i in range(0, 64, 16):
        optimizer.zero_grad()
        loss_function(model(x[i:i + 16]), y[i:i + 16]).backward()
        optimizer.step()
    hook.set_mode(smd.modes.EVAL)
    with torch.no_grad():
        for i in range(0, 32, 16):
            loss_function(model(x[i:i + 16]), y[i:i + 16])
    print(f"epoch {epoch} done", flush=True)
time.sleep(float(sys.argv[sys.argv.index("--hold") + 1]))
"""


def wait_for_training_line(logs, name: str, text: str) -> None:
    """Like wait_for_log_line, also while the runtime has no training log group yet."""
    deadline = time.monotonic() + 120
    while True:
        try:
            wait_for_log_line(logs, name, text, timeout=max(1, deadline - time.monotonic()))
            return
        except logs.exceptions.ResourceNotFoundException:
            assert time.monotonic() < deadline, f"{name} never logged {text!r}"
            time.sleep(0.5)


def rule(name: str, rule_to_invoke: str, **parameters) -> dict:
    return {
        "RuleConfigurationName": name,
        "RuleEvaluatorImage": RULES_IMAGE,
        "RuleParameters": {"rule_to_invoke": rule_to_invoke, **parameters},
    }


def request_with_rules(name: str, hold_seconds: int, debug_rules, profiler_rules=()) -> dict:
    request = training_request(name, BUCKET, TINY_INIT_SCRIPT)
    request["HyperParameters"]["hold"] = str(hold_seconds)
    request["Environment"] = {"OMP_NUM_THREADS": "1"}
    request["DebugHookConfig"] = {
        "S3OutputPath": f"s3://{BUCKET}/debug",
        "CollectionConfigurations": [
            {"CollectionName": "losses", "CollectionParameters": {"save_interval": "1"}},
            {"CollectionName": "gradients", "CollectionParameters": {"save_interval": "1"}},
        ],
    }
    request["DebugRuleConfigurations"] = list(debug_rules)
    if profiler_rules:
        request["ProfilerConfig"] = {
            "S3OutputPath": f"s3://{BUCKET}/profiler",
            "ProfilingIntervalInMilliseconds": 500,
        }
        request["ProfilerRuleConfigurations"] = list(profiler_rules)
    return request


def rule_statuses(described: dict) -> dict[str, dict]:
    statuses = [
        *described.get("DebugRuleEvaluationStatuses", []),
        *described.get("ProfilerRuleEvaluationStatuses", []),
    ]
    return {status["RuleConfigurationName"]: status for status in statuses}


def wait_for_rules(sagemaker, name: str, timeout=180) -> dict:
    """Poll until every rule status is terminal; returns the last DescribeTrainingJob."""
    deadline = time.monotonic() + timeout
    while True:
        described = sagemaker.describe_training_job(TrainingJobName=name)
        statuses = rule_statuses(described)
        if all(s["RuleEvaluationStatus"] in TERMINAL_RULE_STATUSES for s in statuses.values()):
            return described
        assert time.monotonic() < deadline, statuses
        time.sleep(0.5)


def test_rules_run_beside_the_job_and_report_in_describe(runtime, sagemaker, s3, logs):
    name = "rules-tiny-init"
    upload_script(s3, BUCKET, name, TINY_INIT_SCRIPT)
    request = request_with_rules(
        name,
        hold_seconds=6,
        debug_rules=[
            rule("VanishingGradient", "VanishingGradient"),
            rule("Overfit", "Overfit"),
        ],
        profiler_rules=[
            rule("LowGPUUtilization", "LowGPUUtilization"),
            rule("LowGPUUtilizationBadWindow", "LowGPUUtilization", window="0"),
            rule("ProfilerReport-1700000000", "ProfilerReport"),
        ],
    )
    sagemaker.create_training_job(**request)

    wait_for_training_line(logs, name, "epoch 1 done")
    while_training = sagemaker.describe_training_job(TrainingJobName=name)
    assert while_training["TrainingJobStatus"] == "InProgress"
    statuses = rule_statuses(while_training)
    assert statuses["Overfit"]["RuleEvaluationStatus"] == "InProgress"  # waits for the end
    assert statuses["LowGPUUtilization"]["RuleEvaluationStatus"] == "InProgress"

    assert wait_for_status(sagemaker, name, timeout=120)["TrainingJobStatus"] == "Completed"
    described = wait_for_rules(sagemaker, name)
    statuses = rule_statuses(described)
    assert [s["RuleConfigurationName"] for s in described["DebugRuleEvaluationStatuses"]] == [
        "VanishingGradient",
        "Overfit",
    ]

    vanishing = statuses["VanishingGradient"]
    assert vanishing["RuleEvaluationStatus"] == "IssuesFound"
    assert re.fullmatch(
        r"RuleEvaluationConditionMet: Evaluation of the rule VanishingGradient at step \d+ "
        r"resulted in the condition being met\nGradient .* below the threshold 1e-07: .*",
        vanishing["StatusDetails"],
    )
    assert re.fullmatch(
        r"arn:aws:sagemaker:us-east-1:123456789012:processing-job/"
        r"rules-tiny-init-vanishinggradient-[0-9a-f]{8}",
        vanishing["RuleEvaluationJobArn"],
    )
    assert statuses["Overfit"]["RuleEvaluationStatus"] == "NoIssuesFound"
    bad = statuses["LowGPUUtilizationBadWindow"]
    assert bad["RuleEvaluationStatus"] == "Error"
    assert bad["StatusDetails"] == (
        "ClientError: Rule LowGPUUtilization: parameter window='0' must be an integer >= 1"
    )
    low_gpu = statuses["LowGPUUtilization"]
    assert low_gpu["RuleEvaluationStatus"] == "NoIssuesFound"
    assert "without a GPU" in low_gpu["StatusDetails"]
    assert statuses["ProfilerReport-1700000000"]["RuleEvaluationStatus"] == "NoIssuesFound"
    # On the wire the rule statuses fit botocore's DescribeTrainingJob output shape exactly.
    code, raw = raw_call(runtime, "SageMaker.DescribeTrainingJob", {"TrainingJobName": name})
    assert code == 200
    describe_shape = SAGEMAKER.operation_model("DescribeTrainingJob").output_shape
    assert shape_violations(describe_shape, raw) == []

    # Each rule job logs to /aws/sagemaker/ProcessingJobs under its own name.
    rule_job = vanishing["RuleEvaluationJobArn"].rsplit("/", 1)[1]
    streams = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/ProcessingJobs",
        logStreamNamePrefix=f"rules-tiny-init-VanishingGradient-{rule_job[-8:]}/algo-1-",
    )["logStreams"]
    assert len(streams) == 1

    # Rule output and the profiler's data are in S3 where SageMaker puts them.
    result = s3.get_object(
        Bucket=BUCKET, Key=f"output/{name}/rule-output/VanishingGradient/result.json"
    )
    assert json.loads(result["Body"].read())["status"] == "IssuesFound"
    report = s3.get_object(
        Bucket=BUCKET,
        Key=f"output/{name}/rule-output/ProfilerReport-1700000000/profiler-output/"
        "profiler-report.html",
    )
    assert b"<svg" in report["Body"].read()
    system = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"profiler/{name}/profiler-output/system/")
    keys = [item["Key"] for item in system["Contents"]]
    assert any(key.endswith(".algo-1.json") for key in keys)
    assert any(key.endswith("training_job_end.ts") for key in keys)


def test_stopping_the_job_stops_its_rules(runtime, sagemaker, s3, logs):
    name = "rules-stopped"
    upload_script(s3, BUCKET, name, TINY_INIT_SCRIPT)
    request = request_with_rules(name, hold_seconds=60, debug_rules=[rule("Overfit", "Overfit")])
    sagemaker.create_training_job(**request)
    wait_for_training_line(logs, name, "epoch 1 done")
    sagemaker.stop_training_job(TrainingJobName=name)
    assert wait_for_status(sagemaker, name, timeout=60)["TrainingJobStatus"] == "Stopped"
    statuses = rule_statuses(wait_for_rules(sagemaker, name, timeout=60))
    # Rules still waiting for the end of the job are stopped; none is left running.
    assert statuses["Overfit"]["RuleEvaluationStatus"] == "Stopped"
    assert statuses["Overfit"]["StatusDetails"] == "The training job was stopped."
    record = json.loads(
        (runtime.data_dir / "records" / "rule-evaluations" / f"{name}.json").read_text()
    )
    assert not any(
        process_alive(e["process"]["pid"]) for e in record["evaluations"] if e["process"]
    )


def test_rules_cut_off_by_a_crash_end_in_error_and_their_processes_die(tmp_path):
    """Also: rules that cannot start end in Error at once, and stay so across the restart."""
    missing_python = json.dumps({"*/missing-rules:*": str(tmp_path / "no" / "python")})
    runtime = RuntimeProcess(tmp_path / "state").start(
        {"LOCAL_SAGEMAKER_IMAGE_PYTHONS": missing_python}
    )
    try:
        s3, sagemaker = runtime.client("s3"), runtime.client("sagemaker")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="data/train/x", Body=b"x")
        script = "import time\nprint('training', flush=True)\ntime.sleep(600)\n"
        upload_script(s3, BUCKET, "crashed", script)
        request = training_request("crashed", BUCKET, script)
        request["DebugHookConfig"] = {"S3OutputPath": f"s3://{BUCKET}/debug"}
        unstartable = rule("Unstartable", "Overfit")
        unstartable["RuleEvaluatorImage"] = (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/missing-rules:1"
        )
        custom = {**rule("Custom", "Overfit"), "RuleParameters": {"threshold": "1"}}
        request["DebugRuleConfigurations"] = [rule("Overfit", "Overfit"), unstartable, custom]
        sagemaker.create_training_job(**request)
        records = runtime.data_dir / "records" / "rule-evaluations" / "crashed.json"
        deadline = time.monotonic() + 60
        while not (
            records.exists() and json.loads(records.read_text())["evaluations"][0]["process"]
        ):
            assert time.monotonic() < deadline, "the rule process never started"
            time.sleep(0.2)
        rule_pid = json.loads(records.read_text())["evaluations"][0]["process"]["pid"]

        runtime.kill_hard()
        runtime.start()

        statuses = rule_statuses(
            runtime.client("sagemaker").describe_training_job(TrainingJobName="crashed")
        )
        status = statuses["Overfit"]
        assert status["RuleEvaluationStatus"] == "Error"
        assert status["StatusDetails"] == (
            "InternalServerError: the local SageMaker runtime restarted while the rule was running"
        )
        assert not process_alive(rule_pid)
        assert statuses["Unstartable"]["RuleEvaluationStatus"] == "Error"
        assert statuses["Unstartable"]["StatusDetails"].startswith(
            "InternalServerError: the rule evaluator did not start: "
        )
        assert statuses["Custom"]["RuleEvaluationStatus"] == "Error"
        assert "RuleParameters has no rule_to_invoke" in statuses["Custom"]["StatusDetails"]
    finally:
        runtime.stop()


def test_rules_of_a_job_that_never_trained_end_in_error(runtime, sagemaker, s3):
    name = "rules-no-input"
    upload_script(s3, BUCKET, name, "print('never runs')\n")
    request = training_request(name, BUCKET, "print('never runs')\n")
    request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = f"s3://{BUCKET}/absent"
    request["DebugRuleConfigurations"] = [rule("Overfit", "Overfit")]
    request["ProfilerRuleConfigurations"] = [rule("LowGPUUtilization", "LowGPUUtilization")]
    sagemaker.create_training_job(**request)
    assert wait_for_status(sagemaker, name)["TrainingJobStatus"] == "Failed"
    statuses = rule_statuses(wait_for_rules(sagemaker, name, timeout=10))
    for status in statuses.values():
        assert status["RuleEvaluationStatus"] == "Error"
        assert status["StatusDetails"] == (
            "ClientError: the training job ended before training started; no data."
        )
