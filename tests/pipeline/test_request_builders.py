"""Every request the pipeline sends, validated against botocore's SageMaker service model.

botocore checks required members, types and minimums; SageMaker's server also checks name
patterns and maximum lengths, so those are checked here as well.
"""

import json

import botocore.session
import pytest
from botocore.validate import validate_parameters
from sagemaker_lifecycle import request_builders as rb
from sagemaker_lifecycle.naming import NAME_PATTERN
from sagemaker_lifecycle.rule_jobs import rule_processing_requests
from sagemaker_lifecycle.settings import SettingsError

SERVICE = botocore.session.get_session().get_service_model("sagemaker")
TUNED = {"lr": "0.0031", "batch-size": '"16"'}


def assert_valid(operation: str, request: dict, name_key: str, max_length: int = 63) -> None:
    validate_parameters(request, SERVICE.operation_model(operation).input_shape)
    assert NAME_PATTERN.match(request[name_key]) and len(request[name_key]) <= max_length


def test_tuning_request_is_valid_and_encodes_hyperparameters_as_the_sdk(
    settings, names, staged_dataset
):
    request = rb.tuning_job_request(settings, names, staged_dataset)
    assert_valid("CreateHyperParameterTuningJob", request, "HyperParameterTuningJobName", 32)
    static = request["TrainingJobDefinition"]["StaticHyperParameters"]
    assert static["sagemaker_program"] == '"train.py"'
    assert json.loads(static["sagemaker_submit_directory"]) == staged_dataset["sourcedir_uri"]
    assert static["backbone"] == '"resnet50"' and static["epochs"] == "5"
    assert "lr" not in static and "batch-size" not in static  # tuned, not static
    ranges = request["HyperParameterTuningJobConfig"]["ParameterRanges"]
    assert ranges["CategoricalParameterRanges"] == [
        {"Name": "batch-size", "Values": ["16", "32", "64"]}
    ]
    assert ranges["ContinuousParameterRanges"][0]["ScalingType"] == "Logarithmic"
    channels = [c["ChannelName"] for c in request["TrainingJobDefinition"]["InputDataConfig"]]
    assert channels == ["train", "valid", "test"]


@pytest.mark.parametrize(("seed", "expected"), [(None, None), (0, 0), (1234, 1234)])
def test_tuning_request_carries_the_configured_random_seed(
    names, staged_dataset, settings_with, seed, expected
):
    settings = settings_with({"tuning": {"random_seed": seed}})
    request = rb.tuning_job_request(settings, names, staged_dataset)
    assert_valid("CreateHyperParameterTuningJob", request, "HyperParameterTuningJobName", 32)
    assert request["HyperParameterTuningJobConfig"].get("RandomSeed") == expected


def test_a_random_seed_that_is_not_a_whole_number_is_refused(settings_with):
    with pytest.raises(SettingsError, match=r"tuning\.random_seed must be null or an integer >= 0"):
        settings_with({"tuning": {"random_seed": 1.5}})


def test_tuning_trials_and_the_final_training_get_their_own_host_counts(
    names, staged_dataset, settings_with
):
    settings = settings_with({"instances": {"training_count": 2, "tuning_trial_count": 3}})
    tuning = rb.tuning_job_request(settings, names, staged_dataset)
    training = rb.training_job_request(settings, names, staged_dataset, {"lr": "0.01"})
    assert_valid("CreateTrainingJob", training, "TrainingJobName", 63)
    assert tuning["TrainingJobDefinition"]["ResourceConfig"]["InstanceCount"] == 3
    assert training["ResourceConfig"]["InstanceCount"] == 2


@pytest.mark.parametrize("count", [0, 1.5, "2", True])
def test_a_host_count_that_is_not_a_whole_number_of_hosts_is_refused(settings_with, count):
    with pytest.raises(SettingsError, match=r"instances\.training_count must be an integer >= 1"):
        settings_with({"instances": {"training_count": count}})


def test_hyperband_forces_early_stopping_off(names, staged_dataset, settings_with):
    settings = settings_with({"tuning": {"strategy": "Hyperband", "early_stopping": "Auto"}})
    config = rb.tuning_job_request(settings, names, staged_dataset)["HyperParameterTuningJobConfig"]
    assert config["TrainingJobEarlyStoppingType"] == "Off"


def test_training_request_carries_best_values_debugger_hook_and_all_rules(
    settings, names, staged_dataset
):
    request = rb.training_job_request(settings, names, staged_dataset, TUNED)
    assert_valid("CreateTrainingJob", request, "TrainingJobName")
    assert request["HyperParameters"]["lr"] == "0.0031"
    assert request["HyperParameters"]["batch-size"] == '"16"'
    rules = {r["RuleConfigurationName"]: r for r in request["DebugRuleConfigurations"]}
    assert set(rules) == {"VanishingGradient", "Overfit", "Overtraining",
                          "PoorWeightInitialization", "LossNotDecreasing"}  # fmt: skip
    assert all(r["RuleParameters"]["rule_to_invoke"] == name for name, r in rules.items())
    assert all(r["RuleEvaluatorImage"] == settings["images"]["rules"] for r in rules.values())
    # Built-in rules: what the SDK sends; InstanceType and VolumeSizeInGB are for custom rules.
    built_in = [*rules.values(), *request["ProfilerRuleConfigurations"]]
    assert not any({"InstanceType", "VolumeSizeInGB"} & set(rule) for rule in built_in)
    profiler = [r["RuleConfigurationName"] for r in request["ProfilerRuleConfigurations"]]
    assert profiler == ["LowGPUUtilization", "ProfilerReport"]
    collections = {c["CollectionName"]: c["CollectionParameters"]
                   for c in request["DebugHookConfig"]["CollectionConfigurations"]}  # fmt: skip
    assert collections == {
        "gradients": {"save_interval": "500"},
        "losses": {"save_interval": "500"},
        "relu_input": {"include_regex": ".*relu_input", "save_interval": "500"},
    }


def test_collection_overrides_and_rule_parameters_become_strings(
    names, staged_dataset, settings_with
):
    settings = settings_with({
        "rules": {"collection_overrides": {"save_interval": 2},
                  "debugger": {"Overfit": {"patience": 3}}},
    })  # fmt: skip
    request = rb.training_job_request(settings, names, staged_dataset, TUNED)
    assert_valid("CreateTrainingJob", request, "TrainingJobName")
    params = [c["CollectionParameters"]["save_interval"]
              for c in request["DebugHookConfig"]["CollectionConfigurations"]]  # fmt: skip
    assert params == ["2", "2", "2"]
    overfit = next(r for r in request["DebugRuleConfigurations"]
                   if r["RuleConfigurationName"] == "Overfit")  # fmt: skip
    assert overfit["RuleParameters"] == {"rule_to_invoke": "Overfit", "patience": "3"}


DEBUGGER_MEMBERS = {"DebugHookConfig", "ProfilerConfig", "DebugRuleConfigurations",
                    "ProfilerRuleConfigurations", "TensorBoardOutputConfig"}  # fmt: skip


def test_sagemaker_engine_uses_debugger_and_no_checkpoint_or_environment(
    settings, names, staged_dataset
):
    request = rb.training_job_request(settings, names, staged_dataset, TUNED)
    assert DEBUGGER_MEMBERS - set(request) == {"TensorBoardOutputConfig"}
    assert "CheckpointConfig" not in request and "Environment" not in request


def test_processing_engine_sends_no_debugger_member_and_the_hook_config_in_the_environment(
    names, staged_dataset, settings_with
):
    settings = settings_with({"rules": {"engine": "processing"}})
    request = rb.training_job_request(settings, names, staged_dataset, TUNED)
    assert_valid("CreateTrainingJob", request, "TrainingJobName")
    assert not DEBUGGER_MEMBERS & set(request)
    hook_config = request["Environment"][rb.HOOK_CONFIG_VARIABLE]
    assert len(hook_config) <= 512
    assert json.loads(hook_config) == {
        "CollectionConfigurations": rb.hook_collections(settings["rules"])
    }
    assert request["CheckpointConfig"] == {
        "S3Uri": f"s3://{settings['aws']['bucket']}/jobs/{names.training_job}/checkpoints"
    }


def test_processing_engine_refuses_hook_collections_longer_than_an_environment_value(
    names, staged_dataset, settings_with
):
    settings = settings_with({
        "rules": {"engine": "processing", "collection_overrides": {"include_regex": "x" * 200}},
    })  # fmt: skip
    with pytest.raises(ValueError, match="at most 512"):
        rb.training_job_request(settings, names, staged_dataset, TUNED)


def test_processing_engine_runs_one_job_per_debugger_rule_over_the_checkpointed_tensors(
    names, staged_dataset, settings_with
):
    settings = settings_with({"rules": {"engine": "processing"}})
    request = rb.training_job_request(settings, names, staged_dataset, TUNED)
    # A retried attempt (-a2) shares the first attempt's CheckpointConfig, so the rule jobs read
    # the tensors where the training job's own CheckpointConfig put them.
    training = {
        "TrainingJobName": f"{request['TrainingJobName']}-a2",
        "CheckpointS3Uri": request["CheckpointConfig"]["S3Uri"],
    }
    rule_requests = rule_processing_requests(settings, staged_dataset, training)
    assert len(rule_requests) == len(settings["rules"]["debugger"]) == 5
    for rule_request in rule_requests:
        assert_valid("CreateProcessingJob", rule_request, "ProcessingJobName")
        arguments = rule_request["AppSpecification"]["ContainerArguments"]
        assert arguments[arguments.index("--rule") + 1] == rule_request["Environment"]["RULE_NAME"]
        inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in rule_request["ProcessingInputs"]}
        # Container paths go in as arguments too: a runtime can rewrite those, not the defaults.
        paths = {
            i["InputName"]: i["S3Input"]["LocalPath"] for i in rule_request["ProcessingInputs"]
        }
        paths["output-dir"] = rule_request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"][
            "LocalPath"
        ]
        for name in ("debug-output", "output-dir"):
            assert arguments[arguments.index(f"--{name}") + 1] == paths[name]
        assert set(inputs) == {"code", "debug-output"}
        assert inputs["code"] == staged_dataset["code_uri"]
        assert inputs["debug-output"] == (
            f"{request['CheckpointConfig']['S3Uri']}/{rb.HOOK_CHECKPOINT_SUBFOLDER}"
        )


def test_deployment_requests_are_valid(settings, names, staged_dataset):
    model = rb.model_request(settings, names, "s3://b/jobs/j/output/model.tar.gz")
    assert_valid("CreateModel", model, "ModelName")
    assert model["PrimaryContainer"]["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    config = rb.endpoint_config_request(settings, names)
    assert_valid("CreateEndpointConfig", config, "EndpointConfigName")
    assert config["ProductionVariants"][0]["ModelName"] == model["ModelName"]
    assert_valid("CreateEndpoint", rb.endpoint_request(settings, names), "EndpointName")
    transform = rb.transform_job_request(settings, names, staged_dataset)
    assert_valid("CreateTransformJob", transform, "TransformJobName")
    source = transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
    assert source == staged_dataset["channels"]["valid"]


@pytest.mark.parametrize("strategy", ["Bayesian", "Random", "Grid"])
def test_every_strategy_builds_a_valid_request(strategy, names, staged_dataset, settings_with):
    # Grid takes categorical ranges only: the None drops the continuous lr range.
    settings = settings_with({"tuning": {"strategy": strategy, "continuous": {"lr": None}}})
    request = rb.tuning_job_request(settings, names, staged_dataset)
    assert_valid("CreateHyperParameterTuningJob", request, "HyperParameterTuningJobName", 32)


def test_warm_start_over_the_same_snapshot_reuses_the_parents_trials(
    settings, names, staged_dataset
):
    parent = {**rb.tuning_job_request(settings, names, staged_dataset),
              "HyperParameterTuningJobName": "dogbreed-tune-261101-aaaaaaaa"}  # fmt: skip
    request = rb.tuning_job_request(settings, names, staged_dataset)
    request["WarmStartConfig"] = rb.warm_start_config(parent, request)
    assert request["WarmStartConfig"] == {
        "ParentHyperParameterTuningJobs": [
            {"HyperParameterTuningJobName": "dogbreed-tune-261101-aaaaaaaa"}
        ],
        "WarmStartType": "IdenticalDataAndAlgorithm",
    }
    assert_valid("CreateHyperParameterTuningJob", request, "HyperParameterTuningJobName", 32)


def test_warm_start_over_a_new_snapshot_transfers_and_a_new_objective_starts_cold(
    settings_with, names, staged_dataset
):
    parent = rb.tuning_job_request(settings_with(), names, staged_dataset)
    refreshed = {**staged_dataset, "channels": {
        split: uri.replace("0123456789abcdef", "fedcba9876543210")
        for split, uri in staged_dataset["channels"].items()}}  # fmt: skip
    request = rb.tuning_job_request(settings_with(), names, refreshed)
    assert rb.warm_start_config(parent, request)["WarmStartType"] == "TransferLearning"
    minimizing = settings_with({"tuning": {"objective_metric": "valid_loss",
                                           "objective_type": "Minimize"}})  # fmt: skip
    assert rb.warm_start_config(parent, rb.tuning_job_request(minimizing, names, refreshed)) is None
    more_ranges = settings_with({"tuning": {"integer": {"epochs": {"min": 1, "max": 3}}}})
    assert (
        rb.warm_start_config(parent, rb.tuning_job_request(more_ranges, names, refreshed)) is None
    )


def test_offline_jobs_get_a_pretrained_channel_or_train_from_scratch(
    names, staged_dataset, settings_with
):
    weights = "s3://dog-breed-classifier/weights/resnet50.pth"
    settings = settings_with({"pretrained_weights_uri": weights})
    for request, operation, name_key, max_length in (
        (rb.training_job_request(settings, names, staged_dataset, TUNED),
         "CreateTrainingJob", "TrainingJobName", 63),
        (rb.tuning_job_request(settings, names, staged_dataset),
         "CreateHyperParameterTuningJob", "HyperParameterTuningJobName", 32),
    ):  # fmt: skip
        assert_valid(operation, request, name_key, max_length)
        shape = request.get("TrainingJobDefinition", request)
        channels = {c["ChannelName"]: c for c in shape["InputDataConfig"]}
        assert channels["pretrained"]["DataSource"]["S3DataSource"]["S3Uri"] == weights
    assert "pretrained" not in {
        c["ChannelName"]
        for c in rb.training_job_request(settings_with(), names, staged_dataset, TUNED)[
            "InputDataConfig"
        ]
    }
    scratch = settings_with({"hyperparameters": {"pretrained-weights": "none", "freeze": "full"}})
    hyperparameters = rb.training_job_request(scratch, names, staged_dataset, TUNED)[
        "HyperParameters"
    ]
    assert hyperparameters["pretrained-weights"] == '"none"'


def test_a_pretrained_weights_uri_must_be_in_s3(settings_with):
    from sagemaker_lifecycle.settings import SettingsError

    with pytest.raises(SettingsError, match="pretrained_weights_uri must be an s3:// URI"):
        settings_with({"pretrained_weights_uri": "/home/me/resnet50.pth"})


@pytest.mark.parametrize(
    ("shifting", "size_key"), [("all_at_once", None), ("canary", "CanarySize"),
                               ("linear", "LinearStepSize")]
)  # fmt: skip
def test_each_traffic_shifting_builds_a_valid_blue_green_update(
    shifting, size_key, names, settings_with
):
    update = {"traffic_shifting": shifting, "step_percent": 25, "wait_seconds": 120,
              "termination_wait_seconds": 60,
              "rollback_alarms": ["a-5xx", "a-latency"]}  # fmt: skip
    request = rb.endpoint_request(settings_with({"deployment": {"update": update}}), names)
    assert_valid("UpdateEndpoint", request, "EndpointName")
    policy = request["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    routing = policy["TrafficRoutingConfiguration"]
    assert routing["Type"] == shifting.upper()
    assert routing["WaitIntervalInSeconds"] == 120
    assert policy["TerminationWaitInSeconds"] == 60
    sizes = {key: routing[key] for key in ("CanarySize", "LinearStepSize") if key in routing}
    assert sizes == ({size_key: {"Type": "CAPACITY_PERCENT", "Value": 25}} if size_key else {})
    assert request["DeploymentConfig"]["AutoRollbackConfiguration"] == {
        "Alarms": [{"AlarmName": "a-5xx"}, {"AlarmName": "a-latency"}]
    }


def test_no_rollback_alarms_means_no_auto_rollback_configuration(names, settings):
    assert (
        "AutoRollbackConfiguration" not in rb.endpoint_request(settings, names)["DeploymentConfig"]
    )


def test_the_explanation_job_explains_the_trained_model_on_the_evaluated_split(
    settings, names, staged_dataset
):
    model = "s3://b/jobs/j/output/model.tar.gz"
    report = f"s3://{settings['aws']['bucket']}/evaluation/{names.transform_job}/report.json"
    request = rb.explanation_job_request(settings, names, staged_dataset, model, report)
    assert_valid("CreateProcessingJob", request, "ProcessingJobName")
    assert request["ProcessingJobName"] == names.explanation_job
    inputs = {i["InputName"]: i["S3Input"] for i in request["ProcessingInputs"]}
    assert inputs["code"]["S3Uri"] == staged_dataset["code_uri"]
    assert inputs["model"]["S3Uri"] == model
    assert inputs["images"]["S3Uri"] == staged_dataset["channels"][settings["transform"]["split"]]
    output = request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]
    # Beside the evaluation report, in the folder its HTML links to.
    assert output["S3Uri"] == report.replace("report.json", rb.EXPLANATIONS_FOLDER)
    *arguments, install = request["AppSpecification"]["ContainerArguments"]
    # AWS's PyTorch images lack Captum (explanations.install_captum, true by default).
    assert install == "--install-captum"
    given = dict(zip(arguments[::2], arguments[1::2], strict=True))
    # Container paths go in as arguments too: a runtime can rewrite those, not the defaults.
    assert given["--model"] == inputs["model"]["LocalPath"]
    assert given["--images"] == inputs["images"]["LocalPath"]
    assert given["--output-dir"] == output["LocalPath"]
    explanations = settings["explanations"]
    assert given["--method"] == explanations["method"] == "gradcam"
    assert given["--max-misclassified"] == str(explanations["max_misclassified"])
    assert given["--deletion-fraction"] == "0.2"
    assert given["--top-k"] == str(settings["evaluation"]["top_k"])
    entry = request["AppSpecification"]["ContainerEntrypoint"]
    assert entry == ["python3", f"{rb.PROCESSING_CODE_DIR}/{rb.EXPLANATION_ENTRY_POINT}"]
    assert request["StoppingCondition"]["MaxRuntimeInSeconds"] == 3600


def test_an_image_with_captum_gets_no_install_flag(settings_with, names, staged_dataset):
    settings = settings_with({"explanations": {"install_captum": False}})
    request = rb.explanation_job_request(
        settings, names, staged_dataset, "s3://b/m.tar.gz", "s3://b/evaluation/t/report.json"
    )
    assert "--install-captum" not in request["AppSpecification"]["ContainerArguments"]


def test_a_tuning_job_of_another_architecture_is_not_a_warm_start_parent(
    settings_with, names, staged_dataset
):
    resnet = rb.tuning_job_request(settings_with(), names, staged_dataset)
    mobile = rb.tuning_job_request(
        settings_with({"hyperparameters": {"backbone": "mobilenet_v2"}}), names, staged_dataset
    )
    longer = rb.tuning_job_request(
        settings_with({"hyperparameters": {"epochs": 9}}), names, staged_dataset
    )
    assert not rb.same_architecture(resnet, mobile)
    assert rb.same_architecture(resnet, longer)  # other settings of the same network
