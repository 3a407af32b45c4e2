"""explain.py in an image without Captum: the job stops at once and says what to do.

A stock AWS PyTorch image has torch and torchvision but no Captum. The test builds that image's
Python from this container environment: a site folder linking every installed distribution but
Captum's, with the environment's own site-packages left off (``python -S``).
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import explain
import pytest

pytestmark = pytest.mark.e2e  # runs explain.py in a Python process of its own

# `python -S` skips site-packages; this adds the Captum-less site folder (its .pth files too) and
# runs the script as `python3 explain.py ...` would, with the remaining arguments.
RUN_WITH_SITE = (
    "import runpy, site, sys; site.addsitedir(sys.argv[1]); sys.argv = sys.argv[2:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)
FIND_SPECS = (
    "import importlib.util, sys; "
    "print([importlib.util.find_spec(name) is not None for name in sys.argv[1:]])"
)


@pytest.fixture(scope="module")
def site_without_captum(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site-packages-without-captum")
    folders = {Path(sysconfig.get_paths()[kind]) for kind in ("purelib", "platlib")}
    for folder in folders:
        for entry in folder.iterdir():
            if not entry.name.lower().startswith("captum"):
                (site / entry.name).symlink_to(entry)
    return site


def run_without_captum(site: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-S", "-c", RUN_WITH_SITE, str(site), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_image_without_captum_still_has_torch(site_without_captum, tmp_path):
    script = tmp_path / "find_specs.py"
    script.write_text(FIND_SPECS)
    found = run_without_captum(site_without_captum, str(script), "torch", "torchvision", "captum")
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[True, True, False]"


def test_explain_without_captum_fails_naming_the_package_the_requirement_and_the_setting(
    site_without_captum, tmp_path
):
    job = run_without_captum(
        site_without_captum,
        explain.__file__,
        *("--model", str(tmp_path / "model"), "--images", str(tmp_path / "valid")),
        *("--output-dir", str(tmp_path / "explanations")),
    )
    assert job.returncode == 1, (job.stdout, job.stderr)
    message = job.stderr.strip().splitlines()[-1]
    assert message.startswith(f"Captum is not installed in {sys.executable}"), message
    assert "use an image that has it (captum>=0.8,<0.10)" in message
    assert "--install-captum (explanations.install_captum)" in message
    assert not (tmp_path / "explanations").exists()  # it stopped before doing anything
