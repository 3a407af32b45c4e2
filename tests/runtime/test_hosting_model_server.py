"""The model server process follows the sagemaker-inference toolkit contract (behaviour 5.5)."""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hosting_support import expected_label, write_model_dir

from local_sagemaker.hosting.process import ModelServerProcess, ModelServerStartError

# Every test here starts model server processes.
pytestmark = pytest.mark.e2e


def start_server(model_dir: Path, environment: dict[str, str] | None = None):
    lines: list[str] = []
    server = ModelServerProcess(sys.executable, model_dir, environment or {}, lines.append)
    return server, lines


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    model_dir = write_model_dir(tmp_path_factory.mktemp("served") / "model")
    server, lines = start_server(model_dir)
    server.wait_until_healthy(timeout_s=30)
    yield server, lines
    server.stop()


def invoke(server, body, content_type="application/json", accept=None):
    headers = {"Content-Type": content_type}
    if accept is not None:
        headers["Accept"] = accept
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return server.request("POST", "/invocations", payload, headers)


def test_invocations_run_input_predict_output_chain(served):
    server, _ = served
    status, headers, body = invoke(server, [[0.2, 0.9], [3.0, 1.0]])
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert [p["label"] for p in json.loads(body)] == [
        expected_label([0.2, 0.9]),
        expected_label([3.0, 1.0]),
    ]


@pytest.mark.parametrize("accept", [None, "*/*"])
def test_missing_or_any_accept_falls_back_to_json(served, accept):
    status, headers, _ = invoke(served[0], [1.0, 0.0], accept=accept)
    assert (status, headers["content-type"]) == (200, "application/json")


def test_tuple_result_sets_response_content_type(served):
    status, headers, body = invoke(served[0], [[0.0, 2.0]], accept="text/csv")
    assert (status, headers["content-type"], body) == (200, "text/csv", b"dog")


def test_error_with_status_code_answers_that_status(served):
    status, _, body = invoke(served[0], b"hello", content_type="text/plain")
    assert status == 400
    assert body.startswith(b"text/plain is not accepted")


def test_other_exceptions_answer_500_with_text_and_server_keeps_serving(served):
    server, lines = served
    status, _, body = invoke(server, {"raise": "weights exploded"})
    assert status == 500
    assert body.startswith(b"weights exploded\nTraceback")
    deadline = time.monotonic() + 5  # the log pump reads the server's stderr asynchronously
    while not any("ValueError: weights exploded" in line for line in lines):
        assert time.monotonic() < deadline, "the traceback never reached the log"
        time.sleep(0.02)
    assert invoke(server, [1.0, 1.0])[0] == 200


def test_concurrent_requests_are_served_in_parallel(served):
    server, _ = served
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: invoke(server, {"sleep": 0.3}), range(4)))
    assert [status for status, _, _ in results] == [200] * 4


def test_ping_and_execution_parameters(served):
    server, _ = served
    assert server.request("GET", "/ping")[0] == 200
    status, _, body = server.request("GET", "/execution-parameters")
    assert status == 200
    assert json.loads(body) == {
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }


def test_failing_model_fn_fails_start_with_its_error(tmp_path):
    model_dir = write_model_dir(tmp_path / "model", fail_to_load="corrupt weights")
    server, _ = start_server(model_dir)
    with pytest.raises(ModelServerStartError, match="corrupt weights"):
        server.wait_until_healthy(timeout_s=30)
    server.stop()


def test_transform_fn_with_chained_handlers_is_refused(tmp_path):
    model_dir = write_model_dir(tmp_path / "model")
    script = model_dir / "code" / "inference.py"
    extra = "\ndef transform_fn(model, data, content_type, accept):\n    pass\n"
    script.write_text(script.read_text() + extra)
    server, _ = start_server(model_dir)
    with pytest.raises(ModelServerStartError, match="Cannot use transform_fn"):
        server.wait_until_healthy(timeout_s=30)
    server.stop()


def test_transform_fn_with_context_and_program_override(tmp_path):
    model_dir = tmp_path / "model"
    (model_dir / "code").mkdir(parents=True)
    (model_dir / "code" / "serve.py").write_text(
        "def model_fn(model_dir):\n    return 'echo'\n\n"
        "def transform_fn(model, data, content_type, accept, context):\n"
        "    trace = context.get_request_header(0, 'X-Amzn-SageMaker-Custom-Attributes')\n"
        "    return data + b'|' + trace.encode(), 'application/x-echo'\n"
    )
    server, _ = start_server(model_dir, {"SAGEMAKER_PROGRAM": "serve.py"})
    server.wait_until_healthy(timeout_s=30)
    try:
        status, headers, body = server.request(
            "POST",
            "/invocations",
            b"\x00raw",
            {"Content-Type": "image/jpeg", "X-Amzn-SageMaker-Custom-Attributes": "trace=1"},
        )
    finally:
        server.stop()
    assert status == 200
    assert (headers["content-type"], body) == ("application/x-echo", b"\x00raw|trace=1")
    assert not server.is_running()


@pytest.mark.skipif(os.geteuid() != 0, reason="model servers are sandboxed only by a root runtime")
def test_a_root_runtimes_server_sees_its_model_at_opt_ml_model_as_a_job_user(tmp_path):
    model_dir = tmp_path / "model"
    (model_dir / "code").mkdir(parents=True)
    (model_dir / "weights.txt").write_text("w=1")
    (model_dir / "code" / "inference.py").write_text(
        "import os\n"
        "def model_fn(model_dir):\n"
        "    return open('/opt/ml/model/weights.txt').read()\n\n"
        "def transform_fn(model, data, content_type, accept):\n"
        "    home = os.access(os.environ['HOME'], os.W_OK)\n"
        "    writable = os.access('/opt/ml/model', os.W_OK)\n"
        "    return f'{model} uid={os.getuid()} home={home} model={writable}', 'text/plain'\n"
    )
    server, _ = start_server(model_dir)
    server.wait_until_healthy(timeout_s=30)
    try:
        status, _, body = server.request("POST", "/invocations", b"x", {"Content-Type": "x/y"})
    finally:
        server.stop()
    assert status == 200
    model, uid, home, model_writable = body.decode().split()
    assert (model, home, model_writable) == ("w=1", "home=True", "model=False")
    assert uid != "uid=0"
