"""Hosting overhead of the local runtime, measured with the project's own classifier handlers.

1. InvokeEndpoint latency through the runtime (boto3 -> runtime -> model server -> handlers)
   against the same handlers called in-process on the same JPEG (target: p50 ratio <= 1.3).
2. Batch transform throughput (one JPEG per request, MaxConcurrentTransforms requests in flight)
   against the in-process batched forward pass (the handlers given all pictures in one JSON
   ``instances`` request). Transform throughput is taken over the transform phase (from the
   job's "Transforming N objects" log line to its end line), so model-server start-up is
   reported separately instead of being hidden in the number.

3. Multi-model endpoint (the same model archive under three keys of one prefix, with the
   runtime's memory budget set to 2.5 model servers' worth, so two fit and three do not):
   - first-invocation latency of each model (download, extract, model server start, model_fn,
     one request);
   - warm p50 of two loaded models against the single-model endpoint of the same archive, in
     alternating rounds (target: ratio <= 1.1);
   - the three models invoked round-robin under the budget for two: every request is answered
     (none dropped), and the unloads and loads the cycle cost are counted.
   The budget is measured, not guessed: the RSS of the in-process handler worker (the same
   model in the same environment) times 2.5.

The model is built by sagemaker_code's ``save_model`` with freshly initialised weights (a
trained one costs the same per request). Both sides run in the container environment with
torch's default thread count.

    .venvs/airflow/bin/python benchmarks/bench_hosting.py [--backbone resnet18]
        [--image-size 224] [--rounds 10] [--images 32] [--concurrency 2] [--cycle 9]
        [--multi-model-only]

``--multi-model-only`` skips 1. and 2. (the single-model endpoint is still deployed: 3. compares
against it), for a loaded machine where the whole run would take too long.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests"), str(REPO_ROOT / "tests" / "runtime")]

import psutil  # noqa: E402
from hosting_support import (  # noqa: E402
    FAST_WAITER,
    build_classifier_model_dir,
    container_python,
    multi_model_status,
    running_runtime,
)

from demo.dataset import class_names, make_dataset  # noqa: E402
from local_sagemaker.executor.archives import pack_directory  # noqa: E402

MODEL_SERVER = REPO_ROOT / "local_sagemaker" / "hosting" / "model_server.py"
BUCKET = "bench"
MULTI_MODELS = ("model-a.tar.gz", "model-b.tar.gz", "model-c.tar.gz")
LOG_GROUP = "/aws/sagemaker/TransformJobs"

# Runs in the container environment: the handlers in-process, through the model server's own
# HandlerChain (the same code path the server uses, minus HTTP). It answers commands on stdin so
# the two sides can be measured in alternating rounds, under the same machine load.
IN_PROCESS_WORKER = """
import base64, importlib.util, json, sys, threading, time
spec = importlib.util.spec_from_file_location("model_server", sys.argv[1])
model_server = importlib.util.module_from_spec(spec)
spec.loader.exec_module(model_server)
model_dir, pictures = sys.argv[2], sys.argv[3:]
module = model_server.import_handler_module(model_server.Path(model_dir) / "code", "inference.py")
chain = model_server.HandlerChain(module, model_dir)
context = model_server.RequestContext({}, model_dir)
one = open(pictures[0], "rb").read()
instances = [base64.b64encode(open(p, "rb").read()).decode() for p in pictures]
batch = json.dumps({"instances": instances}).encode()


def serve_commands():
    chain.invoke(batch, "application/json", "application/json", context)
    for _ in range(20):  # warm-up: the first calls of a fresh process are several times slower
        chain.invoke(one, "image/jpeg", "application/json", context)
    print("ready", flush=True)
    for command in sys.stdin:
        name, count = command.split()
        body, kind = (one, "image/jpeg") if name == "single" else (batch, "application/json")
        seconds = []
        for _ in range(int(count)):
            started = time.perf_counter()
            chain.invoke(body, kind, "application/json", context)
            seconds.append(time.perf_counter() - started)
        print(json.dumps(seconds), flush=True)


# The model server calls the handlers from a request thread, never the main thread; so does
# this worker. (Measured here: on an oversubscribed CPU, torch in the main thread ran the same
# forward pass up to 10x slower than in another thread, which would flatter the runtime.)
worker = threading.Thread(target=serve_commands)
worker.start()
worker.join()
"""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class InProcessHandlers:
    """The container-environment worker above, driven over a pipe."""

    def __init__(self, model_dir: Path, pictures: list[Path]) -> None:
        self.process = subprocess.Popen(
            [container_python(), "-c", IN_PROCESS_WORKER, str(MODEL_SERVER), str(model_dir)]
            + [str(p) for p in pictures],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the in-process handler worker failed to start")

    def time(self, kind: str, count: int) -> list[float]:
        """Seconds per call of ``count`` single-picture (``single``) or ``batch`` invocations."""
        self.process.stdin.write(f"{kind} {count}\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def memory_mb(self) -> float:
        """The worker's RSS: one loaded model in the container environment."""
        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def deploy(runtime, archive: Path) -> None:
    s3 = runtime.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.upload_file(str(archive), BUCKET, "model/model.tar.gz")
    started = time.monotonic()
    create_endpoint(runtime, "bench", {"ModelDataUrl": f"s3://{BUCKET}/model/model.tar.gz"})
    print(f"endpoint InService after {time.monotonic() - started:.1f} s (model server start-up)")


def create_endpoint(runtime, name: str, container: dict) -> None:
    sagemaker = runtime.client("sagemaker")
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn="arn:aws:iam::123456789012:role/local",
        PrimaryContainer={"Image": "pytorch-inference", **container},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": name}],
    )
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=FAST_WAITER)


def timed_invoke(client, endpoint: str, body: bytes, **target) -> float:
    started = time.perf_counter()
    client.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType="image/jpeg", **target)
    return time.perf_counter() - started


def measure_multi_model(runtime, archive: Path, picture: Path, rounds: int, cycle: int) -> None:
    """The multi-model measurements of the module docstring (3.), on endpoint ``bench-mme``,
    printed as they are taken (a run cut short still shows what it measured)."""
    s3, sagemaker = runtime.client("s3"), runtime.client("sagemaker")
    client = runtime.client("sagemaker-runtime")
    for key in MULTI_MODELS:
        s3.upload_file(str(archive), BUCKET, f"models/{key}")
    container = {"Mode": "MultiModel", "ModelDataUrl": f"s3://{BUCKET}/models/"}
    create_endpoint(runtime, "bench-mme", container)
    body = picture.read_bytes()
    warm_models = MULTI_MODELS[:2]
    for key in warm_models:
        report_first_invocation(key, timed_invoke(client, "bench-mme", body, TargetModel=key))
    for _ in range(20):  # the same warm-up the single-model endpoint had
        for key in warm_models:
            timed_invoke(client, "bench-mme", body, TargetModel=key)
    warm: dict[str, list[float]] = {key: [] for key in ("single", *warm_models)}
    for _ in range(rounds):
        warm["single"] += [timed_invoke(client, "bench", body) for _ in range(5)]
        for key in warm_models:
            warm[key] += [
                timed_invoke(client, "bench-mme", body, TargetModel=key) for _ in range(5)
            ]
    report_warm(warm)
    before = multi_model_status(sagemaker, "bench-mme")
    third = MULTI_MODELS[2]
    report_first_invocation(third, timed_invoke(client, "bench-mme", body, TargetModel=third))
    answered, cycle_started = 1, time.monotonic()
    for number in range(cycle):  # round-robin over three models with room for two
        timed_invoke(client, "bench-mme", body, TargetModel=MULTI_MODELS[number % 3])
        answered += 1  # a dropped request raises: the run would stop here
    after = multi_model_status(sagemaker, "bench-mme")
    print(
        f"3 models, room for 2: {answered}/{cycle + 1} requests answered (the third model's "
        f"first, then {cycle} round-robin in {time.monotonic() - cycle_started:.1f} s); over "
        f"them {after['ModelLoadCount'] - before['ModelLoadCount']} loads and "
        f"{after['ModelUnloadCount'] - before['ModelUnloadCount']} unloads; "
        f"loaded at the end: {', '.join(after['LoadedModels'])}"
    )


def report_first_invocation(key: str, seconds: float) -> None:
    print(f"first invocation    : {key} {seconds:6.2f} s (download, server start, model_fn)")


def report_warm(warm: dict[str, list[float]]) -> None:
    single = statistics.median(warm["single"])
    print(f"warm single-model   : p50 {single * 1000:7.1f} ms ({len(warm['single'])} requests)")
    for key in MULTI_MODELS[:2]:
        p50 = statistics.median(warm[key])
        print(
            f"warm multi-model    : {key} p50 {p50 * 1000:7.1f} ms  "
            f"ratio {p50 / single:.2f}x of single-model (target <= 1.1x)"
        )


def compare_latencies(runtime, handlers: InProcessHandlers, picture: Path, rounds: int):
    """Alternate rounds of 5 requests on each side (so both see the same machine load), after a
    warm-up of the model server; returns the (in-process, InvokeEndpoint) latencies in s."""
    client = runtime.client("sagemaker-runtime")
    body = picture.read_bytes()

    def invoke() -> float:
        started = time.perf_counter()
        client.invoke_endpoint(EndpointName="bench", Body=body, ContentType="image/jpeg")
        return time.perf_counter() - started

    for _ in range(20):
        invoke()
    local, remote = [], []
    for _ in range(rounds):
        local += handlers.time("single", 5)
        remote += [invoke() for _ in range(5)]
    return local, remote


def measure_transform(runtime, pictures: list[Path], concurrency: int) -> dict:
    s3, sagemaker, logs = (runtime.client(name) for name in ("s3", "sagemaker", "logs"))
    for number, picture in enumerate(pictures):
        s3.upload_file(str(picture), BUCKET, f"valid/{number:04d}.jpg")
    started = time.monotonic()
    sagemaker.create_transform_job(
        TransformJobName="bench-transform",
        ModelName="bench",
        MaxConcurrentTransforms=concurrency,
        TransformInput={
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/valid/"}
            },
            "ContentType": "image/jpeg",
        },
        TransformOutput={"S3OutputPath": f"s3://{BUCKET}/out/", "Accept": "application/json"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )
    sagemaker.get_waiter("transform_job_completed_or_stopped").wait(
        TransformJobName="bench-transform", WaiterConfig={"Delay": 1, "MaxAttempts": 600}
    )
    wall = time.monotonic() - started
    stream = logs.describe_log_streams(
        logGroupName=LOG_GROUP, logStreamNamePrefix="bench-transform/"
    )
    events = logs.get_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=stream["logStreams"][0]["logStreamName"],
        startFromHead=True,
    )["events"]
    begin = next(e["timestamp"] for e in events if e["message"].startswith("Transforming "))
    end = next(e["timestamp"] for e in events if e["message"].startswith("Transform job "))
    return {"wall_seconds": wall, "transform_seconds": (end - begin) / 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=10, help="rounds of 5 requests per side")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--cycle", type=int, default=9, help="round-robin requests over 3 models in a budget for 2"
    )
    parser.add_argument("--multi-model-only", action="store_true", help="skip sections 1 and 2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-hosting-") as scratch:
        root = Path(scratch)
        per_class = -(-args.images // args.classes)
        dataset = make_dataset(
            root / "dataset",
            args.classes,
            {"train": 0, "valid": per_class, "test": 0},
            image_size=args.image_size,
        )
        pictures = sorted(p for p in (dataset / "valid").rglob("*.jpg"))[: args.images]
        model_dir = build_classifier_model_dir(
            root / "model", class_names(args.classes), args.backbone, args.image_size
        )
        archive = pack_directory(model_dir, root / "model.tar.gz")
        print(
            f"{args.backbone} at {args.image_size}px, {args.classes} classes, "
            f"{len(pictures)} JPEGs; torch default threads on each side"
        )
        handlers = InProcessHandlers(model_dir, pictures)
        model_mb = handlers.memory_mb()
        budget = {"LOCAL_SAGEMAKER_MULTI_MODEL_MEMORY_MB": str(int(2.5 * model_mb))}
        print(
            f"multi-model budget  : {budget['LOCAL_SAGEMAKER_MULTI_MODEL_MEMORY_MB']} MiB "
            f"(2.5 x {model_mb:.0f} MiB, one loaded model's RSS)"
        )
        try:
            with running_runtime(root / "state", budget) as runtime:
                deploy(runtime, archive)
                if not args.multi_model_only:
                    local, remote = compare_latencies(runtime, handlers, pictures[0], args.rounds)
                    batched_before = handlers.time("batch", 1)[0]
                    transform = measure_transform(runtime, pictures, args.concurrency)
                    batched_after = handlers.time("batch", 1)[0]
                    batched = (batched_before + batched_after) / 2
                    report(args, local, remote, len(pictures), batched, transform)
                measure_multi_model(runtime, archive, pictures[0], args.rounds, args.cycle)
        finally:
            handlers.close()
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def report(args, local, remote, images: int, batched_seconds: float, transform: dict) -> None:
    in_p50, rt_p50 = statistics.median(local), statistics.median(remote)
    for label, values in (("in-process handlers", local), ("InvokeEndpoint     ", remote)):
        print(
            f"{label} : p50 {statistics.median(values) * 1000:7.1f} ms  "
            f"p90 {percentile(values, 0.9) * 1000:7.1f} ms  ({len(values)} requests)"
        )
    print(f"latency ratio p50   : {rt_p50 / in_p50:.2f}x (target <= 1.3x)")
    batched = images / batched_seconds
    transformed = images / transform["transform_seconds"]
    print(f"in-process batched  : {batched:7.1f} images/s ({images} in one request)")
    print(
        f"transform           : {transformed:7.1f} images/s over the transform phase "
        f"({args.concurrency} concurrent, one JPEG per request); whole job "
        f"{transform['wall_seconds']:.1f} s including model server start-up"
    )
    print(f"throughput ratio    : {transformed / batched:.2f}x of in-process batched")


if __name__ == "__main__":
    main()
