"""Whether a job's Python already provides what its source dir's requirements.txt asks for.

SageMaker's training toolkit pip-installs ``requirements.txt`` from the source dir before it
runs the entry point. The local runtime does not install anything: its container Pythons are
shared between jobs and the machine may be offline. So it checks instead, and a job whose
requirements the interpreter standing in for its image does not satisfy fails before it starts,
with a FailureReason that names each missing requirement, rather than with an ImportError
halfway through training.

The installed distributions and the marker environment are read from the job's own Python (one
short subprocess); the requirement lines are parsed with ``packaging``, as pip parses them.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

REQUIREMENTS_FILE = "requirements.txt"
# Prints {"installed": {name: version}, "environment": {PEP 508 marker variables}}.
_INSPECT = """
import importlib.metadata, json, os, platform, sys
installed = {d.metadata["Name"]: d.version for d in importlib.metadata.distributions()
             if d.metadata["Name"]}
environment = {
    "implementation_name": sys.implementation.name, "os_name": os.name,
    "platform_machine": platform.machine(), "platform_system": platform.system(),
    "platform_release": platform.release(), "sys_platform": sys.platform,
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "implementation_version": platform.python_version(), "extra": "",
}
print(json.dumps({"installed": installed, "environment": environment}))
"""
INSPECT_TIMEOUT_SECONDS = 60


class RequirementsError(Exception):
    """requirements.txt cannot be satisfied; the message is the job's FailureReason."""


def _requirement_lines(requirements: Path) -> list[str]:
    """The requirement lines of `requirements`, without comments, blanks and continuations."""
    text = requirements.read_text(encoding="utf-8", errors="replace").replace("\\\n", "")
    lines = (line.split(" #")[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _inspect(python: str) -> dict:
    result = subprocess.run(
        [python, "-c", _INSPECT], capture_output=True, text=True,
        timeout=INSPECT_TIMEOUT_SECONDS, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RequirementsError(
            f"ClientError: could not list the packages of {python}: {result.stderr[-500:]}"
        )
    return json.loads(result.stdout)


def unmet_requirements(python: str, requirements: Path) -> list[str]:
    """Each line of `requirements` that `python`'s installed packages do not satisfy, with
    what is installed instead (empty when all are met; lines whose markers exclude this Python
    are skipped). Pip options (``-r``, ``--index-url``, ...) cannot be checked and count as
    unmet."""
    lines = _requirement_lines(requirements)
    if not lines:
        return []
    inspected = _inspect(python)
    installed = {canonicalize_name(n): v for n, v in inspected["installed"].items()}
    unmet = []
    for line in lines:
        if line.startswith("-"):
            unmet.append(f"{line} (a pip option; the local runtime installs nothing)")
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as error:
            unmet.append(f"{line} (not a requirement: {error})")
            continue
        if requirement.marker and not requirement.marker.evaluate(inspected["environment"]):
            continue
        version = installed.get(canonicalize_name(requirement.name))
        if version is None:
            unmet.append(f"{line} (not installed)")
        elif not requirement.specifier.contains(version, prereleases=True):
            unmet.append(f"{line} ({requirement.name} {version} is installed)")
    return unmet


def check_source_dir(python: str, code_dir: Path) -> None:
    """Raise RequirementsError when `code_dir`'s requirements.txt asks for anything `python`
    lacks; nothing to check without the file."""
    requirements = code_dir / REQUIREMENTS_FILE
    if not requirements.is_file():
        return
    unmet = unmet_requirements(python, requirements)
    if unmet:
        raise RequirementsError(
            f"ClientError: {REQUIREMENTS_FILE} of the source dir is not satisfied by the "
            f"container environment {python}: {'; '.join(unmet)}. The local runtime does not "
            "pip-install: install them into that environment (LOCAL_SAGEMAKER_CONTAINER_PYTHON "
            "or LOCAL_SAGEMAKER_IMAGE_PYTHONS) or remove them from the file"
        )
