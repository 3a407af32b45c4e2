"""Real model artifacts for the hosting and transform tests, built without torch.

The "model" is a stdlib-only linear scorer: ``model.json`` holds one weight vector per class,
and ``code/inference.py`` follows the sagemaker-inference toolkit contract. Its handlers also
have deliberate failure modes so the tests can prove how errors travel:

- a JSON body ``{"raise": "message"}`` makes predict_fn raise ValueError (-> HTTP 500);
- Content-Type ``text/plain`` makes input_fn raise an error with ``status_code = 400``;
- a JSON body ``{"sleep": seconds}`` makes predict_fn sleep (for update/stop tests);
- a model built with ``fail_requests`` loads, answers /ping, and fails every prediction (-> 500),
  as a model with a bad inference script would;
- Accept ``text/csv`` returns CSV through the ``(body, content_type)`` tuple form;
- a model built with ``ballast_mb`` holds that much memory once loaded (for memory budgets).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from runtime_support import REPO_ROOT, RuntimeProcess
from werkzeug.test import Client

from local_sagemaker.config import RuntimeConfig
from local_sagemaker.executor import Executor
from local_sagemaker.logs import LogService
from local_sagemaker.s3 import S3Service
from local_sagemaker.sagemaker.backend import build_backend
from local_sagemaker.store import RecordStore

CLASSES = ["cat", "dog", "fox"]
WEIGHTS = [[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]

INFERENCE_SCRIPT = """
import json
import os
import time


class BadRequest(Exception):
    status_code = 400


def model_fn(model_dir):
    with open(os.path.join(model_dir, "model.json")) as handle:
        model = json.load(handle)
    if model.get("fail_to_load"):
        raise RuntimeError("model.json asks model_fn to fail: " + model["fail_to_load"])
    time.sleep(model.get("load_seconds", 0))
    # Written bytes, so they count in the server's resident set (multi-model memory budgets).
    model["ballast"] = b"x" * (model.get("ballast_mb", 0) * 2**20)
    return model


def input_fn(body, content_type):
    if content_type == "text/plain":
        raise BadRequest("text/plain is not accepted, send application/json")
    if content_type == "application/jsonlines":
        return [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    return json.loads(body)


def score(features, model):
    scores = [sum(w * x for w, x in zip(row, features)) for row in model["weights"]]
    best = max(range(len(scores)), key=scores.__getitem__)
    return {"label": model["classes"][best], "scores": scores, "version": model["version"]}


def predict_row(row, model):
    if isinstance(row, dict) and "raise" in row:
        raise ValueError(row["raise"])
    if isinstance(row, dict) and "sleep" in row:
        time.sleep(row["sleep"])
        return {"slept": row["sleep"], "version": model["version"]}
    return score(row, model)


def predict_fn(data, model):
    if model.get("fail_requests"):
        raise RuntimeError(model["fail_requests"])
    batched = isinstance(data, list) and data and isinstance(data[0], (list, dict))
    return [predict_row(row, model) for row in (data if batched else [data])]


def output_fn(predictions, accept):
    if accept == "text/csv":
        return "\\n".join(p["label"] for p in predictions), "text/csv"
    if accept == "application/jsonlines":
        return "".join(json.dumps(p) + "\\n" for p in predictions)
    return json.dumps(predictions)
"""


def model_files(
    version: str = "v1",
    fail_to_load: str | None = None,
    load_seconds: float = 0,
    fail_requests: str | None = None,
    ballast_mb: int = 0,
) -> dict[str, bytes]:
    """The model dir's files: relative path -> content. ``ballast_mb``: memory model_fn holds."""
    model = {"classes": CLASSES, "weights": WEIGHTS, "version": version}
    if ballast_mb:
        model["ballast_mb"] = ballast_mb
    if fail_requests:
        model["fail_requests"] = fail_requests
    if load_seconds:
        model["load_seconds"] = load_seconds
    if fail_to_load:
        model["fail_to_load"] = fail_to_load
    return {
        "model.json": json.dumps(model).encode(),
        "code/inference.py": INFERENCE_SCRIPT.encode(),
    }


def write_model_dir(root: Path, **options) -> Path:
    for relative, content in model_files(**options).items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)
    return root


def model_tarball(**options) -> bytes:
    """model.tar.gz bytes as SageMaker training would upload them."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for relative, content in model_files(**options).items():
            info = tarfile.TarInfo(relative)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def expected_label(features: list[float]) -> str:
    scores = [sum(w * x for w, x in zip(row, features, strict=True)) for row in WEIGHTS]
    return CLASSES[scores.index(max(scores))]


def wait_for(describe, status_key: str, done: tuple[str, ...], timeout_s: float = 60.0) -> dict:
    """Poll ``describe()`` until ``record[status_key]`` is one of ``done``; returns the record."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = describe()
        if record[status_key] in done:
            return record
        time.sleep(0.1)
    raise AssertionError(f"still {record[status_key]} after {timeout_s} s: {record}")


def create_bucket(s3, name: str) -> None:
    """CreateBucket through the runtime's S3 REST front, so it is journaled like a client's."""
    response = Client(s3.wsgi_app).put(f"/{name}")
    assert response.status_code == 200, response.get_data(as_text=True)


@contextlib.contextmanager
def running_runtime(data_dir: Path, extra_env: dict[str, str] | None = None):
    """A real ``python -m local_sagemaker serve`` (runtime_support's RuntimeProcess), stopped
    with SIGTERM at the end so its own shutdown stops the model servers; yields it."""
    runtime = RuntimeProcess(data_dir).start(extra_env)
    try:
        yield runtime
    finally:
        runtime.stop()


FAST_WAITER = {"Delay": 1, "MaxAttempts": 90}


def multi_model_status(sagemaker, endpoint: str, variant: int = 0) -> dict:
    """DescribeEndpoint's MultiModelStatus of a variant: a runtime member, which botocore's
    parser drops (it is not in AWS's shape), so it is read from the raw response."""
    raw = {}

    def keep_raw(http_response, **_):
        raw.update(json.loads(http_response.content))

    sagemaker.meta.events.register("after-call.sagemaker.DescribeEndpoint", keep_raw)
    try:
        sagemaker.describe_endpoint(EndpointName=endpoint)
    finally:
        sagemaker.meta.events.unregister("after-call.sagemaker.DescribeEndpoint", keep_raw)
    return raw["ProductionVariants"][variant]["MultiModelStatus"]


BUILD_CLASSIFIER = """
import sys
from pathlib import Path

import torch

from classifier.artifact import save_model
from classifier.models import build_model

out, backbone, image_size, *class_names = sys.argv[1:]
torch.manual_seed(0)
network = build_model(backbone, len(class_names))
save_model(Path(out), network, backbone=backbone, class_names=class_names,
           image_size=int(image_size))
"""


def build_classifier_model_dir(
    destination: Path, class_names: list[str], backbone: str = "simplecnn", image_size: int = 32
) -> Path:
    """A model dir made by sagemaker_code's own helpers (``save_model``: model.pt + code/),
    with freshly initialised weights, built in the container environment (it needs torch)."""
    arguments = [str(destination), backbone, str(image_size), *class_names]
    subprocess.run(
        [container_python(), "-c", BUILD_CLASSIFIER, *arguments],
        check=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "sagemaker_code")},
        timeout=120,
    )
    return destination


def container_python() -> str:
    return RuntimeConfig().container_python


def start_backend(data_dir: Path):
    """A SageMakerBackend over real services in ``data_dir`` (no HTTP server), for its hosting
    and transform families; model servers run under this interpreter."""
    config = RuntimeConfig(data_dir=data_dir, container_python=sys.executable)
    s3 = S3Service(config.data_dir, config.region, config.account)
    logs = LogService(config.data_dir, config.region, config.account)
    store = RecordStore(config.data_dir)
    return build_backend(config, store, s3, logs, Executor(config, s3, logs))
