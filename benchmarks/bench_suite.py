"""Wall time of a pytest selection at an earlier commit against the working tree, side by side.

Exports the earlier commit's tracked files (`git archive`) into a scratch directory beside this
checkout's environments (its `.venvs`, linked), then runs the same pytest command in each tree,
the earlier one first, and prints both walls and their ratio. What changed between them is the
test code only: the same environments, the same machine, one run. For `make test-fast`'s
selection, or a runtime module set (`tests/runtime/...`):

    .venvs/airflow/bin/python benchmarks/bench_suite.py --base HEAD~1 -- \\
        tests --ignore=tests/container --ignore=tests/sdk -m "not e2e" -n 2 --dist loadfile

`--python` picks the environment (default Airflow's; `.venvs/container/bin/python` for
tests/container). Run it niced: both runs load every core.
"""

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def export_commit(revision: str, destination: Path) -> None:
    """The commit's tracked files at `destination`, with this checkout's environments."""
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", "--format=tar", revision],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(destination)], input=archive, check=True)
    (destination / ".venvs").symlink_to((REPO_ROOT / ".venvs").resolve())


def pytest_wall(tree: Path, python: str, pytest_args: list[str], basetemp: Path) -> float:
    """Seconds the pytest command took in `tree`; a failing suite stops the benchmark."""
    command = [python, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--basetemp={basetemp}"]
    started = time.monotonic()
    finished = subprocess.run([*command, *pytest_args], cwd=tree)
    wall = time.monotonic() - started
    if finished.returncode not in (0, 5):
        raise SystemExit(f"pytest failed in {tree} (exit {finished.returncode}): no timing")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the earlier commit (e.g. HEAD~1)")
    parser.add_argument("--python", default=".venvs/airflow/bin/python", help="relative to a tree")
    parser.add_argument("pytest_args", nargs="+", help="after --: what pytest runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as scratch:
        base_tree = Path(scratch) / "base"
        base_tree.mkdir()
        export_commit(args.base, base_tree)
        walls = {}
        for label, tree in ((args.base, base_tree), ("working tree", REPO_ROOT)):
            basetemp = Path(scratch) / f"pytest-{len(walls)}"
            walls[label] = pytest_wall(tree, args.python, args.pytest_args, basetemp)
    print(f"\npytest {' '.join(args.pytest_args)}")
    for label, wall in walls.items():
        print(f"  {label:>14}: {wall:7.1f} s")
    before, after = walls.values()
    print(f"  ratio (before / after): {before / after:.2f}x")


if __name__ == "__main__":
    main()
