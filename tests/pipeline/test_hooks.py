"""SageMakerLifecycleHook: idempotent starts, strict waits, stops and resource reuse.

Creation and reuse run against moto's SageMaker (in-process); failure reasons no local job can
produce (AWS's internal and capacity errors) come from a scripted client. Jobs that fail on their
script, are stopped, overrun or are stopped by the clean-up run as real jobs of the local runtime
in tests/runtime/test_lifecycle_hook_jobs.py.
"""

import pytest
from airflow.sdk.exceptions import AirflowFailException
from botocore.exceptions import ClientError
from sagemaker_lifecycle import request_builders as rb
from sagemaker_lifecycle.hooks import (
    DeterministicJobError,
    SageMakerJobError,
    SageMakerLifecycleHook,
    failed_deterministically,
    raise_unless_completed,
)


@pytest.fixture
def hook(s3):  # s3 starts moto's mock_aws and the dummy credentials
    return SageMakerLifecycleHook(aws_conn_id=None, region_name="us-east-1")


def test_a_retried_start_adopts_the_job_instead_of_failing_on_its_name(
    hook, settings, names, staged_dataset
):
    request = rb.training_job_request(settings, names, staged_dataset, {"lr": "0.01"})
    first = hook.start_job("training", request)
    assert first == names.training_job
    assert hook.start_job("training", request) == first


def test_model_and_endpoint_config_are_reused_when_identical_and_replaced_when_not(
    hook, settings, names
):
    model = rb.model_request(settings, names, "s3://b/jobs/one/output/model.tar.gz")
    created = hook.ensure_model(model)
    assert hook.ensure_model(model)["ModelArn"] == created["ModelArn"]
    retrained = rb.model_request(settings, names, "s3://b/jobs/two/output/model.tar.gz")
    assert hook.ensure_model(retrained)["PrimaryContainer"]["ModelDataUrl"].endswith(
        "two/output/model.tar.gz"
    )
    config = rb.endpoint_config_request(settings, names)
    assert hook.ensure_endpoint_config(config)["EndpointConfigName"] == names.endpoint_config
    assert hook.ensure_endpoint_config(config)["EndpointConfigName"] == names.endpoint_config


class ScriptedSageMaker:
    """describe_training_job answers from a script of statuses; create calls are recorded."""

    def __init__(self, statuses_by_name, failure_reason="AlgorithmError: boom"):
        self.statuses = {name: list(statuses) for name, statuses in statuses_by_name.items()}
        self.failure_reason = failure_reason
        self.created = []

    def describe_training_job(self, TrainingJobName):
        script = self.statuses.get(TrainingJobName)
        if not script:
            raise ClientError({"Error": {"Code": "ValidationException",
                                         "Message": "Requested resource not found."}},
                              "DescribeTrainingJob")  # fmt: skip
        status = script.pop(0) if len(script) > 1 else script[0]
        return {"TrainingJobName": TrainingJobName, "TrainingJobStatus": status,
                "FailureReason": self.failure_reason}  # fmt: skip

    def create_training_job(self, **request):
        self.created.append(request["TrainingJobName"])
        self.statuses[request["TrainingJobName"]] = ["InProgress", "Completed"]


@pytest.fixture
def scripted_hook(monkeypatch):
    def make(statuses_by_name, failure_reason="AlgorithmError: boom"):
        client = ScriptedSageMaker(statuses_by_name, failure_reason)
        hook = SageMakerLifecycleHook(aws_conn_id=None, region_name="us-east-1")
        monkeypatch.setattr(SageMakerLifecycleHook, "conn", client)
        return hook, client

    return make


def test_a_job_that_failed_earlier_is_started_again_under_a_fresh_name(scripted_hook):
    hook, client = scripted_hook({"job": ["Failed"], "job-a2": ["Stopped"]})
    assert hook.start_job("training", {"TrainingJobName": "job"}) == "job-a3"
    assert client.created == ["job-a3"]


def ended(status, reason="AlgorithmError: boom", **more):
    return {"TrainingJobName": "job", "TrainingJobStatus": status, "FailureReason": reason, **more}


@pytest.mark.parametrize("final", ["Failed", "Stopped"])
def test_failed_and_stopped_jobs_fail_the_task_with_the_reason(final):
    with pytest.raises(
        SageMakerJobError, match=f"training job job ended {final}: AlgorithmError: boom"
    ):
        raise_unless_completed("training", ended(final))
    raise_unless_completed("training", ended("Completed"))


@pytest.mark.parametrize(
    ("reason", "retried"),
    [("AlgorithmError: ZeroDivisionError in train.py", False),
     ("ClientError: channel train has no class folders", False),
     ("InternalServerError: We encountered an internal error. Please try again.", True),
     ("CapacityError: Unable to provision requested ML compute capacity.", True)],
)  # fmt: skip
def test_a_job_that_failed_on_its_script_or_input_is_not_retried(reason, retried):
    with pytest.raises(SageMakerJobError, match=reason.split(":")[0]) as failure:
        raise_unless_completed("training", ended("Failed", reason))
    # Airflow fails a task that raises AirflowFailException at once, without its retries.
    assert isinstance(failure.value, AirflowFailException) is not retried
    assert isinstance(failure.value, DeterministicJobError) is not retried


def test_a_tuning_job_whose_trials_failed_only_on_their_own_errors_is_not_retried():
    counters = {"Completed": 0, "NonRetryableError": 4, "RetryableError": 0}
    assert failed_deterministically({"TrainingJobStatusCounters": counters})
    assert not failed_deterministically(
        {"TrainingJobStatusCounters": {**counters, "RetryableError": 1}}
    )
    assert not failed_deterministically({"FailureReason": "InternalServerError"})


@pytest.mark.parametrize(("previous", "rolled_back"), [("dogbreed-epc-old", True), (None, False)])
def test_a_failed_smoke_test_rolls_the_endpoint_back_to_its_previous_config(
    monkeypatch, settings, staged_dataset, previous, rolled_back
):
    from sagemaker_lifecycle import tasks

    deployed = []
    monkeypatch.setattr(tasks.evaluation, "first_image", lambda s3, uri: ("s3://b/k.jpg", b"jpg"))
    monkeypatch.setattr(tasks, "_s3_client", lambda: None)

    def broken_model(settings, name, variant, body, candidate):
        raise ValueError("the answer of dogbreed-endpoint is not inference.py's JSON")

    monkeypatch.setattr(tasks, "_predict", broken_model)

    def record_deploy(self, request, interval, timeout):
        deployed.append(request)

    monkeypatch.setattr(SageMakerLifecycleHook, "deploy_endpoint", record_deploy)
    endpoint = {"EndpointName": "dogbreed-endpoint", "EndpointConfigName": "dogbreed-epc-new",
                "PreviousEndpointConfigName": previous}  # fmt: skip
    with pytest.raises(
        RuntimeError, match=r"smoke test of dogbreed-endpoint \(resnet50\) failed"
    ) as raised:
        tasks.smoke_test_endpoint.function(settings, staged_dataset, endpoint, ["resnet50"])
    assert ("rolled back to dogbreed-epc-old" in str(raised.value)) == rolled_back
    expected = [{"EndpointName": "dogbreed-endpoint", "EndpointConfigName": previous}]
    assert deployed == (expected if rolled_back else [])


def test_the_profiler_report_is_found_under_the_jobs_rule_output(
    hook, s3, settings, names, staged_dataset, monkeypatch
):
    request = rb.training_job_request(settings, names, staged_dataset, {"lr": "0.01"})
    # moto's DescribeTrainingJob drops ProfilerConfig: answer with the request's own.
    monkeypatch.setattr(hook, "describe_job", lambda kind, name: request)
    bucket = settings["aws"]["bucket"]
    s3.create_bucket(Bucket=bucket)
    assert hook.profiler_report_uri(names.training_job) is None
    rule_output = f"jobs/{names.training_job}/rule-output"
    for key in ("LowGPUUtilization/result.json",
                "ProfilerReport-1700000000/profiler-output/profiler-reports/BatchSize.json",
                "ProfilerReport-1700000000/profiler-output/profiler-report.html"):  # fmt: skip
        s3.put_object(Bucket=bucket, Key=f"{rule_output}/{key}", Body=b"x")
    assert hook.profiler_report_uri(names.training_job) == (
        f"s3://{bucket}/{rule_output}/ProfilerReport-1700000000/profiler-output/profiler-report.html"
    )


def test_the_warm_start_parent_is_a_completed_tuning_job_of_another_run(
    hook, settings, staged_dataset
):
    from datetime import datetime

    from sagemaker_lifecycle.naming import run_names

    def tuning_job(project, run_id):
        names = run_names(project, run_id, datetime(2026, 11, 1))
        hook.start_job("tuning", rb.tuning_job_request(settings, names, staged_dataset))
        return names.tuning_job

    earlier = tuning_job("dogbreed", "scheduled__1")
    tuning_job("otherproj", "scheduled__2")  # another project's job is never a parent
    current = tuning_job("dogbreed", "scheduled__3")
    parent = hook.latest_completed_tuning_job("dogbreed-tune-", exclude=current)
    assert parent["HyperParameterTuningJobName"] == earlier
    assert hook.latest_completed_tuning_job("dogbreed-tune-", exclude="dogbreed-tune-") is None
    # Of those that `matching` accepts (the same architecture's), the newest.
    newest = hook.latest_completed_tuning_job("dogbreed-tune-", exclude="none")
    assert newest["HyperParameterTuningJobName"] == current
    older = hook.latest_completed_tuning_job(
        "dogbreed-tune-", exclude="none",
        matching=lambda job: job["HyperParameterTuningJobName"] != current,
    )  # fmt: skip
    assert older["HyperParameterTuningJobName"] == earlier


def test_a_failed_runs_model_and_config_are_deleted_unless_the_endpoint_serves_them(hook, settings):
    from datetime import datetime

    from sagemaker_lifecycle.naming import run_names

    serving, failed = (run_names("dogbreed", run_id, datetime(2026, 11, 1))
                       for run_id in ("scheduled__1", "scheduled__2"))  # fmt: skip
    for names in (serving, failed):
        hook.ensure_model(rb.model_request(settings, names, f"s3://b/{names.run_stamp}/m.tar.gz"))
        hook.ensure_endpoint_config(rb.endpoint_config_request(settings, names))
    hook.conn.create_endpoint(**rb.endpoint_request(settings, serving))
    endpoint = serving.endpoint
    assert hook.delete_unused_deployment(endpoint, serving.endpoint_config, serving.model) == []
    assert hook.delete_unused_deployment(endpoint, failed.endpoint_config, failed.model) == [
        f"endpoint config {failed.endpoint_config}",
        f"model {failed.model}",
    ]
    assert hook.delete_unused_deployment(endpoint, failed.endpoint_config, failed.model) == []
    assert [m["ModelName"] for m in hook.conn.list_models()["Models"]] == [serving.model]


def test_a_failed_run_deletes_the_endpoint_it_created_and_keeps_one_that_served_before(
    hook, settings
):
    from datetime import datetime

    from sagemaker_lifecycle.naming import run_names

    earlier, failed = (run_names("dogbreed", run_id, datetime(2026, 11, 1))
                       for run_id in ("scheduled__1", "scheduled__2"))  # fmt: skip
    hook.ensure_model(rb.model_request(settings, earlier, "s3://b/1/m.tar.gz"))
    hook.ensure_endpoint_config(rb.endpoint_config_request(settings, earlier))
    # served before the failed run
    hook.conn.create_endpoint(**rb.endpoint_request(settings, earlier))
    hook.ensure_model(rb.model_request(settings, failed, "s3://b/2/m.tar.gz"))
    hook.ensure_endpoint_config(rb.endpoint_config_request(settings, failed))
    assert not hook.delete_endpoint_created_by_run(earlier.endpoint, failed.endpoint_config)
    assert hook.endpoint_config_of(earlier.endpoint) == earlier.endpoint_config
    # The endpoint the first run created is that run's own: its clean-up deletes it, and then
    # its config and model, which nothing serves any more.
    assert hook.delete_endpoint_created_by_run(earlier.endpoint, earlier.endpoint_config)
    assert hook.endpoint_config_of(earlier.endpoint) is None
    deleted = hook.delete_unused_deployment(
        earlier.endpoint, earlier.endpoint_config, earlier.model
    )
    assert deleted == [f"endpoint config {earlier.endpoint_config}", f"model {earlier.model}"]
    assert not hook.delete_endpoint_created_by_run(earlier.endpoint, failed.endpoint_config)


def test_an_endpoint_the_run_created_is_kept_in_the_status_named(hook, settings, names):
    hook.ensure_model(rb.model_request(settings, names, "s3://b/1/m.tar.gz"))
    hook.ensure_endpoint_config(rb.endpoint_config_request(settings, names))
    hook.conn.create_endpoint(**rb.endpoint_request(settings, names))  # moto: InService at once
    assert not hook.delete_endpoint_created_by_run(
        names.endpoint, names.endpoint_config, unless_status="InService"
    )
    assert hook.endpoint_config_of(names.endpoint) == names.endpoint_config
    assert hook.delete_endpoint_created_by_run(
        names.endpoint, names.endpoint_config, unless_status="Failed"
    )


def test_retiring_a_promoted_first_model_deletes_its_trial_endpoint_and_config_only(
    hook, settings, names
):
    hook.ensure_model(rb.model_request(settings, names, "s3://b/1/m.tar.gz"))
    trial = rb.challenger_deployment(settings, names, None)
    tried_on = hook.ensure_endpoint_config(trial["EndpointConfig"])  # DescribeEndpointConfig
    hook.conn.create_endpoint(**trial["Endpoint"])
    actions = rb.promotion_actions(settings, names, tried_on, approved=True)
    hook.ensure_endpoint_config(actions["endpoint"]["EndpointConfig"])
    hook.conn.create_endpoint(**actions["endpoint"]["Endpoint"])
    assert hook.retire_challenger(actions["retired"]) == [
        f"trial endpoint {names.trial_endpoint}",
        f"endpoint config {names.challenger_endpoint_config}",
    ]  # the model serves the endpoint users call
    assert hook.endpoint_config_of(names.trial_endpoint) is None
    assert hook.endpoint_config_of(names.endpoint) == names.endpoint_config
    assert hook.retire_challenger(actions["retired"]) == []  # a retried task: nothing left


def test_retiring_a_first_model_not_approved_leaves_nothing(hook, settings, names):
    hook.ensure_model(rb.model_request(settings, names, "s3://b/1/m.tar.gz"))
    trial = rb.challenger_deployment(settings, names, None)
    hook.ensure_endpoint_config(trial["EndpointConfig"])
    hook.conn.create_endpoint(**trial["Endpoint"])
    actions = rb.promotion_actions(settings, names, trial["EndpointConfig"], approved=False)
    assert hook.retire_challenger(actions["retired"]) == [
        f"trial endpoint {names.trial_endpoint}",
        f"endpoint config {names.challenger_endpoint_config}",
        f"model {names.model}",
    ]
    assert hook.conn.list_endpoints()["Endpoints"] == []


@pytest.mark.parametrize("promoted", [False, True], ids=["failed-on-trial", "failed-after"])
def test_a_failed_first_model_run_leaves_no_trial_endpoint_and_keeps_an_approved_one(
    hook, settings, names, monkeypatch, promoted
):
    """clean_up_failed_run for a project's first model (moto's SageMaker): failed while on its
    trial endpoint, everything it deployed goes; failed after its promotion created the endpoint
    users call (say, the explanation job), that endpoint, InService, serves on."""
    from sagemaker_lifecycle import tasks

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type": "aws"}')
    monkeypatch.setattr(tasks, "current_run_names", lambda settings: names)
    hook.ensure_model(rb.model_request(settings, names, "s3://b/1/m.tar.gz"))
    trial = rb.challenger_deployment(settings, names, None)
    tried_on = hook.ensure_endpoint_config(trial["EndpointConfig"])
    hook.conn.create_endpoint(**trial["Endpoint"])
    if promoted:
        actions = rb.promotion_actions(settings, names, tried_on, approved=True)
        hook.ensure_endpoint_config(actions["endpoint"]["EndpointConfig"])
        hook.conn.create_endpoint(**actions["endpoint"]["Endpoint"])
        hook.retire_challenger(actions["retired"])
    cleaned = tasks.clean_up_failed_run.function(settings)
    endpoints = [e["EndpointName"] for e in hook.conn.list_endpoints()["Endpoints"]]
    models = [m["ModelName"] for m in hook.conn.list_models()["Models"]]
    if promoted:
        assert cleaned["deleted"] == [] and endpoints == [names.endpoint]
        assert models == [names.model]
    else:
        assert cleaned["deleted"] == [f"trial endpoint {names.trial_endpoint}",
                                      f"endpoint config {names.challenger_endpoint_config}",
                                      f"model {names.model}"]  # fmt: skip
        assert endpoints == [] and models == []


def test_the_clean_up_filters_match_every_job_name_the_run_gives(names):
    from sagemaker_lifecycle.naming import retry_name
    from sagemaker_lifecycle.rule_jobs import rule_job_name
    from sagemaker_lifecycle.tasks import run_job_filters

    filters = run_job_filters(names)

    def stopped(kind: str, job: str) -> bool:
        return any(kind == k and contains in job for k, contains in filters)

    retried_training = retry_name(names.training_job, 2)
    assert stopped("tuning", retry_name(names.tuning_job, 2, 32))
    assert stopped("training", names.training_job) and stopped("training", retried_training)
    assert stopped("transform", names.transform_job)
    for training_job in (names.training_job, retried_training):
        assert stopped("processing", rule_job_name(training_job, "VanishingGradient"))
    for explanation_job in (names.explanation_job, retry_name(names.explanation_job, 2)):
        assert stopped("processing", explanation_job)
    assert not stopped("processing", names.transform_job)
