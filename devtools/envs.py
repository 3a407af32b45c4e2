"""Lock each Python environment and build it from its lock, with uv.

The environments are declared in pyproject.toml, one line each under
[tool.dog-breed-classifier.environments]: the dependency groups an environment installs and the
Python it runs on. `make lock` compiles those groups into locks/<name>.txt (every package pinned,
transitive ones included); `make envs` syncs an environment to exactly its lock, so two machines
get the same versions.

    python -m devtools.envs lock UV [NAME ...]
    python -m devtools.envs build UV NAME VENV PYTHON=/path/to/python
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

try:
    import tomllib
except ModuleNotFoundError:  # before 3.11 (Ubuntu 22.04's python3): what to install, no traceback
    raise SystemExit(
        f"make needs Python 3.11 ({sys.executable} is Python {sys.version_info.major}."
        f"{sys.version_info.minor}): install python3.11 (apt, pyenv, or uv python install 3.11) "
        "and run make again (make PYTHON=/path/to/python3.11 if it is not on PATH)."
    ) from None

REPO_ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = REPO_ROOT / "pyproject.toml"
LOCKS = REPO_ROOT / "locks"
# A package may be on several of the sources below: take each pinned version from whichever has it
# (the local copies of PyPI's wheels first), not only from the first source that names the package.
INDEX_STRATEGY = ["--index-strategy", "unsafe-best-match"]


class Environment(NamedTuple):
    name: str
    groups: list[str]
    pythons: list[str]  # ["3.11", "3.12"]: the lock is compiled for the first, runs on each

    @property
    def lock(self) -> Path:
        return LOCKS / f"{self.name}.txt"


def environments() -> dict[str, Environment]:
    """Every environment pyproject.toml declares, checked against its dependency groups."""
    project = tomllib.loads(PYPROJECT.read_text())
    groups = project["project"]["optional-dependencies"]
    declared = project["tool"]["dog-breed-classifier"]["environments"]
    found = {}
    for name, spec in declared.items():
        unknown = sorted(set(spec["groups"]) - set(groups))
        if unknown:
            raise SystemExit(
                f"environment {name!r} names unknown dependency groups {unknown}; "
                f"pyproject.toml has {sorted(groups)}"
            )
        found[name] = Environment(name, spec["groups"], spec["pythons"])
    return found


def environment(name: str) -> Environment:
    declared = environments()
    if name not in declared:
        raise SystemExit(
            f"unknown environment {name!r}; pyproject.toml declares {sorted(declared)}"
        )
    return declared[name]


def pip_sources(python: str) -> list[str]:
    """uv options for the package sources pip is configured with here, where they exist, when
    `python` ("3.11") is the Python that pip runs on.

    uv reads none of pip's configuration. A machine may keep wheels on local disk for pip (this
    one keeps torch's CUDA build, 3 GB, under a local index): without these uv would download
    them again. Those wheels are built for pip's own Python, and uv takes each version from the
    first source that has it, so for another Python a local copy would hide PyPI's wheels of the
    same version: that Python gets PyPI alone, as does a machine without such settings.
    """
    if python != f"{sys.version_info.major}.{sys.version_info.minor}":
        return []
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    options = []
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        setting = key.rsplit(".", 1)[-1]
        if setting not in ("find-links", "extra-index-url", "index-url"):
            continue
        for source in value.strip("'\"").split():
            option = f"--{setting}"
            if _reachable(source) and [option, source] not in _pairs(options):
                options += [option, source]
    return options


def _reachable(source: str) -> bool:
    local = source.removeprefix("file://")
    return source.startswith(("http://", "https://")) or Path(local).exists()


def _pairs(options: list[str]) -> list[list[str]]:
    return [options[i : i + 2] for i in range(0, len(options), 2)]


def lock(uv: str, env: Environment) -> None:
    """Compile the environment's groups into its lock, keeping the pins the lock already has
    wherever pyproject.toml still allows them (uv reads the output file as preferences)."""
    extras = [option for group in env.groups for option in ("--extra", group)]
    project, output = PYPROJECT.relative_to(REPO_ROOT), env.lock.relative_to(REPO_ROOT)
    subprocess.run(
        [
            uv,
            "pip",
            "compile",
            "--quiet",
            str(project),
            *extras,
            "-o",
            str(output),
            "--python-version",
            env.pythons[0],
            "--custom-compile-command",
            "make lock",
            *INDEX_STRATEGY,
            *pip_sources(env.pythons[0]),
        ],
        check=True,
        cwd=REPO_ROOT,
    )


def python_version(python: str) -> str | None:
    """The "3.11" of an interpreter; None when nothing runs at that path."""
    try:
        probe = subprocess.run(
            [python, "-c", "import json, sys; print(json.dumps(sys.version_info[:2]))"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return ".".join(map(str, json.loads(probe.stdout)))


def build(uv: str, env: Environment, venv: Path, named_python: str) -> None:
    """Create the venv with the Python make names ("PYTHON=/usr/bin/python3"; kept when the venv
    already runs that version) and sync it to exactly the lock. A Python the environment does not
    run on stops the build with what to install."""
    variable, _, python = named_python.partition("=")
    found = python_version(python)
    if found not in env.pythons:
        wanted = " or ".join(env.pythons)
        interpreter_is = f"{python} is Python {found}" if found else f"no Python runs at {python!r}"
        raise SystemExit(
            f"The {env.name} environment needs Python {wanted} ({interpreter_is}): install "
            f"python{env.pythons[0]} (apt, pyenv, or uv python install {env.pythons[0]}) and run "
            f"make again (make {variable}=/path/to/python{env.pythons[0]} if it is not on PATH)."
        )
    interpreter = venv / "bin" / "python"
    if python_version(str(interpreter)) != found:
        subprocess.run([uv, "venv", "--quiet", "--python", python, str(venv)], check=True)
    subprocess.run(
        [
            uv,
            "pip",
            "sync",
            "--quiet",
            "--python",
            str(interpreter),
            str(env.lock),
            *INDEX_STRATEGY,
            *pip_sources(found),
        ],
        check=True,
    )


def main(argv: list[str]) -> None:
    command, uv, *args = argv
    if command == "lock":
        for name in args or environments():
            lock(uv, environment(name))
    elif command == "build":
        name, venv, named_python = args
        build(uv, environment(name), Path(venv), named_python)
    else:
        raise SystemExit(f"unknown command {command!r}: lock or build")


if __name__ == "__main__":
    main(sys.argv[1:])
