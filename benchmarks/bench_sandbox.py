"""What the job sandbox of a root runtime costs when a job starts.

Starts the same job process (the container environment's Python running ``import torch`` or an
empty program) ``--rounds`` times each way, through the executor's ManagedProcess: plain, as a
non-root runtime starts jobs, and sandboxed (own uid, private mount namespace, /opt/ml bound,
closed folders covered, tree given to the job user), as a root runtime does. Prints the median
wall time from start to exit for both and their ratio. Must run as root.

    .venvs/airflow/bin/python benchmarks/bench_sandbox.py [--rounds 10] [--tree-files 5000]

``--tree-files`` empty files in the job tree stand in for a downloaded dataset: the sandbox gives
every one of them to the job user at each start.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from local_sagemaker.config import DEFAULT_CONTAINER_PYTHON  # noqa: E402
from local_sagemaker.executor.processes import ManagedProcess  # noqa: E402
from local_sagemaker.executor.sandbox import job_sandbox  # noqa: E402

PROGRAMS = {"empty program": "pass", "import torch": "import torch"}


def run_once(python: str, program: str, tree: Path, sandboxed: bool) -> float:
    sandbox = job_sandbox(tree, python) if sandboxed else None
    started = time.perf_counter()
    process = ManagedProcess(
        [python, "-c", program], dict(os.environ), tree, lambda *_: None, sandbox
    )
    code = process.wait()
    if code != 0:
        raise RuntimeError(f"the job exited with {code}: {list(process.stderr_tail)}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--tree-files", type=int, default=5000)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: only a root runtime sandboxes jobs")
    python = str(DEFAULT_CONTAINER_PYTHON)
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = Path(scratch) / "data"
        tree = data_dir / "jobs" / "bench"
        (tree / "input" / "data" / "train").mkdir(parents=True)
        os.chmod(data_dir, 0o700)
        for number in range(args.tree_files):
            (tree / "input" / "data" / "train" / f"{number}.jpg").touch()
        print(f"{'program':<16}{'plain s':>10}{'sandboxed s':>14}{'ratio':>8}")
        for name, program in PROGRAMS.items():
            run_once(python, program, tree, True)  # warm the page cache and the probe
            times = {
                sandboxed: statistics.median(
                    run_once(python, program, tree, sandboxed) for _ in range(args.rounds)
                )
                for sandboxed in (False, True)
            }
            print(
                f"{name:<16}{times[False]:>10.3f}{times[True]:>14.3f}"
                f"{times[True] / times[False]:>8.2f}"
            )


if __name__ == "__main__":
    main()
