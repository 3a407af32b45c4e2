"""Builders of the SageMaker API requests the pipeline sends.

Each function returns the exact parameter dict of one API call (CreateHyperParameterTuningJob,
CreateTrainingJob, CreateModel, CreateEndpointConfig, CreateEndpoint, CreateTransformJob,
CreateProcessingJob (the rule jobs' and the explanation job's), CreateModelPackage, and a tuning
job's WarmStartConfig), built from the pipeline settings (`settings.load_settings`), the run's
names (`naming.RunNames`) and the staged dataset (`staging.StagedDataset.as_dict()`). The tests
check every request against botocore's service model.

Hyperparameters are JSON-encoded as the SageMaker Python SDK's framework estimators send them
(`"lr": "0.001"`, `"backbone": "\"resnet50\""`); the training toolkit json-decodes them again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from sagemaker_lifecycle.naming import RunNames
from sagemaker_lifecycle.registry import PENDING, provenance_metadata

ENTRY_POINT = "train.py"
INFERENCE_ENTRY_POINT = "inference.py"
RULE_ENTRY_POINT = "evaluate_rules.py"
EXPLANATION_ENTRY_POINT = "explain.py"
# Where a processing job finds sagemaker_code/ (the `code` input, dataset["code_uri"]).
PROCESSING_CODE_DIR = "/opt/ml/processing/input/code"
EXPLANATION_INPUT_DIR = "/opt/ml/processing/input"
EXPLANATION_OUTPUT_DIR = "/opt/ml/processing/output/explanations"
# The evaluation report's sub-folder the explanation report is written to (and linked from).
EXPLANATIONS_FOLDER = "explanations"
# Channels train.py reads (SM_CHANNEL_TRAIN, SM_CHANNEL_VALID, SM_CHANNEL_TEST): the splits.
CHANNELS = ("train", "valid", "test")
# The channel train.py takes a resnet's starting weights from (one state-dict file).
PRETRAINED_CHANNEL = "pretrained"
LOG_LEVEL_INFO = 20
# Without Debugger (rules.engine processing) the hook's collections reach train.py in this job
# Environment variable (classifier/debugger.py), whose values AWS caps at 512 characters.
HOOK_CONFIG_VARIABLE = "CLASSIFIER_DEBUG_HOOK_CONFIG"
ENVIRONMENT_VALUE_MAX_CHARS = 512
# ... and the hook writes under <checkpoint dir>/debug-output, synced by the CheckpointConfig.
HOOK_CHECKPOINT_SUBFOLDER = "debug-output"
# What sagemaker_code/classifier/serving.py reads (Content-Type) and answers (Accept): a model
# version advertises these, not the provider's text/csv default.
SERVED_CONTENT_TYPES = ["image/jpeg", "image/png", "application/x-image",
                        "application/octet-stream", "application/json"]  # fmt: skip
SERVED_RESPONSE_TYPES = ["application/json", "text/csv"]
# deployment.mode: the candidates that passed behind one multi-model model, or the winner alone.
MULTI_MODEL, SINGLE_MODEL = "multi_model", "single_model"
DEPLOYMENT_MODES = (MULTI_MODEL, SINGLE_MODEL)
# Where multi-model models' archives live: <bucket>/models/<run stamp>/<candidate>.tar.gz.
MULTI_MODEL_FOLDER = "models"
ARCHIVE_SUFFIX = ".tar.gz"
# A candidate's name becomes an S3 key and a TargetModel (which allows any printable characters):
# kept to characters that need no escaping anywhere, and no "/" so it stays under the prefix.
CANDIDATE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# The model version's CustomerMetadataProperties key naming its candidate (its TargetModel).
CANDIDATE_KEY = "Candidate"


def encode_hyperparameter(value: Any) -> str:
    """A hyperparameter value as the SDK puts it on the wire (JSON text)."""
    return json.dumps(value)


def training_output_path(settings: Mapping) -> str:
    """S3 prefix under which SageMaker writes `<job>/output/model.tar.gz`, and the rules' input
    (`<job>/debug-output` from Debugger, `<job>/checkpoints/debug-output` without it)."""
    return f"s3://{settings['aws']['bucket']}/jobs"


def training_checkpoint_uri(settings: Mapping, training_job: str) -> str:
    """Where a processing-engine training job's CheckpointConfig syncs /opt/ml/checkpoints."""
    return f"{training_output_path(settings)}/{training_job}/checkpoints"


def _script_mode_hyperparameters(settings: Mapping, dataset: Mapping) -> dict[str, str]:
    """The `sagemaker_*` hyperparameters with which the toolkit runs train.py from the sourcedir."""
    return {
        "sagemaker_program": encode_hyperparameter(ENTRY_POINT),
        "sagemaker_submit_directory": encode_hyperparameter(dataset["sourcedir_uri"]),
        "sagemaker_container_log_level": encode_hyperparameter(LOG_LEVEL_INFO),
        "sagemaker_region": encode_hyperparameter(settings["aws"]["region"]),
    }


def static_hyperparameters(settings: Mapping, dataset: Mapping, tuned: set[str]) -> dict[str, str]:
    """Every configured hyperparameter except the `tuned` ones, plus script-mode settings."""
    user = {
        name: encode_hyperparameter(value)
        for name, value in settings["hyperparameters"].items()
        if name not in tuned
    }
    return {**user, **_script_mode_hyperparameters(settings, dataset)}


def tuned_hyperparameter_names(settings: Mapping) -> set[str]:
    tuning = settings["tuning"]
    return set(tuning["continuous"]) | set(tuning["integer"]) | set(tuning["categorical"])


def _algorithm_specification(settings: Mapping) -> dict[str, Any]:
    return {
        "TrainingImage": settings["images"]["training"],
        "TrainingInputMode": "File",
        "MetricDefinitions": [
            {"Name": name, "Regex": regex} for name, regex in settings["metric_definitions"].items()
        ],
    }


def _channel(name: str, s3_uri: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": s3_uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "InputMode": "File",
    }


def _input_data_config(settings: Mapping, dataset: Mapping) -> list[dict[str, Any]]:
    """The splits' channels, and `pretrained` when settings name a weights file for it."""
    channels = [
        _channel(split, dataset["channels"][split])
        for split in CHANNELS
        if split in dataset["channels"]
    ]
    weights = settings.get("pretrained_weights_uri")
    return [*channels, _channel(PRETRAINED_CHANNEL, weights)] if weights else channels


def _training_job_shape(settings: Mapping, dataset: Mapping, instance_count: int) -> dict[str, Any]:
    """The parts a tuning job's TrainingJobDefinition shares with a CreateTrainingJob request.

    With `instance_count` > 1 the job trains data-parallel over that many hosts (DDP over the
    hosts SageMaker names, sagemaker_code/classifier/distributed.py); only the first host writes
    the model, checkpoints and Debugger tensors, so the rules read the master's.
    """
    instances = settings["instances"]
    return {
        "AlgorithmSpecification": _algorithm_specification(settings),
        "RoleArn": settings["aws"]["role_arn"],
        "InputDataConfig": _input_data_config(settings, dataset),
        "OutputDataConfig": {"S3OutputPath": training_output_path(settings)},
        "ResourceConfig": {
            "InstanceType": instances["training"],
            "InstanceCount": instance_count,
            "VolumeSizeInGB": instances["volume_size_gb"],
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": instances["max_runtime_seconds"]},
    }


def _parameter_ranges(tuning: Mapping) -> dict[str, list[dict[str, Any]]]:
    def numeric(name: str, spec: Mapping) -> dict[str, Any]:
        return {
            "Name": name,
            "MinValue": str(spec["min"]),
            "MaxValue": str(spec["max"]),
            "ScalingType": spec.get("scaling", "Auto"),
        }

    return {
        "ContinuousParameterRanges": [
            numeric(name, spec) for name, spec in tuning["continuous"].items()
        ],
        "IntegerParameterRanges": [numeric(name, spec) for name, spec in tuning["integer"].items()],
        # Categorical values are JSON-encoded, as the SDK does for framework estimators.
        "CategoricalParameterRanges": [
            {"Name": name, "Values": [encode_hyperparameter(value) for value in values]}
            for name, values in tuning["categorical"].items()
        ],
    }


def tuning_job_request(settings: Mapping, names: RunNames, dataset: Mapping) -> dict[str, Any]:
    """CreateHyperParameterTuningJob parameters: the configured ranges over the staged dataset."""
    tuning = settings["tuning"]
    early_stopping = "Off" if tuning["strategy"] == "Hyperband" else tuning["early_stopping"]
    return {
        "HyperParameterTuningJobName": names.tuning_job,
        "HyperParameterTuningJobConfig": {
            "Strategy": tuning["strategy"],
            "HyperParameterTuningJobObjective": {
                "Type": tuning["objective_type"],
                "MetricName": tuning["objective_metric"],
            },
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": tuning["max_jobs"],
                "MaxParallelTrainingJobs": tuning["max_parallel_jobs"],
            },
            "ParameterRanges": _parameter_ranges(tuning),
            "TrainingJobEarlyStoppingType": early_stopping,
            **({} if tuning.get("random_seed") is None else {"RandomSeed": tuning["random_seed"]}),
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": static_hyperparameters(
                settings, dataset, tuned_hyperparameter_names(settings)
            ),
            **_training_job_shape(settings, dataset, settings["instances"]["tuning_trial_count"]),
        },
    }


def _tuned_signature(request: Mapping) -> dict[str, list[str]]:
    """Range type -> sorted names of the hyperparameters a tuning request tunes."""
    ranges = request["HyperParameterTuningJobConfig"]["ParameterRanges"]
    return {kind: sorted(r["Name"] for r in entries) for kind, entries in ranges.items()}


def _data_and_image(request: Mapping) -> tuple:
    definition = request["TrainingJobDefinition"]
    return definition["InputDataConfig"], definition["AlgorithmSpecification"]["TrainingImage"]


# The static hyperparameters that make two tuning jobs tune the same candidate architecture.
ARCHITECTURE_HYPERPARAMETERS = ("backbone",)


def same_architecture(parent: Mapping, request: Mapping) -> bool:
    """Whether the tuning job `parent` (its DescribeHyperParameterTuningJob response) trained the
    architecture that tuning `request` trains: only its trials tell where this one's best
    hyperparameters lie (a resnet50's learning rates say little about a mobilenet_v2's)."""
    static = [job["TrainingJobDefinition"]["StaticHyperParameters"] for job in (parent, request)]
    return all(static[0].get(name) == static[1].get(name) for name in ARCHITECTURE_HYPERPARAMETERS)


def warm_start_config(parent: Mapping, request: Mapping) -> dict[str, Any] | None:
    """The WarmStartConfig with which tuning `request` builds on the tuning job `parent`
    (its DescribeHyperParameterTuningJob response), or None when it cannot.

    SageMaker accepts a parent that optimised the same objective metric over the same tuned
    hyperparameters (ranges may change). Over the same data and training image the parent's
    trials count as this job's own (IdenticalDataAndAlgorithm); over a new dataset snapshot or
    image they only seed the search (TransferLearning).
    """
    config = request["HyperParameterTuningJobConfig"]
    parent_config = parent["HyperParameterTuningJobConfig"]
    objective, parent_objective = (
        c["HyperParameterTuningJobObjective"]["MetricName"] for c in (config, parent_config)
    )
    if objective != parent_objective or _tuned_signature(request) != _tuned_signature(parent):
        return None
    identical = _data_and_image(parent) == _data_and_image(request)
    return {
        "ParentHyperParameterTuningJobs": [
            {"HyperParameterTuningJobName": parent["HyperParameterTuningJobName"]}
        ],
        "WarmStartType": "IdenticalDataAndAlgorithm" if identical else "TransferLearning",
    }


def hook_collections(rules: Mapping) -> list[dict[str, Any]]:
    """The Debugger hook collections the configured rules need, merged without duplicates.

    As the SDK's `_prepare_collection_configs` does, a collection two rules need appears once
    (their parameters merged, the later rule winning a clash); `collection_overrides` (e.g. a
    smaller save_interval for tiny local runs) apply last, to every collection.
    """
    merged: dict[str, dict[str, str]] = {}
    for rule_name in rules["debugger"]:
        for collection, parameters in rules["collections"].get(rule_name, {}).items():
            merged.setdefault(collection, {}).update(parameters)
    for collection, parameters in merged.items():
        parameters.update(rules["collection_overrides"])
        merged[collection] = {key: str(value) for key, value in parameters.items()}
    return [
        {"CollectionName": collection, "CollectionParameters": parameters}
        for collection, parameters in sorted(merged.items())
    ]


def _rule_configurations(settings: Mapping, kind: str) -> list[dict[str, Any]]:
    """DebugRuleConfigurations (`kind` debugger) or ProfilerRuleConfigurations (profiler)."""
    return [
        {
            # No InstanceType or VolumeSizeInGB: the SDK sends neither for built-in rules, and
            # AWS documents them for custom rules only.
            "RuleConfigurationName": rule_name,
            "RuleEvaluatorImage": settings["images"]["rules"],
            "RuleParameters": {
                "rule_to_invoke": rule_name,
                **{key: str(value) for key, value in parameters.items()},
            },
        }
        for rule_name, parameters in settings["rules"][kind].items()
    ]


def _debugger_members(settings: Mapping) -> dict[str, Any]:
    """rules.engine sagemaker: the hook, the profiler and the rules, all for Debugger to run."""
    output_path = training_output_path(settings)
    return {
        "DebugHookConfig": {
            "S3OutputPath": output_path,
            "CollectionConfigurations": hook_collections(settings["rules"]),
        },
        "ProfilerConfig": {
            "S3OutputPath": output_path,
            "ProfilingIntervalInMilliseconds": settings["rules"]["profiling_interval_ms"],
        },
        "DebugRuleConfigurations": _rule_configurations(settings, "debugger"),
        "ProfilerRuleConfigurations": _rule_configurations(settings, "profiler"),
    }


def _hook_without_debugger(settings: Mapping, training_job: str) -> dict[str, Any]:
    """rules.engine processing: the hook's collections in the job's Environment, its tensors
    under the checkpoint dir, which CheckpointConfig (no Debugger feature) syncs to S3."""
    collections = json.dumps(
        {"CollectionConfigurations": hook_collections(settings["rules"])}, separators=(",", ":")
    )
    if len(collections) > ENVIRONMENT_VALUE_MAX_CHARS:
        raise ValueError(
            f"the hook collections of rules.debugger take {len(collections)} characters; a "
            f"training job's Environment value takes at most {ENVIRONMENT_VALUE_MAX_CHARS}"
        )
    return {
        "Environment": {HOOK_CONFIG_VARIABLE: collections},
        "CheckpointConfig": {"S3Uri": training_checkpoint_uri(settings, training_job)},
    }


def training_job_request(
    settings: Mapping, names: RunNames, dataset: Mapping, tuned: Mapping[str, str]
) -> dict[str, Any]:
    """CreateTrainingJob parameters for the best configuration, with the rules' hook.

    `tuned` holds the winning values as the tuning job reports them (TunedHyperParameters, wire
    strings). With rules.engine `sagemaker` the hook, the profiler and the rules ride on the job
    for Debugger; with `processing` the job uses no Debugger feature at all: the hook saves the
    tensors through a checkpoint sync and the rules run afterwards as processing jobs.
    """
    engine_members = (
        _debugger_members(settings)
        if settings["rules"]["engine"] == "sagemaker"
        else _hook_without_debugger(settings, names.training_job)
    )
    return {
        "TrainingJobName": names.training_job,
        "HyperParameters": {
            **static_hyperparameters(settings, dataset, set(tuned)),
            **tuned,
        },
        **_training_job_shape(settings, dataset, settings["instances"]["training_count"]),
        **engine_members,
    }


def inference_container(settings: Mapping, model_data_url: str) -> dict[str, Any]:
    """The inference image over the trained model.tar.gz `model_data_url` (a ContainerDefinition).

    The artifact carries `code/inference.py`, so the toolkit runs it from /opt/ml/model/code.
    """
    return {
        "Image": settings["images"]["inference"],
        "ModelDataUrl": model_data_url,
        "Environment": {
            "SAGEMAKER_PROGRAM": INFERENCE_ENTRY_POINT,
            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
            "SAGEMAKER_CONTAINER_LOG_LEVEL": str(LOG_LEVEL_INFO),
            "SAGEMAKER_REGION": settings["aws"]["region"],
            # Classes per prediction (inference.py's default is 3); evaluation reports top-k.
            "CLASSIFIER_TOP_K": str(settings["evaluation"]["top_k"]),
        },
    }


def _model(settings: Mapping, model_name: str, container: Mapping) -> dict[str, Any]:
    return {
        "ModelName": model_name,
        "PrimaryContainer": dict(container),
        "ExecutionRoleArn": settings["aws"]["role_arn"],
    }


def model_request(settings: Mapping, names: RunNames, model_data_url: str) -> dict[str, Any]:
    """CreateModel parameters of the run's model: `inference_container` over `model_data_url`."""
    return _model(settings, names.model, inference_container(settings, model_data_url))


def multi_model_prefix(settings: Mapping, names: RunNames) -> str:
    """The S3 prefix the run's multi-model model serves from: one `target_model` archive per
    candidate that passed (deployment.mode multi_model)."""
    return f"s3://{settings['aws']['bucket']}/{MULTI_MODEL_FOLDER}/{names.run_stamp}/"


def rollback_prefix(settings: Mapping, names: RunNames) -> str:
    """The prefix of a rollback run's multi-model model: the rolled-back version's archive alone."""
    return f"s3://{settings['aws']['bucket']}/{MULTI_MODEL_FOLDER}/{names.run_stamp}-rollback/"


def target_model(candidate: str) -> str:
    """The TargetModel that reaches `candidate` on a multi-model endpoint: the key of its
    archive relative to the model's prefix. ValueError for a name that cannot be such a key."""
    if not isinstance(candidate, str) or not CANDIDATE_PATTERN.match(candidate):
        raise ValueError(
            f"candidate name {candidate!r} cannot name a TargetModel: use letters, digits, "
            "'.', '_' and '-' (at most 100), starting with a letter or digit"
        )
    return f"{candidate}{ARCHIVE_SUFFIX}"


def invocation_target(settings: Mapping, candidate: str) -> dict[str, str]:
    """The InvokeEndpoint members that reach `candidate` on the model the run deploys (the smoke
    test's, a caller's): its TargetModel in multi_model mode, none in single_model."""
    if settings["deployment"]["mode"] == MULTI_MODEL:
        return {"TargetModel": target_model(candidate)}
    return {}


def as_multi_model(container: Mapping) -> dict[str, Any]:
    """`container` (a ContainerDefinition whose ModelDataUrl is a prefix) in multi-model mode.

    SAGEMAKER_SUBMIT_DIRECTORY is dropped: each model is extracted to a folder of its own, not
    /opt/ml/model, and the toolkit puts that folder's code/ on sys.path in multi-model mode."""
    environment = dict(container.get("Environment") or {})
    environment.pop("SAGEMAKER_SUBMIT_DIRECTORY", None)
    return {**container, "Mode": "MultiModel", "Environment": environment}


def multi_model_request(settings: Mapping, names: RunNames) -> dict[str, Any]:
    """CreateModel parameters of the run's model in multi-model mode: the inference container
    over `multi_model_prefix`, each candidate reached by its `target_model`."""
    container = inference_container(settings, multi_model_prefix(settings, names))
    return _model(settings, names.model, as_multi_model(container))


def deployed_model_request(
    settings: Mapping, names: RunNames, winner_artifact: str
) -> dict[str, Any]:
    """CreateModel parameters of the model the run deploys, as deployment.mode says: the
    multi-model model over the run's prefix (multi_model), or the winner's archive alone."""
    if settings["deployment"]["mode"] == MULTI_MODEL:
        return multi_model_request(settings, names)
    return model_request(settings, names, winner_artifact)


def model_package_group(settings: Mapping) -> str:
    """The project's model package group: registry.group, else `<project.name>-models`."""
    return settings["registry"]["group"] or f"{settings['project']['name']}-models"


def evaluation_report_prefix(
    settings: Mapping, names: RunNames, transform_job: str | None = None
) -> str:
    """Where the evaluation of `transform_job` (default: the run's own) writes its report
    (report.json, .html, ...): known before the evaluation runs, so the model version
    registered before deployment can point at it."""
    return f"s3://{settings['aws']['bucket']}/evaluation/{transform_job or names.transform_job}/"


def model_version_request(
    settings: Mapping,
    names: RunNames,
    dataset: Mapping,
    tuning: Mapping,
    training: Mapping,
    verdict: Mapping,
    candidate: str | None = None,
) -> dict[str, Any]:
    """CreateModelPackage parameters of the run's version in the project's group: the same
    inference container as CreateModel, the content types the handlers serve, the evaluation
    report as ModelQuality statistics, and where the model came from in the metadata, with the
    `candidate` it was trained as (CANDIDATE_KEY) when given, so a multi-model rollback knows its
    TargetModel."""
    container = inference_container(settings, training["ModelArtifact"])
    report = f"{evaluation_report_prefix(settings, names)}report.json"
    return {
        "ModelPackageGroupName": model_package_group(settings),
        "ModelPackageDescription": (
            f"{training['TrainingJobName']} on dataset snapshot {dataset['snapshot_id']}"
        ),
        "ModelApprovalStatus": PENDING,
        "InferenceSpecification": {
            "Containers": [container],
            "SupportedContentTypes": SERVED_CONTENT_TYPES,
            "SupportedResponseMIMETypes": SERVED_RESPONSE_TYPES,
            "SupportedRealtimeInferenceInstanceTypes": [settings["instances"]["endpoint"]],
            "SupportedTransformInstanceTypes": [settings["instances"]["transform"]],
        },
        "ModelMetrics": {
            "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": report}}
        },
        "CustomerMetadataProperties": {
            **provenance_metadata(dataset, tuning, training, verdict),
            **({} if candidate is None else {CANDIDATE_KEY: candidate}),
        },
    }


def model_from_version_request(
    settings: Mapping, model_name: str, version_arn: str
) -> dict[str, Any]:
    """CreateModel parameters of `model_name` from an Approved model version (the champion's,
    to score it; a rollback's, to serve it)."""
    return {
        "ModelName": model_name,
        "PrimaryContainer": {"ModelPackageName": version_arn},
        "ExecutionRoleArn": settings["aws"]["role_arn"],
    }


def _version_container(version: Mapping) -> Mapping:
    return version["InferenceSpecification"]["Containers"][0]


def version_candidate(version: Mapping) -> str:
    """The candidate a model version (DescribeModelPackage) was trained as: its TargetModel's
    name. ValueError for a version registered without one (before deployment.mode existed)."""
    candidate = (version.get("CustomerMetadataProperties") or {}).get(CANDIDATE_KEY)
    if candidate is None:
        raise ValueError(
            f"model version {version['ModelPackageArn']} records no {CANDIDATE_KEY!r} in its "
            "metadata, so no TargetModel is known for it: roll back to it with "
            f"deployment.mode {SINGLE_MODEL}"
        )
    return candidate


def rollback_archives(version: Mapping) -> dict[str, str]:
    """{candidate: model.tar.gz} of a version, to stage under `rollback_prefix`."""
    return {version_candidate(version): _version_container(version)["ModelDataUrl"]}


def rollback_model_request(settings: Mapping, names: RunNames, version: Mapping) -> dict[str, Any]:
    """CreateModel parameters of a rollback run's model `names.model` from the Approved
    `version` (DescribeModelPackage), as deployment.mode says.

    single_model: the version's own model (`model_from_version_request`). multi_model: the
    version's image and environment in multi-model mode over `rollback_prefix`, where its archive
    must be staged first (`multi_model.stage_archives` of `rollback_archives`), so callers'
    TargetModel of its candidate keeps working; other candidates' TargetModels get SageMaker's
    ValidationError, as they are not served."""
    if settings["deployment"]["mode"] == SINGLE_MODEL:
        return model_from_version_request(settings, names.model, version["ModelPackageArn"])
    version_candidate(version)  # refuse a version without a TargetModel before anything is made
    served = _version_container(version)
    container = {"Image": served["Image"], "ModelDataUrl": rollback_prefix(settings, names),
                 "Environment": dict(served.get("Environment") or {})}  # fmt: skip
    return _model(settings, names.model, as_multi_model(container))


def _variant(settings: Mapping, variant_name: str, model_name: str, weight: float) -> dict:
    deployment = settings["deployment"]
    return {
        "VariantName": variant_name,
        "ModelName": model_name,
        "InitialInstanceCount": deployment["instance_count"],
        "InstanceType": settings["instances"]["endpoint"],
        "InitialVariantWeight": weight,
    }


def endpoint_config_request(settings: Mapping, names: RunNames) -> dict[str, Any]:
    """CreateEndpointConfig parameters: one variant serving this run's model (a rollback's)."""
    variant = _variant(settings, settings["deployment"]["variant_name"], names.model, 1.0)
    return {"EndpointConfigName": names.endpoint_config, "ProductionVariants": [variant]}


def _named(config: Mapping, variant_name: str) -> dict | None:
    return next((dict(v) for v in config["ProductionVariants"]
                 if v["VariantName"] == variant_name), None)  # fmt: skip


def challenger_endpoint_config_request(
    settings: Mapping, names: RunNames, serving_config: Mapping | None
) -> dict[str, Any]:
    """CreateEndpointConfig parameters of the config that tries this run's model (the challenger)
    before its version is decided.

    Beside a champion (`serving_config`: DescribeEndpointConfig of the config the endpoint serves,
    variant `deployment.variant_name`), the champion's variant keeps every untargeted request and
    the challenger's (`deployment.challenger_variant_name`) has weight 0, so only requests that
    name it (TargetVariant) reach it. Without an endpoint yet (`serving_config` None: the
    project's first model) the challenger is the config's only variant, at weight 1: a config
    for the run's trial endpoint (`challenger_deployment`), never for the endpoint users call.
    No config built here has every weight at 0."""
    deployment = settings["deployment"]
    if serving_config is None:
        variant = _variant(settings, deployment["challenger_variant_name"], names.model, 1.0)
        return {"EndpointConfigName": names.challenger_endpoint_config,
                "ProductionVariants": [variant]}  # fmt: skip
    champion = _named(serving_config, deployment["variant_name"])
    if champion is None:
        raise ValueError(
            f"endpoint config {serving_config['EndpointConfigName']} has no variant "
            f"{deployment['variant_name']!r} (deployment.variant_name): the endpoint was not "
            "deployed by this pipeline, or deployment.variant_name changed since"
        )
    challenger = _variant(settings, deployment["challenger_variant_name"], names.model, 0.0)
    return {
        "EndpointConfigName": names.challenger_endpoint_config,
        "ProductionVariants": [{**champion, "InitialVariantWeight": 1.0}, challenger],
    }


def endpoint_request(
    settings: Mapping,
    names: RunNames,
    config_name: str | None = None,
    endpoint_name: str | None = None,
) -> dict[str, Any]:
    """CreateEndpoint (or UpdateEndpoint) parameters of `endpoint_name` (default: the endpoint
    users call) for `config_name` (default: the run's one-variant config), with the blue/green
    DeploymentConfig of `deployment.update` (CreateEndpoint keeps it as the endpoint's
    LastDeploymentConfig)."""
    return {
        "EndpointName": endpoint_name or names.endpoint,
        "EndpointConfigName": config_name or names.endpoint_config,
        "DeploymentConfig": deployment_config(settings["deployment"]["update"]),
    }


def challenger_deployment(
    settings: Mapping, names: RunNames, serving_config: Mapping | None
) -> dict[str, Any]:
    """{"EndpointConfig": ..., "Endpoint": ...}: the challenger's config
    (`challenger_endpoint_config_request`) and the request that deploys it: an UpdateEndpoint of
    the endpoint users call, beside the champion it serves (`serving_config`), or, for the
    project's first model (`serving_config` None), a CreateEndpoint of the run's trial endpoint:
    the endpoint users call is created only once a version is Approved (`promotion_actions`)."""
    config = challenger_endpoint_config_request(settings, names, serving_config)
    endpoint_name = names.endpoint if serving_config is not None else names.trial_endpoint
    return {
        "EndpointConfig": config,
        "Endpoint": endpoint_request(
            settings, names, config["EndpointConfigName"], endpoint_name=endpoint_name
        ),
    }


def promotion_actions(
    settings: Mapping, names: RunNames, challenger_config: Mapping, approved: bool
) -> dict[str, Any]:
    """What the endpoint does once the challenger's version is decided, given the config it was
    tried on (DescribeEndpointConfig of `challenger_endpoint_config_request`'s; one without the
    champion's variant was the first model's, on the run's trial endpoint):

    - `traffic`: beside a champion and Approved only, the UpdateEndpointWeightsAndCapacities
      request that gives the challenger's variant every request at once (weight 1, every other
      variant 0);
    - `endpoint`: the one-variant config the endpoint users call then settles on
      (`endpoint_config_request`'s name, variant `deployment.variant_name`, weight 1), with its
      request: the challenger's model when Approved, else the champion's, as it served before;
      the challenger's variant is gone either way. For an Approved first model this creates that
      endpoint. None for a first model that is not Approved: that endpoint never exists;
    - `retired`: the endpoint users call (`EndpointName`), whose configs keep what they serve,
      the challenger config and model, deleted once that endpoint does not serve them (a
      promoted challenger's model it does), and the trial endpoint (`TrialEndpointName`, None
      beside a champion), deleted before them.
    """
    deployment = settings["deployment"]
    challenger = _named(challenger_config, deployment["challenger_variant_name"])
    champion = _named(challenger_config, deployment["variant_name"])
    retired = {
        "EndpointName": names.endpoint,
        "EndpointConfigName": challenger_config["EndpointConfigName"],
        "ModelName": challenger["ModelName"],
        "TrialEndpointName": names.trial_endpoint if champion is None else None,
    }
    traffic = None
    if approved and champion is not None:
        traffic = {
            "EndpointName": names.endpoint,
            "DesiredWeightsAndCapacities": [
                {"VariantName": v["VariantName"],
                 "DesiredWeight": 1.0 if v["VariantName"] == challenger["VariantName"] else 0.0}
                for v in challenger_config["ProductionVariants"]
            ],
        }  # fmt: skip
    if approved:
        settled = challenger
    elif champion is not None:
        settled = champion
    else:
        return {"traffic": None, "endpoint": None, "retired": retired}
    variant = {**settled, "VariantName": deployment["variant_name"], "InitialVariantWeight": 1.0}
    config = {"EndpointConfigName": names.endpoint_config, "ProductionVariants": [variant]}
    return {
        "traffic": traffic,
        "endpoint": {"EndpointConfig": config, "Endpoint": endpoint_request(settings, names)},
        "retired": retired,
    }


def deployment_config(update: Mapping) -> dict[str, Any]:
    """DeploymentConfig of a blue/green update shifting traffic as `update` says."""
    routing: dict[str, Any] = {
        "Type": update["traffic_shifting"].upper(),  # ALL_AT_ONCE | CANARY | LINEAR
        "WaitIntervalInSeconds": update["wait_seconds"],
    }
    step = {"Type": "CAPACITY_PERCENT", "Value": update["step_percent"]}
    if update["traffic_shifting"] == "canary":
        routing["CanarySize"] = step
    elif update["traffic_shifting"] == "linear":
        routing["LinearStepSize"] = step
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": update["termination_wait_seconds"],
        }
    }
    if update["rollback_alarms"]:
        config["AutoRollbackConfiguration"] = {
            "Alarms": [{"AlarmName": name} for name in update["rollback_alarms"]]
        }
    return config


def transform_output_path(settings: Mapping, job_name: str) -> str:
    return f"s3://{settings['aws']['bucket']}/transform/{job_name}/"


def transform_job_request(
    settings: Mapping,
    names: RunNames,
    dataset: Mapping,
    model: str | None = None,
    job_name: str | None = None,
) -> dict[str, Any]:
    """CreateTransformJob parameters: every image of the evaluation split, one request each, by
    `model` (default: the run's own) as `job_name` (default: the run's transform job)."""
    transform = settings["transform"]
    job_name = job_name or names.transform_job
    return {
        "TransformJobName": job_name,
        "ModelName": model or names.model,
        "MaxConcurrentTransforms": transform["max_concurrent_transforms"],
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": dataset["channels"][transform["split"]],
                }
            },
            "ContentType": transform["content_type"],
            "SplitType": "None",
            "CompressionType": "None",
        },
        "TransformOutput": {
            "S3OutputPath": transform_output_path(settings, job_name),
            "Accept": transform["accept"],
            "AssembleWith": "None",
        },
        "TransformResources": {
            "InstanceType": settings["instances"]["transform"],
            "InstanceCount": 1,
        },
    }


def processing_input(name: str, uri: str, local_path: str) -> dict[str, Any]:
    """A ProcessingInput copying every object under the s3:// prefix `uri` to `local_path`."""
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
        },
    }


def explanation_output_uri(report_uri: str) -> str:
    """The explanations' prefix: the `explanations/` folder beside the evaluation's report.json
    (`report_uri`), so report.html links to them by a relative path."""
    return f"{report_uri.rsplit('/', 1)[0]}/{EXPLANATIONS_FOLDER}"


def explanation_job_request(
    settings: Mapping, names: RunNames, dataset: Mapping, model_artifact: str, report_uri: str
) -> dict[str, Any]:
    """CreateProcessingJob parameters: sagemaker_code/explain.py in the training image over the
    trained `model_artifact` (model.tar.gz) and the evaluated split, written beside the
    evaluation report `report_uri` (see explanation_output_uri)."""
    explanations = settings["explanations"]
    inputs = {"code": (dataset["code_uri"], PROCESSING_CODE_DIR),
              "model": (model_artifact, f"{EXPLANATION_INPUT_DIR}/model"),
              "images": (dataset["channels"][settings["transform"]["split"]],
                         f"{EXPLANATION_INPUT_DIR}/images")}  # fmt: skip
    # Passed although they equal explain.py's defaults: the local runtime rewrites /opt/ml paths
    # in arguments, not in a script's defaults.
    arguments = {
        "--model": inputs["model"][1],
        "--images": inputs["images"][1],
        "--output-dir": EXPLANATION_OUTPUT_DIR,
        "--method": explanations["method"],
        "--samples-per-class": explanations["samples_per_class"],
        "--max-misclassified": explanations["max_misclassified"],
        "--confused-pairs": explanations["confused_pairs"],
        "--images-per-pair": explanations["images_per_pair"],
        "--top-k": settings["evaluation"]["top_k"],
        "--deletion-fraction": explanations["deletion_fraction"],
        "--seed": settings["hyperparameters"].get("seed", 0),
    }
    return {
        "ProcessingJobName": names.explanation_job,
        "RoleArn": settings["aws"]["role_arn"],
        "AppSpecification": {
            "ImageUri": settings["images"]["training"],
            "ContainerEntrypoint": ["python3", f"{PROCESSING_CODE_DIR}/{EXPLANATION_ENTRY_POINT}"],
            "ContainerArguments": [
                *(str(x) for pair in arguments.items() for x in pair),
                *(["--install-captum"] if explanations["install_captum"] else []),
            ],
        },
        "ProcessingInputs": [
            processing_input(name, uri, local) for name, (uri, local) in inputs.items()
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": EXPLANATIONS_FOLDER,
                    "S3Output": {
                        "S3Uri": explanation_output_uri(report_uri),
                        "LocalPath": EXPLANATION_OUTPUT_DIR,
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": explanations["instance_type"],
                "VolumeSizeInGB": settings["instances"]["volume_size_gb"],
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": explanations["max_runtime_seconds"]},
    }
