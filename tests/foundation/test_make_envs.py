"""`make envs` on the Pythons a newcomer may have: 3.11 builds working environments; 3.12 (Ubuntu
24.04's default) and 3.10 (22.04's) stop with one sentence saying what to install.

Both run the real Makefile into a folder of their own, with the uv `make envs` installed here and
uv told to stay offline (UV_OFFLINE): the 3.11 build takes every package from uv's cache, which
`make envs` filled, and nothing is downloaded.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.envs import LOCKS, python_version

REPO_ROOT = Path(__file__).resolve().parents[2]
UV = REPO_ROOT / ".venvs" / "uv" / "bin" / "uv"
PYTHON311 = Path(sys.base_prefix) / "bin" / "python3.11"


def installed_python(version: str) -> str:
    """A Python `version` ("3.12") that runs (pyenv's shims name versions that may be absent)."""
    candidates = glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python{version}"))
    for python in [*sorted(candidates), shutil.which(f"python{version}")]:
        if python and python_version(python) == version:
            return python
    pytest.skip(f"no Python {version} runs here (python{version} on PATH or under ~/.pyenv)")


def make(tmp_path: Path, python: str, target: str) -> subprocess.CompletedProcess:
    """`make TARGET` with PYTHON=python and the environments under tmp_path/venvs."""
    assert UV.is_file(), f"no uv at {UV}: run make envs"
    venvs = tmp_path / "venvs"
    (venvs / "uv" / "bin").mkdir(parents=True)
    (venvs / "uv" / "bin" / "uv").symlink_to(UV)
    return subprocess.run(
        ["make", "--no-print-directory", f"VENVS={venvs}", f"PYTHON={python}",
         target.format(venvs=venvs)],
        cwd=REPO_ROOT, env={**os.environ, "UV_OFFLINE": "1"}, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


INSTALL_311 = (
    "install python3.11 (apt, pyenv, or uv python install 3.11) and run make again "
    "(make PYTHON=/path/to/python3.11 if it is not on PATH)."
)


@pytest.mark.parametrize(
    ("version", "sentence"),
    [
        # Ubuntu 24.04's python3: its locks' packages disagree there (see the README).
        ("3.12", "The airflow environment needs Python 3.11 ({python} is Python 3.12): "),
        # Ubuntu 22.04's: make's own scripts need 3.11 (tomllib) before any lock is read.
        ("3.10", "make needs Python 3.11 ({python} is Python 3.10): "),
    ],
)
def test_on_another_python_make_envs_says_in_one_sentence_what_to_install(
    tmp_path, version, sentence
):
    python = installed_python(version)
    refused = make(tmp_path, python, "envs")
    assert refused.returncode != 0
    assert refused.stderr.splitlines()[0] == sentence.format(python=python) + INSTALL_311
    assert sorted(path.name for path in (tmp_path / "venvs").iterdir()) == ["uv"]


@pytest.mark.e2e  # builds a whole environment
def test_on_python_311_make_builds_the_airflow_environment_at_its_locked_versions(tmp_path):
    built = make(tmp_path, str(PYTHON311), "{venvs}/airflow/.installed")
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    locked = dict(re.findall(r"^(apache-airflow|boto3|sagemaker-core)==(\S+)", LOCKS.joinpath(
        "airflow.txt").read_text(), re.MULTILINE))  # fmt: skip
    probe = (
        "import json, airflow, boto3, sagemaker.core\n"
        "from importlib.metadata import version\n"
        "print(json.dumps({name: version(name) for name in "
        "('apache-airflow', 'boto3', 'sagemaker-core')}))"
    )
    python = tmp_path / "venvs" / "airflow" / "bin" / "python"
    imported = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=300)
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert json.loads(imported.stdout.strip().splitlines()[-1]) == locked
