"""Pipeline settings: the defaults in include/pipeline.yaml deep-merged with a run's overrides.

Settings are a plain nested dict (JSON-serialisable, so they travel through XCom unchanged).
`load_settings` rejects override keys that the defaults do not have, so a typo in a DAG-run conf
fails the run at once instead of being silently ignored.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sagemaker_lifecycle.naming import MAX_NAME_LENGTH, NAME_PATTERN, check_name
from sagemaker_lifecycle.registry import METRICS, WHEN_WORSE
from sagemaker_lifecycle.request_builders import DEPLOYMENT_MODES

# include/ sits next to plugins/ in the Astronomer layout; PIPELINE_SETTINGS_FILE points elsewhere.
DEFAULT_SETTINGS_FILE = Path(__file__).resolve().parents[2] / "include" / "pipeline.yaml"
PROFILE_VARIABLE = "PIPELINE_PROFILE"

RULE_ENGINES = ("sagemaker", "processing")
RULE_POLICIES = ("block", "approve", "warn")
APPROVAL_ANSWERS = ("Approve", "Reject")
TUNING_STRATEGIES = ("Bayesian", "Random", "Hyperband", "Grid")
OBJECTIVE_TYPES = ("Maximize", "Minimize")
TRAFFIC_SHIFTING = ("all_at_once", "canary", "linear")
MAX_ROLLBACK_ALARMS = 10  # AutoRollbackConfiguration.Alarms
STEP_PERCENT_BOUNDS = {"canary": (1, 50), "linear": (10, 50)}
EXPLANATION_METHODS = ("gradcam", "integrated_gradients")
EXPLANATION_COUNTS = ("samples_per_class", "max_misclassified", "confused_pairs", "images_per_pair")
# One digit of candidate index keeps a candidate's tuning job name within SageMaker's 32
# characters (naming.RunNames.candidate); ten architectures per run is plenty anyway.
MAX_CANDIDATES = 10
CANDIDATE_NAME = re.compile(r"^[a-z0-9](-?[a-z0-9])*$")
MAX_CANDIDATE_NAME_LENGTH = 40


# Settings a DAG run's `overrides` may not set: what points at this machine's files, and the
# container images (which the local runtime maps to local interpreters). Only whoever deploys
# the pipeline sets them, in the settings file.
DEPLOYMENT_ONLY = ("dataset.cache_dir", "images")


class SettingsError(ValueError):
    """The pipeline settings are invalid; the message lists every problem found."""


def _dotted_keys(mapping: Mapping, prefix: str = "") -> list[str]:
    keys = []
    for key, value in mapping.items():
        keys.append(f"{prefix}{key}")
        if isinstance(value, Mapping):
            keys += _dotted_keys(value, f"{prefix}{key}.")
    return keys


def check_run_overrides(overrides: Mapping | None) -> Mapping:
    """`overrides` (a DAG run's param) itself; SettingsError naming every key it may not set."""
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise SettingsError(f"overrides must be a mapping of settings, got {overrides!r}")
    refused = [
        key
        for key in _dotted_keys(overrides)
        if any(key == name or key.startswith(f"{name}.") for name in DEPLOYMENT_ONLY)
    ]
    if refused:
        raise SettingsError(
            f"overrides may not set {', '.join(refused)}: file paths and images are set by "
            "whoever deploys the pipeline, in include/pipeline.yaml (PIPELINE_SETTINGS_FILE)"
        )
    return overrides


def settings_file() -> Path:
    """The YAML file with the defaults (env PIPELINE_SETTINGS_FILE overrides the bundled one)."""
    return Path(os.environ.get("PIPELINE_SETTINGS_FILE", DEFAULT_SETTINGS_FILE))


def _read_mapping(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        loaded = yaml.safe_load(handle)
    if not isinstance(loaded, dict):
        raise SettingsError(f"{path}: expected a mapping at the top level")
    return loaded


def load_defaults(path: Path | None = None) -> dict[str, Any]:
    """The defaults as a nested dict: `path` (default: `settings_file()`), with the profile that
    the environment variable PIPELINE_PROFILE names (include/local.yaml in docker compose)
    merged over them."""
    defaults = _read_mapping(path or settings_file())
    profile = os.environ.get(PROFILE_VARIABLE)
    return deep_merge(defaults, _read_mapping(Path(profile))) if profile else defaults


def deep_merge(base: Mapping, overrides: Mapping, path: str = "") -> dict[str, Any]:
    """`base` with `overrides` merged in; nested mappings merge, anything else replaces.

    Raises SettingsError naming the dotted key of an override the base does not have. Mappings
    whose base value is an empty mapping (e.g. rule parameters) accept any keys. A None value
    removes the key (e.g. `{"tuning": {"continuous": {"lr": None}}}` stops tuning lr).
    """
    merged = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        dotted = f"{path}{key}"
        if value is None:
            merged.pop(key, None)
        elif key not in merged:
            if base:
                raise SettingsError(f"unknown setting {dotted!r}")
            merged[key] = copy.deepcopy(value)
        elif isinstance(merged[key], Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(merged[key], value, f"{dotted}.")
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_settings(*overrides: Mapping | None, path: Path | None = None) -> dict[str, Any]:
    """The defaults with each of `overrides` merged in, in order, checked.

    Raises SettingsError listing every problem when the result is invalid.
    """
    settings = load_defaults(path)
    for override in overrides:
        settings = deep_merge(settings, override or {})
    problems = find_problems(settings)
    if problems:
        raise SettingsError("invalid pipeline settings:\n- " + "\n- ".join(problems))
    return settings


def in_region(settings: Mapping[str, Any], connection_region: str | None) -> dict[str, Any]:
    """`settings` with aws.region set to `connection_region`, where the connection runs the jobs.

    Raises SettingsError when the connection names no region, or when aws.region names another
    one: image URIs are derived for aws.region, and SageMaker refuses to pull images from
    another region's registry.
    """
    configured = settings["aws"]["region"]
    if not connection_region:
        raise SettingsError(
            "the AWS connection names no region: set region_name in its extra "
            "(or AWS_DEFAULT_REGION where Airflow runs)"
        )
    if configured and configured != connection_region:
        raise SettingsError(
            f"aws.region is {configured!r}, but the AWS connection runs the jobs in "
            f"{connection_region!r}, and SageMaker pulls images only from its own region: set "
            f"aws.region (or the Variable sagemaker_region) to {connection_region!r}, or unset it"
        )
    return deep_merge(settings, {"aws": {"region": connection_region}})


def find_problems(settings: Mapping[str, Any]) -> list[str]:
    """Every inconsistency in `settings`, as readable sentences (empty when valid)."""
    problems = []
    rules = settings["rules"]
    tuning = settings["tuning"]

    def expect_choice(dotted: str, value: Any, choices: tuple) -> None:
        if value not in choices:
            problems.append(f"{dotted} is {value!r}; expected one of {', '.join(choices)}")

    expect_choice("rules.engine", rules["engine"], RULE_ENGINES)
    expect_choice("tuning.strategy", tuning["strategy"], TUNING_STRATEGIES)
    expect_choice("deployment.mode", settings["deployment"]["mode"], DEPLOYMENT_MODES)
    expect_choice("tuning.objective_type", tuning["objective_type"], OBJECTIVE_TYPES)
    if tuning["objective_metric"] not in settings["metric_definitions"]:
        problems.append(
            f"tuning.objective_metric {tuning['objective_metric']!r} has no regex in "
            "metric_definitions"
        )
    problems += _gate_policy_problems(rules)
    problems += _update_problems(settings["deployment"]["update"])
    problems += _variant_problems(settings["deployment"])
    problems += _registry_problems(settings["registry"])
    problems += _explanation_problems(settings["explanations"])
    problems += _candidate_problems(settings["candidates"], settings["hyperparameters"])
    for dotted, value in (
        ("tuning.max_jobs", tuning["max_jobs"]),
        ("tuning.max_parallel_jobs", tuning["max_parallel_jobs"]),
        ("polling.interval_seconds", settings["polling"]["interval_seconds"]),
        ("deployment.instance_count", settings["deployment"]["instance_count"]),
    ):
        if not isinstance(value, int | float) or value <= 0:
            problems.append(f"{dotted} must be a positive number, got {value!r}")
    for dotted in ("instances.training_count", "instances.tuning_trial_count"):
        count = settings["instances"][dotted.split(".")[1]]
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            problems.append(f"{dotted} must be an integer >= 1 (hosts per job), got {count!r}")
    seed = tuning.get("random_seed")  # an override of None removes it
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        problems.append(f"tuning.random_seed must be null or an integer >= 0, got {seed!r}")
    if tuning["strategy"] == "Grid" and (tuning["continuous"] or tuning["integer"]):
        problems.append("tuning.strategy Grid takes categorical ranges only")
    tuned = set(tuning["continuous"]) | set(tuning["integer"]) | set(tuning["categorical"])
    if not tuned:
        problems.append(
            "tuning has no ranges: give at least one continuous, integer or categorical"
        )
    weights = settings.get("pretrained_weights_uri")
    if weights is not None and not str(weights).startswith("s3://"):
        problems.append(f"pretrained_weights_uri must be an s3:// URI, got {weights!r}")
    if not settings["aws"]["role_arn"].startswith("arn:"):
        problems.append(
            f"aws.role_arn must be an IAM role ARN, got {settings['aws']['role_arn']!r}"
        )
    return problems


def _variant_problems(deployment: Mapping[str, Any]) -> list[str]:
    """The champion's and the challenger's variant names: valid SageMaker names, and distinct
    (both serve on one endpoint while the challenger is tried)."""
    names = {key: deployment[key] for key in ("variant_name", "challenger_variant_name")}
    problems = []
    for key, name in names.items():
        try:
            check_name(str(name))
        except ValueError as error:
            problems.append(f"deployment.{key}: {error}")
    if names["variant_name"] == names["challenger_variant_name"]:
        problems.append(
            f"deployment.variant_name and deployment.challenger_variant_name are both "
            f"{names['variant_name']!r}: the challenger's variant must have its own name"
        )
    return problems


def _update_problems(update: Mapping[str, Any]) -> list[str]:
    """What is wrong with `deployment.update` (the bounds are DeploymentConfig's)."""
    problems = []
    if update["traffic_shifting"] not in TRAFFIC_SHIFTING:
        problems.append(
            f"deployment.update.traffic_shifting is {update['traffic_shifting']!r}; expected one "
            f"of {', '.join(TRAFFIC_SHIFTING)}"
        )
    # AWS: a canary of at most half the new fleet, linear steps of 10 to 50 % of it.
    step_low, step_high = STEP_PERCENT_BOUNDS.get(update["traffic_shifting"], (1, 100))
    for key, low, high in (("step_percent", step_low, step_high), ("wait_seconds", 0, 3600),
                           ("termination_wait_seconds", 0, 3600)):  # fmt: skip
        value = update[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            problems.append(
                f"deployment.update.{key} must be a whole number from {low} to {high}, "
                f"got {value!r}"
            )
    alarms = update["rollback_alarms"]
    if not isinstance(alarms, list) or not all(
        isinstance(name, str) and 1 <= len(name) <= 255 for name in alarms
    ):
        problems.append(
            f"deployment.update.rollback_alarms must be a list of CloudWatch alarm names, "
            f"got {alarms!r}"
        )
    elif len(alarms) > MAX_ROLLBACK_ALARMS:
        problems.append(
            f"deployment.update.rollback_alarms names {len(alarms)} alarms; SageMaker takes at "
            f"most {MAX_ROLLBACK_ALARMS}"
        )
    return problems


def _candidate_problems(candidates: Any, hyperparameters: Mapping[str, Any]) -> list[str]:
    """What is wrong with `candidates`: a list of 1 to MAX_CANDIDATES {name, hyperparameters},
    names unique (they name each candidate's TargetModel and report), hyperparameters among
    `hyperparameters`' keys."""
    if not isinstance(candidates, list) or not 1 <= len(candidates) <= MAX_CANDIDATES:
        return [f"candidates must be a list of 1 to {MAX_CANDIDATES} architectures "
                f"({{name, hyperparameters}}), got {candidates!r}"]  # fmt: skip
    problems, seen = [], set()
    for position, candidate in enumerate(candidates):
        where = f"candidates[{position}]"
        if not isinstance(candidate, Mapping) or set(candidate) != {"name", "hyperparameters"}:
            problems.append(f"{where} must have exactly the keys name and hyperparameters, got "
                            f"{candidate!r}")  # fmt: skip
            continue
        name, overrides = candidate["name"], candidate["hyperparameters"]
        if (
            not isinstance(name, str)
            or not CANDIDATE_NAME.match(name)
            or (len(name) > MAX_CANDIDATE_NAME_LENGTH)
        ):
            problems.append(
                f"{where}.name {name!r} must be lowercase letters, digits and single hyphens, "
                f"at most {MAX_CANDIDATE_NAME_LENGTH} characters (it names a TargetModel)"
            )
        elif name in seen:
            problems.append(f"{where}.name {name!r} is given twice; each candidate needs its own")
        seen.add(name)
        if not isinstance(overrides, Mapping):
            problems.append(f"{where}.hyperparameters must be a mapping, got {overrides!r}")
            continue
        unknown = sorted(set(overrides) - set(hyperparameters))
        if unknown:
            problems.append(f"{where}.hyperparameters has unknown hyperparameters {unknown}; "
                            f"known: {', '.join(hyperparameters)}")  # fmt: skip
    return problems


def for_candidate(settings: Mapping[str, Any], candidate: Mapping[str, Any]) -> dict[str, Any]:
    """`settings` as one candidate's jobs see them: its hyperparameters over `hyperparameters`."""
    return deep_merge(settings, {"hyperparameters": candidate["hyperparameters"]})


def _explanation_problems(explanations: Mapping[str, Any]) -> list[str]:
    """What is wrong with `explanations` (explain.py refuses the same values)."""
    problems = []
    for key in ("enabled", "install_captum"):
        if not isinstance(explanations[key], bool):
            problems.append(f"explanations.{key} must be true or false, got "
                            f"{explanations[key]!r}")  # fmt: skip
    if explanations["method"] not in EXPLANATION_METHODS:
        problems.append(
            f"explanations.method is {explanations['method']!r}; expected one of "
            f"{', '.join(EXPLANATION_METHODS)}"
        )
    for key in EXPLANATION_COUNTS:
        value = explanations[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            problems.append(f"explanations.{key} must be a whole number >= 0, got {value!r}")
    fraction = explanations["deletion_fraction"]
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
        problems.append(
            f"explanations.deletion_fraction must be a number between 0 and 1, got {fraction!r}"
        )
    runtime = explanations["max_runtime_seconds"]
    if isinstance(runtime, bool) or not isinstance(runtime, int) or not 1 <= runtime <= 777600:
        problems.append(
            "explanations.max_runtime_seconds must be a whole number from 1 to 777600 "
            f"(StoppingCondition.MaxRuntimeInSeconds), got {runtime!r}"
        )
    return problems


def _gate_policy_problems(rules: Mapping[str, Any]) -> list[str]:
    """What is wrong with `rules.policy` and `rules.approval`."""
    configured = [*rules["debugger"], *rules["profiler"]]
    policy, approval = rules["policy"], rules["approval"]
    problems = [
        f"rules.policy has no entry for {rule!r}; give it one of {', '.join(RULE_POLICIES)}"
        for rule in configured
        if rule not in policy
    ]
    problems += [
        f"rules.policy names {rule!r}, which is not in rules.debugger or rules.profiler"
        for rule in policy
        if rule not in configured
    ]
    problems += [
        f"rules.policy.{rule} is {value!r}; expected one of {', '.join(RULE_POLICIES)}"
        for rule, value in policy.items()
        if value not in RULE_POLICIES
    ]
    return problems + _approval_problems("rules.approval", approval)


def _approval_problems(dotted: str, approval: Mapping[str, Any]) -> list[str]:
    """What is wrong with an approval request's settings (`rules.approval`,
    `registry.approval`)."""
    problems = []
    if approval["default"] not in APPROVAL_ANSWERS:
        problems.append(
            f"{dotted}.default is {approval['default']!r}; expected one of "
            f"{', '.join(APPROVAL_ANSWERS)}"
        )
    timeout = approval["timeout_seconds"]
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        problems.append(f"{dotted}.timeout_seconds must be a positive number, got {timeout!r}")
    return problems


def _registry_problems(registry: Mapping[str, Any]) -> list[str]:
    """What is wrong with `registry` (the promotion rule)."""
    problems = []
    for key, choices in (("metric", METRICS), ("when_worse", WHEN_WORSE)):
        if registry[key] not in choices:
            problems.append(
                f"registry.{key} is {registry[key]!r}; expected one of {', '.join(choices)}"
            )
    for key in ("tolerance", "min_metric"):
        value = registry[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            problems.append(
                f"registry.{key} must be a number from 0 to 1 (a share, as the metrics are), "
                f"got {value!r}"
            )
    group = registry["group"]
    if group is not None and not (isinstance(group, str) and NAME_PATTERN.match(group)
                                  and len(group) <= MAX_NAME_LENGTH):  # fmt: skip
        problems.append(
            f"registry.group must be null or a SageMaker name (letters, digits and hyphens, at "
            f"most {MAX_NAME_LENGTH} characters), got {group!r}"
        )
    return problems + _approval_problems("registry.approval", registry["approval"])
