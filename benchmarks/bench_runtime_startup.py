"""Start-up overhead of a local training job: seconds from the CreateTrainingJob call to the
moment the training script's first line reaches CloudWatch Logs (target: < 2 s).

Starts ``python -m local_sagemaker serve`` on a free port with a fresh data dir (the runtime
tests' RuntimeProcess), runs ``--runs`` script-mode jobs whose script prints one line at once,
and prints each latency and the median. The script runs in the image's Python (the container
environment by default).

    .venvs/airflow/bin/python benchmarks/bench_runtime_startup.py [--runs 5]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests"), str(REPO_ROOT / "tests" / "runtime")]

from runtime_support import BUCKET, RuntimeProcess, start_script_job  # noqa: E402

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
SCRIPT = "print('first line', flush=True)\n"


def first_line_latency(runtime: RuntimeProcess, name: str) -> float:
    """Seconds from creating the job (its 1 kB source dir upload included) to the first log
    event's timestamp."""
    logs = runtime.client("logs")
    created = time.time()
    start_script_job(runtime, BUCKET, name, SCRIPT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{name}/")
        for stream in streams["logStreams"]:
            if "firstEventTimestamp" in stream:
                return stream["firstEventTimestamp"] / 1000 - created
        time.sleep(0.01)
    raise TimeoutError(f"{name}: no log line within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        runtime = RuntimeProcess(Path(scratch) / "state").start()
        try:
            s3 = runtime.client("s3")
            s3.create_bucket(Bucket=BUCKET)
            s3.put_object(Bucket=BUCKET, Key="data/train/one.txt", Body=b"1")
            runtime.client("logs").create_log_group(logGroupName=LOG_GROUP)
            latencies = [first_line_latency(runtime, f"bench-{n}") for n in range(args.runs)]
        finally:
            runtime.stop()
    for n, latency in enumerate(latencies):
        print(f"run {n}: {latency:.3f} s from CreateTrainingJob to the script's first line")
    print(f"median start-up overhead: {statistics.median(latencies):.3f} s (target < 2 s)")


if __name__ == "__main__":
    main()
