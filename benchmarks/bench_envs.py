"""A fresh machine's `make envs`, built from the locks with uv, against the pip build it replaced.

From a fresh clone of this commit (git clone into a temporary directory), side by side:
1. uv, cold: `make envs` with an empty uv cache (a first build on a fresh machine), uv itself
   installed by make.
2. uv, warm: `make envs` again into new venvs, with the cache the cold build filled.
3. pip: what `make envs` did before the locks: a venv per environment and `pip install -r` of the
   environment's pyproject.toml groups, resolved by pip (its own cache as this machine has it).
   It is stopped after --pip-limit seconds; the table then says so, and its ratios are bounds.
Each builds the airflow and container environments (target: uv cold under 2 minutes). Run it
niced: the builds are disk heavy (the container environment is 5.5 GB, torch's CUDA build).

    python3.11 benchmarks/bench_envs.py [--work /tmp/bench-envs] [--pip-limit 900] [--skip-pip]

`--against REV` times instead an earlier commit's `make envs` and this commit's, side by side,
both into new venvs with this machine's uv cache as it is (warm: no download): what a change to
the Makefile or devtools/envs.py gained.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from devtools.envs import environment  # noqa: E402
from devtools.requirements import requirements  # noqa: E402

PIPELINE_ENVIRONMENTS = ["airflow", "container"]


def timed(command: list[str], **kwargs) -> float:
    started = time.monotonic()
    subprocess.run(command, check=True, **kwargs)
    return time.monotonic() - started


def pip_build(clone: Path, venvs: Path, limit: float) -> float:
    """The environments as the Makefile built them before locks: pip resolves each from scratch.
    Raises TimeoutExpired past `limit` seconds."""
    started = time.monotonic()
    for name in PIPELINE_ENVIRONMENTS:
        requirements_file = venvs / f"{name}-requirements.txt"
        requirements_file.write_text("\n".join(requirements(environment(name).groups)) + "\n")
        subprocess.run([sys.executable, "-m", "venv", str(venvs / name)], check=True)
        subprocess.run(
            [
                venvs / name / "bin" / "python",
                "-m",
                "pip",
                "install",
                "-q",
                "-r",
                requirements_file,
            ],
            check=True,
            cwd=clone,
            timeout=max(1.0, limit - (time.monotonic() - started)),
        )
    return time.monotonic() - started


def uv_build(clone: Path, venvs: Path, cache: Path) -> float:
    environ = {**os.environ, "UV_CACHE_DIR": str(cache)}
    command = ["make", "--no-print-directory", "envs", f"VENVS={venvs}", f"PYTHON={sys.executable}"]
    return timed(command, cwd=clone, env=environ)


def against(revision: str, work: Path) -> None:
    """`make envs` of `revision` and of HEAD, each from its own clone into new venvs, warm."""
    results = {}
    for label in (revision, "HEAD"):
        clone = work / f"clone-{len(results)}"
        subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
        subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", label], check=True)
        command = ["make", "--no-print-directory", "envs", f"VENVS={clone / '.venvs'}"]
        results[label] = timed([*command, f"PYTHON={sys.executable}"], cwd=clone)
        shutil.rmtree(clone)
    (before, after), width = results.values(), max(map(len, results))
    for label, seconds in results.items():
        print(f"make envs at {label:{width}} (warm uv cache): {seconds:6.1f} s")
    print(f"ratio (before / after): {before / after:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", metavar="REV", help="time REV's make envs against HEAD's")
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (deleted after)")
    parser.add_argument("--skip-pip", action="store_true", help="time the uv builds only")
    parser.add_argument("--pip-limit", type=float, default=900, help="seconds pip may take")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-envs-", dir=args.work))
    if args.against:
        try:
            return against(args.against, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    pip_label = "pip (its cache as found)"
    try:
        clone = work / "clone"
        subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
        cache = work / "uv-cache"
        results = {"uv cold (empty cache)": uv_build(clone, _fresh(work / "uv-cold"), cache)}
        shutil.rmtree(work / "uv-cold")
        results["uv warm (cache of the cold build)"] = uv_build(
            clone, _fresh(work / "uv-warm"), cache
        )
        shutil.rmtree(work / "uv-warm")
        if not args.skip_pip:
            try:
                results[pip_label] = pip_build(clone, _fresh(work / "pip-venvs"), args.pip_limit)
            except subprocess.TimeoutExpired:
                pip_label = f"pip (its cache as found), stopped at {args.pip_limit:.0f} s"
                results[pip_label] = args.pip_limit
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'build of ' + ' + '.join(PIPELINE_ENVIRONMENTS):48} {'seconds':>8} {'pip/this':>9}")
    pip_seconds = results.get(pip_label)
    for label, seconds in results.items():
        ratio = f"{pip_seconds / seconds:9.2f}" if pip_seconds else f"{'-':>9}"
        print(f"{label:48} {seconds:8.1f} {ratio}")
    if pip_seconds and "stopped" in pip_label:
        print("pip did not finish: each ratio is at least the figure shown")


def _fresh(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


if __name__ == "__main__":
    main()
