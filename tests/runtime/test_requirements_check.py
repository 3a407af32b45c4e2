"""The runtime's check of a source dir's requirements.txt against the job's Python."""

import sys

import pytest

from local_sagemaker.executor.requirements_check import (
    RequirementsError,
    check_source_dir,
    unmet_requirements,
)

PYTHON = sys.executable  # any interpreter will do; this one has pyyaml and packaging


def requirements_file(tmp_path, text: str):
    path = tmp_path / "requirements.txt"
    path.write_text(text)
    return path


def test_installed_requirements_in_range_and_foreign_markers_are_met(tmp_path):
    text = (
        "# what the code imports\n"
        "pyyaml>=6  # comment\n"
        "PyYAML\n"
        "packaging>=20 ; python_version >= '3'\n"
        "no-such-package-anywhere==1.0 ; python_version < '3'\n"
        "\n"
    )
    assert unmet_requirements(PYTHON, requirements_file(tmp_path, text)) == []


def test_each_unmet_requirement_is_named_with_what_is_installed(tmp_path):
    text = "pyyaml<1\nno-such-package-anywhere\n-r other.txt\nnot a requirement!\n"
    unmet = unmet_requirements(PYTHON, requirements_file(tmp_path, text))
    assert unmet[0].startswith("pyyaml<1 (pyyaml 6.") and unmet[0].endswith(" is installed)")
    assert unmet[1] == "no-such-package-anywhere (not installed)"
    assert unmet[2] == "-r other.txt (a pip option; the local runtime installs nothing)"
    assert unmet[3].startswith("not a requirement! (not a requirement:")


def test_a_source_dir_without_requirements_or_with_unmet_ones(tmp_path):
    check_source_dir(PYTHON, tmp_path)  # no file: nothing to check
    requirements_file(tmp_path, "no-such-package-anywhere>=2\n")
    with pytest.raises(RequirementsError, match=r"^ClientError: requirements.txt .* "
                       r"no-such-package-anywhere>=2 \(not installed\)"):  # fmt: skip
        check_source_dir(PYTHON, tmp_path)
