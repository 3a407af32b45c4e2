"""`make demo` at an earlier revision against the working tree, side by side, phase by phase.

Copies each tree into a scratch directory (the revision's tracked files by `git archive`, the
working tree's tracked and untracked files), beside this checkout's environments (`.venvs`,
linked), and brings each to the state a first `make demo` leaves (the demo dataset generated,
Airflow's database migrated; not timed). Then it runs `python -m demo.run` in each, on ports of
its own (the working tree first: a change that breaks the demo shows before the revision's run),
and prints, for both and their ratio:

- the demo's wall time, its stack start-up (the demo's own "stack up after" line), the DAG run
  (Airflow's dag_run start to end) and the rest (summary, stopping the stack);
- inside the run, from the stack's Airflow database: the seconds when no task was queued, running
  or deferred (the scheduler's and the triggerer's latency between tasks), the seconds tasks
  waited between queued and running (the executor starting them), and each task's span (its
  first queued to its last end, over every try).

Each tree's runtime starts with no data, so both runs take the first run's path (no champion to
score). Two demos in a row: 10-25 minutes on two cores, by their load. Run it niced.

    .venvs/airflow/bin/python benchmarks/bench_demo.py --base main
"""

import argparse
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS.parent
sys.path[:0] = [str(BENCHMARKS), str(REPO_ROOT), str(REPO_ROOT / "tests")]

from bench_suite import export_commit  # noqa: E402
from runtime_access import free_port  # noqa: E402

PYTHON = Path(".venvs/airflow/bin/python")  # relative to a tree
# What a first `make demo` leaves behind: the dataset and the stack's migrated Airflow database.
PREPARE = (
    "import subprocess; from devtools.stack import Stack; stack = Stack(); "
    "stack.write_local_settings(); "
    "subprocess.run(['airflow', 'db', 'migrate'], env=stack.airflow_environment(), check=True, "
    "stdout=subprocess.DEVNULL)"
)
STACK_UP = re.compile(r"stack up after (\d+) s")
TRIES = """
    SELECT task_id, queued_dttm, start_date, end_date FROM task_instance WHERE run_id = :run
    UNION ALL
    SELECT task_id, queued_dttm, start_date, end_date FROM task_instance_history WHERE run_id = :run
"""


@dataclass
class DemoTimes:
    wall: float
    stack_up: float
    run: float
    idle: float  # no task queued, running or deferred, inside the run
    queued: float  # summed over tries: queued -> running
    tasks: dict[str, float] = field(default_factory=dict)  # first queued -> last end

    @property
    def rest(self) -> float:
        return self.wall - self.stack_up - self.run


def seconds(stamp: str | None) -> float | None:
    return datetime.fromisoformat(stamp).timestamp() if stamp else None


def run_timeline(database: Path) -> tuple[float, float, float, dict[str, float]]:
    """The last DAG run's span, its idle and queued seconds, and each task's span."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        run_id, run_start, run_end = db.execute(
            "SELECT run_id, start_date, end_date FROM dag_run ORDER BY start_date DESC LIMIT 1"
        ).fetchone()
        rows = db.execute(TRIES, {"run": run_id}).fetchall()
    begin, end = seconds(run_start), seconds(run_end)
    spans: dict[str, list[tuple[float, float]]] = {}
    queued_total = 0.0
    for task, queued, started, ended in rows:
        queued, started, ended = seconds(queued), seconds(started), seconds(ended)
        if ended is None or (queued or started) is None:
            continue  # never ran (skipped, or not reached)
        # A deferred task keeps its first start; its queued time is that of its last resumption.
        spans.setdefault(task, []).append((min(filter(None, (queued, started))), ended))
        if queued and started and started >= queued:
            queued_total += started - queued
    idle, cursor = 0.0, begin
    for start, stop in sorted(span for task_spans in spans.values() for span in task_spans):
        idle += max(0.0, start - cursor)
        cursor = max(cursor, stop)
    idle += max(0.0, end - cursor)
    tasks = {task: max(e for _, e in task_spans) - min(s for s, _ in task_spans)
             for task, task_spans in spans.items()}  # fmt: skip
    return end - begin, idle, queued_total, tasks


def copy_working_tree(destination: Path) -> None:
    """The working tree's tracked and untracked (not ignored) files, with its environments."""
    listed = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    (destination / ".venvs").symlink_to((REPO_ROOT / ".venvs").resolve())


def time_demo(tree: Path) -> DemoTimes:
    """Prepare the tree as a first demo would, then run and time `python -m demo.run` in it."""
    ports = {"LOCAL_SAGEMAKER_PORT": str(free_port()), "AIRFLOW_PORT": str(free_port())}
    env = {**subprocess_env(), **ports}
    subprocess.run([str(tree / PYTHON), "-c", PREPARE], cwd=tree, env=env, check=True)
    print(f"\n== demo in {tree} (ports {ports})", flush=True)
    started = time.monotonic()
    demo = subprocess.run(
        [str(tree / PYTHON), "-m", "demo.run"], cwd=tree, env=env, capture_output=True, text=True
    )
    wall = time.monotonic() - started
    print(demo.stdout[-6000:], demo.stderr[-3000:], sep="\n", flush=True)
    if demo.returncode != 0:
        raise SystemExit(f"the demo in {tree} failed (exit {demo.returncode}): no timing")
    run, idle, queued, tasks = run_timeline(tree / ".airflow" / "airflow.db")
    stack_up = float(STACK_UP.search(demo.stdout).group(1))
    return DemoTimes(wall, stack_up, run, idle, queued, tasks)


def subprocess_env() -> dict[str, str]:
    # The trees' own defaults (AIRFLOW_HOME inside the tree), not this shell's.
    return {key: value for key, value in os.environ.items() if key != "AIRFLOW_HOME"}


def print_side_by_side(base: str, before: DemoTimes, after: DemoTimes) -> None:
    rows = [
        ("demo, wall", before.wall, after.wall),
        ("  stack start-up", before.stack_up, after.stack_up),
        ("  DAG run", before.run, after.run),
        ("    no task queued/running", before.idle, after.idle),
        ("    tasks queued -> running", before.queued, after.queued),
        ("  summary and stop", before.rest, after.rest),
    ]
    rows += [(f"  task {task}", before.tasks.get(task, 0.0), after.tasks.get(task, 0.0))
             for task in sorted(set(before.tasks) | set(after.tasks))]  # fmt: skip
    print(f"\n{'seconds':<48} {base:>10} {'working':>10} {'ratio':>7}")
    for label, first, second in rows:
        ratio = f"{first / second:6.2f}x" if second > 0.05 else "      -"
        print(f"{label:<48} {first:10.1f} {second:10.1f} {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the earlier revision (e.g. main)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as scratch:
        base_tree, working_tree = Path(scratch) / "base", Path(scratch) / "working"
        base_tree.mkdir()
        working_tree.mkdir()
        export_commit(args.base, base_tree)
        copy_working_tree(working_tree)
        after = time_demo(working_tree)
        before = time_demo(base_tree)
    print_side_by_side(args.base, before, after)


if __name__ == "__main__":
    main()
