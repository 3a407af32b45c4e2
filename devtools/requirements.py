"""Print the pinned requirements of optional-dependency groups in pyproject.toml, one per line.

The Makefile feeds them to pip, so pyproject.toml stays the single source of truth for both
environments:  python devtools/requirements.py airflow dev > reqs.txt
"""

import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def requirements(groups: list[str]) -> list[str]:
    optional = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    unknown = sorted(set(groups) - set(optional))
    if unknown:
        known = sorted(optional)
        raise SystemExit(f"unknown dependency groups {unknown}; pyproject.toml has {known}")
    return [requirement for group in groups for requirement in optional[group]]


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1:])))
