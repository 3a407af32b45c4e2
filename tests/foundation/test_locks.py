"""The committed locks match pyproject.toml, and the Airflow lock every range its packages declare.

Airflow's own constraints file for 3.3.2 cannot be fetched here (it lives on a GitHub branch, and
only PyPI is reachable), so the Airflow lock is checked instead against what Airflow, the Amazon
provider and every other locked package declare in their metadata (read from the environment
running these tests, which `make envs` built from that lock).
"""

import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from devtools.envs import LOCKS, PYPROJECT, environments

PROJECT = "dog-breed-classifier (pyproject.toml)"
ENVIRONMENTS = environments()


def read_lock(path: Path) -> dict[str, tuple[str, set[str]]]:
    """{package: (version, the packages it is there for)} from a `uv pip compile` file."""
    entries, current, in_via = {}, None, False
    for line in path.read_text().splitlines():
        text = line.strip()
        if not text.startswith("#") and text:
            name, separator, version = text.partition("==")
            assert separator, f"{path.name}: {text!r} is not pinned with =="
            current = canonicalize_name(name)
            entries[current] = (version, set())
        elif current and text.startswith("# via"):
            via = text.removeprefix("# via").strip()
            entries[current][1].update([via] if via else [])
            in_via = not via
        elif current and in_via and text.startswith("#   "):
            entries[current][1].add(text.removeprefix("#   "))
    return entries


def direct_requirements(name: str) -> list[Requirement]:
    groups = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    return [Requirement(line) for group in ENVIRONMENTS[name].groups for line in groups[group]]


def test_every_environment_has_a_lock_and_every_lock_an_environment():
    assert sorted(path.stem for path in LOCKS.glob("*.txt")) == sorted(ENVIRONMENTS)


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_lock_pins_each_requirement_of_the_environment_within_its_range(name):
    lock = read_lock(ENVIRONMENTS[name].lock)
    python = ENVIRONMENTS[name].pythons[0]
    marker_environment = {**default_environment(), "python_version": python}
    wanted = {
        canonicalize_name(requirement.name): requirement
        for requirement in direct_requirements(name)
        if not requirement.marker or requirement.marker.evaluate(marker_environment)
    }
    outside = {
        package: f"{requirement} but {lock[package][0] if package in lock else 'absent'}"
        for package, requirement in wanted.items()
        if package not in lock or not requirement.specifier.contains(lock[package][0], True)
    }
    assert not outside, f"locks/{name}.txt is stale (run make lock): {outside}"
    from_project = {package for package, (_, via) in lock.items() if PROJECT in via}
    assert from_project == set(wanted), f"locks/{name}.txt is stale (run make lock)"


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_lock_is_written_by_make_lock_and_holds_only_what_something_needs(name):
    path = ENVIRONMENTS[name].lock
    assert "#    make lock" in path.read_text().splitlines()[1]
    lock = read_lock(path)
    needed_by_nothing = {
        package: via
        for package, (_, via) in lock.items()
        if not via or not all(v == PROJECT or canonicalize_name(v) in lock for v in via)
    }
    assert not needed_by_nothing


def test_airflow_lock_meets_every_range_its_packages_declare():
    """Walks the requirements from pyproject.toml through each locked package's metadata (extras
    included): each one reached is pinned within its range, and nothing else is locked."""
    lock = read_lock(ENVIRONMENTS["airflow"].lock)
    environment = default_environment()
    pending = [(requirement, "pyproject.toml") for requirement in direct_requirements("airflow")]
    reached, problems = {}, []
    while pending:
        requirement, wanted_by = pending.pop()
        package = canonicalize_name(requirement.name)
        version = lock.get(package, (None,))[0]
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{wanted_by} wants {requirement}; the lock has {version}")
            continue
        extras = reached.setdefault(package, set())
        if requirement.extras <= extras and extras:
            continue
        extras |= set(requirement.extras) | {""}
        installed = metadata.version(package)
        assert installed == version, (
            f"this environment has {package} {installed}, its lock {version}: run make envs"
        )
        for line in metadata.requires(package) or []:
            needed = Requirement(line)
            if not needed.marker or any(
                needed.marker.evaluate({**environment, "extra": extra}) for extra in extras
            ):
                pending.append((needed, f"{package} {version}"))
    assert not problems
    assert set(lock) == set(reached), f"locked but needed by nothing: {set(lock) - set(reached)}"


def test_building_on_a_python_the_environment_does_not_run_on_says_what_to_install(tmp_path):
    """The Python check comes before uv is needed, so this needs neither uv nor a network."""
    refused = build("container-image", tmp_path, f"PYTHON310={sys.executable}")
    assert refused.returncode != 0
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert refused.stderr.strip() == (
        f"The container-image environment needs Python 3.10 ({sys.executable} is Python "
        f"{version}): install python3.10 (apt, pyenv, or uv python install 3.10) and run make "
        "again (make PYTHON310=/path/to/python3.10 if it is not on PATH)."
    )
    assert not (tmp_path / "venv").exists()


def test_building_without_an_interpreter_says_what_to_install(tmp_path):
    refused = build("airflow", tmp_path, f"PYTHON={tmp_path / 'python3'}")
    assert refused.returncode != 0
    assert f"no Python runs at '{tmp_path / 'python3'}'" in refused.stderr
    assert "needs Python 3.11 (" in refused.stderr
    assert "install python3.11" in refused.stderr


def build(name: str, tmp_path: Path, named_python: str) -> subprocess.CompletedProcess:
    uv, venv = tmp_path / "no-uv", tmp_path / "venv"
    return subprocess.run(
        [sys.executable, "-m", "devtools.envs", "build", uv, name, venv, named_python],
        capture_output=True,
        text=True,
        cwd=PYPROJECT.parent,
        timeout=60,
    )
