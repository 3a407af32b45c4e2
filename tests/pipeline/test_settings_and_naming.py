"""Pipeline settings (defaults + overrides) and SageMaker resource names."""

from datetime import datetime
from pathlib import Path

import pytest
from sagemaker_lifecycle.naming import (
    MAX_PROJECT_LENGTH,
    MAX_TUNING_JOB_NAME_LENGTH,
    NAME_PATTERN,
    check_name,
    retry_name,
    run_names,
)
from sagemaker_lifecycle.rule_jobs import rule_job_name
from sagemaker_lifecycle.settings import SettingsError, load_settings
from sagemaker_lifecycle.tasks import settings_from_params

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_bundled_defaults_are_valid(settings):
    assert settings["rules"]["engine"] == "sagemaker"
    assert settings["tuning"]["objective_metric"] in settings["metric_definitions"]


def test_overrides_merge_into_nested_settings_and_keep_siblings():
    merged = load_settings(
        {"tuning": {"max_jobs": 9}, "rules": {"debugger": {"Overfit": {"patience": "3"}}}}
    )
    assert merged["tuning"]["max_jobs"] == 9
    assert merged["tuning"]["max_parallel_jobs"] == load_settings()["tuning"]["max_parallel_jobs"]
    assert merged["rules"]["debugger"]["Overfit"] == {"patience": "3"}


def test_unknown_override_key_is_rejected_with_its_dotted_name():
    with pytest.raises(SettingsError, match=r"unknown setting 'tuning\.max_job'"):
        load_settings({"tuning": {"max_job": 9}})


def test_every_invalid_value_is_listed():
    with pytest.raises(SettingsError) as raised:
        load_settings({
            "rules": {"engine": "magic", "policy": {"Overfit": None, "Overtraining": "maybe"},
                      "approval": {"default": "Perhaps", "timeout_seconds": 0}},
            "tuning": {"max_jobs": 0},
        })  # fmt: skip
    message = str(raised.value)
    assert "rules.engine is 'magic'" in message
    assert "rules.policy has no entry for 'Overfit'" in message
    assert "rules.policy.Overtraining is 'maybe'; expected one of block, approve, warn" in message
    assert "rules.approval.default is 'Perhaps'; expected one of Approve, Reject" in message
    assert "rules.approval.timeout_seconds must be a positive number, got 0" in message
    assert "tuning.max_jobs must be a positive number" in message


def test_invalid_explanation_settings_are_each_named():
    with pytest.raises(SettingsError) as raised:
        load_settings({
            "explanations": {"enabled": "yes", "method": "shap", "samples_per_class": -1,
                             "install_captum": "no",
                             "max_misclassified": 2.5, "deletion_fraction": 1.0,
                             "max_runtime_seconds": 0},
        })  # fmt: skip
    message = str(raised.value)
    assert "explanations.enabled must be true or false, got 'yes'" in message
    assert "explanations.install_captum must be true or false, got 'no'" in message
    assert "explanations.method is 'shap'; expected one of gradcam, integrated_gradients" in message
    assert "explanations.samples_per_class must be a whole number >= 0, got -1" in message
    assert "explanations.max_misclassified must be a whole number >= 0, got 2.5" in message
    assert "explanations.deletion_fraction must be a number between 0 and 1, got 1.0" in message
    assert "explanations.max_runtime_seconds must be a whole number from 1 to 777600" in message


def test_invalid_deployment_update_settings_are_each_named():
    with pytest.raises(SettingsError) as raised:
        load_settings({"deployment": {"update": {
            "traffic_shifting": "rolling", "step_percent": 0, "wait_seconds": 7200,
            "termination_wait_seconds": "soon", "rollback_alarms": "my-alarm",
        }}})  # fmt: skip
    message = str(raised.value)
    assert "deployment.update.traffic_shifting is 'rolling'; expected one of all_at_once, " in (
        message
    )
    assert "deployment.update.step_percent must be a whole number from 1 to 100, got 0" in message
    assert "deployment.update.wait_seconds must be a whole number from 0 to 3600" in message
    assert "deployment.update.termination_wait_seconds must be a whole number" in message
    assert "rollback_alarms must be a list of CloudWatch alarm names, got 'my-alarm'" in message
    for shifting, percent, bounds in (("canary", 60, "1 to 50"), ("linear", 5, "10 to 50")):
        update = {"traffic_shifting": shifting, "step_percent": percent}
        expected = f"step_percent must be a whole number from {bounds}"
        with pytest.raises(SettingsError, match=expected):
            load_settings({"deployment": {"update": update}})
    with pytest.raises(SettingsError, match="names 11 alarms; SageMaker takes at most 10"):
        load_settings({"deployment": {"update": {"rollback_alarms": [f"a{i}" for i in range(11)]}}})


def test_grid_with_a_continuous_range_is_refused():
    with pytest.raises(SettingsError, match="Grid takes categorical ranges only"):
        load_settings({"tuning": {"strategy": "Grid"}})


def test_params_variables_and_overrides_apply_in_order():
    settings = settings_from_params(
        {"bucket": "from-param", "max_tuning_jobs": 3, "overrides": {"tuning": {"max_jobs": 7}}},
        {"sagemaker_bucket": "from-variable", "sagemaker_role_arn": "arn:aws:iam::1:role/x"},
    )
    assert settings["aws"]["bucket"] == "from-param"
    assert settings["aws"]["role_arn"] == "arn:aws:iam::1:role/x"
    assert settings["tuning"]["max_jobs"] == 7


def test_run_names_are_valid_deterministic_and_distinct_per_run():
    date = datetime(2026, 11, 21)
    first = run_names("dogbreed", "manual__1", date)
    assert first == run_names("dogbreed", "manual__1", date)
    assert first.training_job != run_names("dogbreed", "manual__2", date).training_job
    names = [first.tuning_job, first.training_job, first.model, first.endpoint_config,
             first.endpoint, first.transform_job]  # fmt: skip
    assert all(NAME_PATTERN.match(name) and len(name) <= 63 for name in names)
    assert len(first.tuning_job) <= MAX_TUNING_JOB_NAME_LENGTH
    assert first.endpoint == run_names("dogbreed", "scheduled__x", date).endpoint


def test_the_trial_endpoint_is_the_runs_own_and_fits_with_the_longest_project_name():
    date = datetime(2026, 11, 21)
    longest = "p" * MAX_PROJECT_LENGTH
    names = run_names(longest, "manual__1", date)
    assert NAME_PATTERN.match(names.trial_endpoint) and len(names.trial_endpoint) <= 63
    assert names.trial_endpoint.startswith(f"{names.endpoint}-trial-")
    assert names.trial_endpoint != run_names(longest, "manual__2", date).trial_endpoint


@pytest.mark.parametrize(
    ("name", "problem"),
    [("under_score", "not a valid SageMaker name"), ("-lead", "not a valid"), ("x" * 64, "64")],
)
def test_invalid_names_are_refused_with_the_reason(name, problem):
    with pytest.raises(ValueError, match=problem):
        check_name(name)


def test_project_prefix_too_long_for_a_tuning_job_name_is_refused():
    with pytest.raises(ValueError, match="characters long"):
        run_names("a-very-long-project", "run", datetime(2026, 1, 1))


def test_retry_and_rule_job_names_stay_within_limits():
    assert retry_name("x" * 32, 2, MAX_TUNING_JOB_NAME_LENGTH) == "x" * 29 + "-a2"
    name = rule_job_name("dogbreed-train-261121-0123abcd", "PoorWeightInitialization")
    assert name.startswith("dogbreed-train-261121-0123-PoorWeightInitialization-")
    assert NAME_PATTERN.match(name) and len(name) <= 63


def test_the_profile_named_by_pipeline_profile_is_merged_over_the_defaults(monkeypatch):
    from sagemaker_lifecycle.settings import load_defaults

    assert load_defaults()["hyperparameters"]["backbone"] == "resnet50"
    monkeypatch.setenv("PIPELINE_PROFILE", str(REPO_ROOT / "include" / "local.yaml"))
    profiled = load_defaults()
    assert profiled["hyperparameters"]["backbone"] == "simplecnn"
    assert profiled["tuning"]["strategy"] == "Bayesian"  # untouched keys stay


def test_the_candidates_default_to_resnet50_and_mobilenet_v2_and_each_changes_its_backbone():
    from sagemaker_lifecycle.settings import for_candidate

    settings = load_settings()
    assert [(c["name"], c["hyperparameters"]) for c in settings["candidates"]] == [
        ("resnet50", {"backbone": "resnet50"}),
        ("mobilenet-v2", {"backbone": "mobilenet_v2"}),
    ]
    mobile = for_candidate(settings, settings["candidates"][1])
    assert mobile["hyperparameters"]["backbone"] == "mobilenet_v2"
    assert mobile["hyperparameters"]["epochs"] == settings["hyperparameters"]["epochs"]
    assert settings["hyperparameters"]["backbone"] == "resnet50"  # the settings are untouched


@pytest.mark.parametrize(
    ("candidates", "problem"),
    [
        ([], "candidates must be a list of 1 to 10"),
        ([{"name": f"c{i}", "hyperparameters": {}} for i in range(11)], "list of 1 to 10"),
        ({"name": "a", "hyperparameters": {}}, "must be a list"),
        ([{"name": "a"}], r"candidates\[0\] must have exactly the keys name and hyperparameters"),
        ([{"name": "Big_Name", "hyperparameters": {}}], r"candidates\[0\].name 'Big_Name' must"),
        ([{"name": "a", "hyperparameters": {}}, {"name": "a", "hyperparameters": {}}],
         r"candidates\[1\].name 'a' is given twice"),
        ([{"name": "a", "hyperparameters": {"depth": 3}}],
         r"candidates\[0\].hyperparameters has unknown hyperparameters \['depth'\]"),
        ([{"name": "a", "hyperparameters": "resnet18"}], "must be a mapping"),
    ],
)  # fmt: skip
def test_invalid_candidates_are_refused_with_the_reason(candidates, problem):
    with pytest.raises(SettingsError, match=problem):
        load_settings({"candidates": candidates})


def test_candidate_names_extend_the_run_s_so_its_filters_match_them_and_fit_the_limits():
    longest = "p" * MAX_PROJECT_LENGTH
    run = run_names(longest, "manual__1", datetime(2026, 11, 21))
    last = run.candidate(9)
    assert len(last.tuning_job) <= MAX_TUNING_JOB_NAME_LENGTH
    for name in (last.tuning_job, last.training_job, last.model, last.transform_job,
                 last.explanation_job):  # fmt: skip
        assert NAME_PATTERN.match(name) and len(name) <= 63
    # What clean-up searches for (tasks.run_job_filters) finds every candidate's jobs too.
    assert last.tuning_job.startswith(run.tuning_job)
    assert run.run_stamp in last.training_job
    assert last.transform_job.startswith(run.transform_job)
    assert run.candidate(0).model != run.candidate(1).model != run.model
    with pytest.raises(ValueError, match="not a single digit"):
        run.candidate(10)
