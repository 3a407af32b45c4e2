"""Staging at the Udacity set's scale, side by side with `aws s3 sync`, in one run.

Generates a dataset of the Udacity set's shape (133 classes; 6,680/835/836 images of ~132 kB, about
1.1 GB; each file's bytes unique), starts the local runtime on a free port (the runtime tests'
RuntimeProcess), and measures on the same files against the same runtime:
1. `aws s3 sync <dataset> s3://<bucket>/sync/` (the AWS CLI users would otherwise run);
2. the pipeline's first stage of it (verify every image, hash, upload, write the manifest);
3. re-checking the unchanged dataset (fetch_and_verify with the per-file record: target < 15 s);
4. a second stage of it (recognised and reused: nothing uploaded).
It prints the seconds, MB/s, and the throughput ratio stage / sync (target >= 0.8).

    .venvs/airflow/bin/python benchmarks/bench_staging.py [--scale 1.0] [--keep DIR]
"""

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "plugins"), str(REPO_ROOT / "tests" / "runtime")]

from PIL import Image  # noqa: E402
from runtime_support import RuntimeProcess, client_environment  # noqa: E402
from sagemaker_lifecycle import staging  # noqa: E402
from sagemaker_lifecycle.settings import load_settings  # noqa: E402

UDACITY_SPLITS = {"train": 6680, "valid": 835, "test": 836}
CLASSES = 133
IMAGE_SIDE = 430  # noise at this size and quality 90 makes ~132 kB JPEGs, the Udacity mean
BASE_IMAGES = 32


def generate(root: Path, scale: float) -> int:
    """The dataset's files; returns its size in bytes. Every file is one of BASE_IMAGES noise
    JPEGs with a unique trailer after its end marker (decoders ignore it; hashes differ)."""
    bases = []
    for seed in range(BASE_IMAGES):
        buffer = io.BytesIO()
        noise = Image.effect_noise((IMAGE_SIDE, IMAGE_SIDE), 40 + seed).convert("RGB")
        noise.save(buffer, "JPEG", quality=90)
        bases.append(buffer.getvalue())
    total = 0
    for split, count in UDACITY_SPLITS.items():
        for index in range(max(CLASSES, round(count * scale))):
            folder = root / split / f"{index % CLASSES + 1:03d}.Breed_{index % CLASSES + 1}"
            folder.mkdir(parents=True, exist_ok=True)
            data = bases[index % BASE_IMAGES] + f"{split}-{index}".encode()
            (folder / f"image_{index:05d}.jpg").write_bytes(data)
            total += len(data)
    return total


def timed(action) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the Udacity count")
    parser.add_argument("--keep", type=Path, help="generate into (or reuse) this folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-staging-"))
    dataset = args.keep or work / "dataset"
    try:
        if not (dataset / "test").is_dir():
            seconds, size = timed(lambda: generate(dataset, args.scale))
            print(f"generated {dataset} in {seconds:.1f} s")
        size = sum(path.stat().st_size for path in dataset.rglob("*") if path.is_file())
        files = sum(1 for path in dataset.rglob("*.jpg"))
        megabytes = size / 1e6
        print(f"dataset: {files} images, {megabytes:.0f} MB")
        runtime = RuntimeProcess(data_dir=work / "runtime").start()
        try:
            s3 = runtime.client("s3")
            s3.create_bucket(Bucket="bench-staging")
            env = {**os.environ, **client_environment(runtime.url)}
            sync_s, _ = timed(lambda: subprocess.run(
                ["aws", "s3", "sync", "--only-show-errors", str(dataset),
                 "s3://bench-staging/sync/"], env=env, check=True,
            ))  # fmt: skip
            settings = load_settings({
                "aws": {"bucket": "bench-staging"},
                "dataset": {"source": str(dataset), "cache_dir": str(work / "cache")},
            })  # fmt: skip
            stage_s, first = timed(lambda: staging.stage(settings, s3))
            assert not first.reused_snapshot
            recheck_s, _ = timed(lambda: staging.fetch_and_verify(settings["dataset"], s3))
            again_s, second = timed(lambda: staging.stage(settings, s3))
            assert second.reused_snapshot and second.snapshot_id == first.snapshot_id
        finally:
            runtime.stop()
        print(f"\n{'step':<44}{'seconds':>9}{'MB/s':>9}")
        for name, seconds in (("aws s3 sync (first upload)", sync_s),
                              ("stage: verify + hash + upload (first)", stage_s),
                              ("re-check of the unchanged dataset", recheck_s),
                              ("stage again (snapshot reused)", again_s)):  # fmt: skip
            print(f"{name:<44}{seconds:>9.1f}{megabytes / seconds:>9.1f}")
        print(f"\nfirst upload throughput, stage / aws s3 sync: {sync_s / stage_s:.2f}x "
              "(target >= 0.8)")  # fmt: skip
        print(f"re-check of the unchanged dataset: {recheck_s:.1f} s (target < 15 s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
