"""The documented IAM policy of the Airflow identity grants what plugins/ calls, and no more.

Every AWS call in plugins/ is read from the source: client methods by their botocore operation
names (also the aiobotocore ones of the triggers), paginators, the methods boto3 adds to the S3
client, the provider hook methods the plugins use, and the hook's two run-time dispatchers
(`_job_call`, `_resource_call`) expanded over the job kinds and resources they serve. Each call
becomes an IAM action: the service prefix plus the operation name, except for S3, whose actions
AWS names per operation ("Required permissions for Amazon S3 API operations").
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path

import botocore.session
import pytest
import yaml
from botocore import xform_name
from sagemaker_lifecycle.hooks import ENDPOINT_CONFIG, JOB_KINDS, MODEL

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGINS = REPO_ROOT / "plugins"
POLICY_DIR = REPO_ROOT / "include" / "iam"
AIRFLOW_POLICY = POLICY_DIR / "airflow-identity-policy.json"
# The clients the plugins build, and the IAM service prefix of each.
IAM_PREFIX = {
    "s3": "s3", "sagemaker": "sagemaker", "sagemaker-runtime": "sagemaker", "logs": "logs",
    "cloudwatch": "cloudwatch",
}  # fmt: skip
# S3 operations whose IAM action is not s3:<operation>.
S3_ACTIONS = {
    "HeadObject": "s3:GetObject",
    "HeadBucket": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
}
# Methods boto3 adds to the S3 client (s3transfer), and the operations they send.
S3_TRANSFER_METHODS = {
    "upload_file": ("PutObject", "CreateMultipartUpload", "UploadPart",
                    "CompleteMultipartUpload", "AbortMultipartUpload"),
    "download_file": ("HeadObject", "GetObject"),
}  # fmt: skip
# Provider hook methods the plugins call, and the operations they send.
PROVIDER_HOOK_METHODS = {"list_keys": ("s3", "ListObjectsV2")}
# Provider operators the plugins build on whose execute() the plugins call, and what it sends
# (read from the provider's source): the group is created when missing, and deleted again when
# the version cannot be created in a group the operator just made.
PROVIDER_OPERATOR_CALLS = {
    "SageMakerRegisterModelVersionOperator": (
        ("sagemaker", "CreateModelPackageGroup"), ("sagemaker", "CreateModelPackage"),
        ("sagemaker", "DeleteModelPackageGroup"),
    ),
}  # fmt: skip
# Attribute names that are operation names too, but no AWS call in plugins/ (regex searches).
NOT_AWS_CALLS = {"search"}
# Not a call the plugins make: SageMaker needs it to run jobs and models as the execution role.
PASS_ROLE = "iam:PassRole"


def _operations_by_method() -> dict[str, set[tuple[str, str]]]:
    """Client method name -> the (service, operation) pairs it can be."""
    session = botocore.session.get_session()
    methods: dict[str, set[tuple[str, str]]] = {}
    for service in IAM_PREFIX:
        for operation in session.get_service_model(service).operation_names:
            methods.setdefault(xform_name(operation), set()).add((service, operation))
    return methods


def _constant(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _dispatched(call: ast.Call) -> Iterator[tuple[str, str]]:
    """The operations one `_job_call(kind, verb)` / `_resource_call(resource, verb)` can send."""
    name = call.func.attr if isinstance(call.func, ast.Attribute) else None
    targets = {"_job_call": JOB_KINDS.values(), "_resource_call": (MODEL, ENDPOINT_CONFIG)}
    if name in targets:
        verb = _constant(call.args[1])
        assert verb, f"{name} needs a literal verb: {ast.unparse(call)}"
        for target in targets[name]:
            yield "sagemaker", target.operation(verb)


def _paginated(call: ast.Call) -> Iterator[tuple[str, str]]:
    if not (isinstance(call.func, ast.Attribute) and call.func.attr == "get_paginator"):
        return
    argument = call.args[0]
    if literal := _constant(argument):
        yield "", literal  # the service follows from the name
        return
    # get_paginator(kind.operation("list")): a listing of every job kind
    inner = argument if isinstance(argument, ast.Call) else None
    verb = inner and inner.args and _constant(inner.args[0])
    assert verb and ast.unparse(inner.func) == "kind.operation", (
        f"unknown dynamic paginator {ast.unparse(call)}: teach this test what it lists"
    )
    for kind in JOB_KINDS.values():
        yield "sagemaker", kind.operation(verb)


def calls_in_plugins() -> set[tuple[str, str]]:
    """(service, OperationName) of every AWS call the plugins can make."""
    trees = [ast.parse(path.read_text(), str(path)) for path in sorted(PLUGINS.rglob("*.py"))]
    # The plugins' own methods (the hook's describe_job, stop_job) are not client calls.
    own = {n.name for tree in trees for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    methods = {
        name: pairs
        for name, pairs in _operations_by_method().items()
        if name not in own | NOT_AWS_CALLS
    }
    found: set[tuple[str, str]] = set()

    def add(service: str, method: str) -> None:
        pairs = {pair for pair in methods[method] if not service or pair[0] == service}
        assert pairs, f"{method} is no operation of {service or IAM_PREFIX}"
        found.update(pairs)

    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                for service, method in [*_dispatched(node), *_paginated(node)]:
                    add(service, method)
            if isinstance(node, ast.Name) and node.id in PROVIDER_OPERATOR_CALLS:
                found.update(PROVIDER_OPERATOR_CALLS[node.id])
            if not isinstance(node, ast.Attribute):
                continue
            if node.attr in methods:
                found.update(methods[node.attr])
            for operation in S3_TRANSFER_METHODS.get(node.attr, ()):
                found.add(("s3", operation))
            if node.attr in PROVIDER_HOOK_METHODS:
                found.add(PROVIDER_HOOK_METHODS[node.attr])
    return found


def iam_action(service: str, operation: str) -> str:
    if service == "s3":
        return S3_ACTIONS.get(operation, f"s3:{operation}")
    return f"{IAM_PREFIX[service]}:{operation}"


def _statements(policy_file: Path) -> list[dict]:
    return json.loads(policy_file.read_text())["Statement"]


def _actions(statement: dict) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else action


def _resources(statement: dict) -> list[str]:
    resource = statement["Resource"]
    return [resource] if isinstance(resource, str) else resource


def granted_actions(policy_file: Path) -> set[str]:
    return {action for statement in _statements(policy_file) for action in _actions(statement)}


@pytest.fixture(scope="module")
def needed() -> set[str]:
    return {iam_action(*call) for call in calls_in_plugins()}


def test_the_policy_grants_every_action_the_plugins_call(needed):
    missing = needed - granted_actions(AIRFLOW_POLICY)
    assert not missing, f"{AIRFLOW_POLICY.name} lacks {sorted(missing)}"


def test_the_policy_grants_nothing_the_plugins_never_call(needed):
    unused = granted_actions(AIRFLOW_POLICY) - needed - {PASS_ROLE}
    assert not unused, f"{AIRFLOW_POLICY.name} grants {sorted(unused)}, which no code calls"


def test_the_warm_start_and_clean_up_listings_are_granted(needed):
    listings = {"sagemaker:ListHyperParameterTuningJobs", "sagemaker:ListTrainingJobs",
                "sagemaker:ListTransformJobs", "sagemaker:ListProcessingJobs"}  # fmt: skip
    assert listings <= needed
    assert listings <= granted_actions(AIRFLOW_POLICY)


def test_list_actions_take_any_resource_and_the_others_only_the_projects():
    project = yaml.safe_load((REPO_ROOT / "include" / "pipeline.yaml").read_text())["project"]
    for statement in _statements(AIRFLOW_POLICY):
        actions = _actions(statement)
        sagemaker = [a for a in actions if a.startswith("sagemaker:")]
        if not sagemaker:
            continue
        resources = statement["Resource"]
        if all(a.startswith("sagemaker:List") for a in sagemaker):
            assert resources == "*", statement["Sid"]
        else:
            assert not any(a.startswith("sagemaker:List") for a in sagemaker), statement["Sid"]
            assert all(r.endswith(f"/{project['name']}-*") for r in resources), statement["Sid"]


@pytest.mark.parametrize("policy", sorted(POLICY_DIR.glob("*.json")), ids=lambda p: p.name)
def test_the_readme_shows_each_policy_file_verbatim(policy):
    assert policy.read_text().strip() in (REPO_ROOT / "README.md").read_text()


def test_the_endpoint_actions_cover_the_endpoint_users_call_and_the_trial_endpoint():
    """CreateEndpoint, DeleteEndpoint and InvokeEndpoint reach both endpoints a run deploys to:
    the project's endpoint and, for its first model, the run's trial endpoint."""
    from datetime import datetime
    from fnmatch import fnmatchcase

    from sagemaker_lifecycle.naming import run_names

    project = yaml.safe_load((REPO_ROOT / "include" / "pipeline.yaml").read_text())["project"]
    names = run_names(project["name"], "manual__1", datetime(2026, 11, 1))
    needed = {"sagemaker:CreateEndpoint", "sagemaker:DeleteEndpoint", "sagemaker:InvokeEndpoint"}
    for endpoint in (names.endpoint, names.trial_endpoint):
        arn = f"arn:aws:sagemaker:<region>:<account>:endpoint/{endpoint}"
        granted = {action for statement in _statements(AIRFLOW_POLICY)
                   if any(fnmatchcase(arn, pattern) for pattern in _resources(statement))
                   for action in _actions(statement)}  # fmt: skip
        assert needed <= granted, (endpoint, sorted(needed - granted))
