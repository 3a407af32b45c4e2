"""Batch transform semantics over a real model server (splitting, batching, limits, failures)."""

from __future__ import annotations

import gzip
import json
import sys
import threading
import time

import pytest
from hosting_support import expected_label, write_model_dir

from local_sagemaker.hosting.batch import (
    InputObject,
    ObjectFailure,
    TransformSettings,
    build_payloads,
    run_transform,
)
from local_sagemaker.hosting.process import ModelServerProcess

# The tests here start a model server process (all but the two of build_payloads and gzip).
pytestmark = pytest.mark.e2e

JSONL = "application/jsonlines"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model_dir = write_model_dir(tmp_path_factory.mktemp("batch") / "model")
    process = ModelServerProcess(sys.executable, model_dir, {}, lambda line: None)
    process.wait_until_healthy(timeout_s=30)
    yield process
    process.stop()


def transform(server, inputs: dict[str, bytes], **settings):
    """Run a transform over in-memory objects; returns (outcome, outputs, request bodies)."""
    outputs: dict[str, bytes] = {}
    requests: list[bytes] = []

    def invoke(payload, headers):
        requests.append(payload)
        return server.request("POST", "/invocations", payload, headers)

    objects = [InputObject(key, f"out/{key}.out") for key in inputs]
    outcome = run_transform(
        objects,
        inputs.__getitem__,
        outputs.__setitem__,
        invoke,
        TransformSettings(**settings),
        threading.Event(),
        lambda line: None,
    )
    return outcome, outputs, requests


def jsonl(rows) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


ROWS = [[1.0, 0.0], [0.0, 1.0], [-2.0, -3.0], [0.5, 0.4]]


def test_line_split_multi_record_packs_records_and_keeps_order(server):
    outcome, outputs, requests = transform(
        server,
        {"a.jsonl": jsonl(ROWS)},
        content_type=JSONL,
        accept=JSONL,
        split_type="Line",
        batch_strategy="MultiRecord",
        assemble_with="Line",
    )
    assert outcome.failures == {} and outcome.succeeded == ["a.jsonl"]
    assert len(requests) == 1
    labels = [json.loads(line)["label"] for line in outputs["out/a.jsonl.out"].splitlines()]
    assert labels == [expected_label(row) for row in ROWS]


def test_single_record_sends_one_request_per_line(server):
    _, outputs, requests = transform(
        server,
        {"a.jsonl": jsonl(ROWS)},
        content_type="application/json",
        split_type="Line",
        batch_strategy="SingleRecord",
        assemble_with="Line",
        max_concurrent_transforms=3,
    )
    assert sorted(requests) == sorted(json.dumps(row).encode() for row in ROWS)
    lines = outputs["out/a.jsonl.out"].splitlines()
    assert [json.loads(line)[0]["label"] for line in lines] == [expected_label(r) for r in ROWS]


def test_multi_record_batches_respect_max_payload():
    records = [b"x" * 1_200_000] * 6
    payloads = build_payloads(b"\n".join(records), TransformSettings(split_type="Line"))
    assert [len(p) for p in payloads] == [1_200_000 * 5 + 4, 1_200_000]
    assert all(len(p) <= 6 * 1024 * 1024 for p in payloads)


def test_object_over_max_payload_fails_only_that_object(server):
    big = json.dumps([[1.0, 2.0]] * 200_000).encode()
    assert len(big) > 1024 * 1024
    outcome, outputs, _ = transform(
        server,
        {"big.json": big, "small.json": json.dumps(ROWS).encode()},
        content_type="application/json",
        max_payload_mb=1,
    )
    assert list(outputs) == ["out/small.json.out"]
    assert "more than MaxPayloadInMB (1 MB)" in outcome.failures["big.json"]


def test_handler_error_fails_object_with_model_status(server):
    outcome, outputs, _ = transform(
        server,
        {"bad.json": b'{"raise": "cannot score"}', "good.json": json.dumps(ROWS).encode()},
        content_type="application/json",
    )
    assert outcome.failures == {"bad.json": "The model answered 500: cannot score"}
    assert list(outputs) == ["out/good.json.out"]


def test_gzip_objects_are_decompressed():
    payloads = build_payloads(
        gzip.compress(jsonl(ROWS)), TransformSettings(split_type="Line", compression_type="Gzip")
    )
    assert payloads == [jsonl(ROWS).rstrip(b"\n")]
    with pytest.raises(ObjectFailure, match="not"):
        build_payloads(b"plain", TransformSettings(compression_type="Gzip"))


def test_concurrent_transforms_overlap_requests(server):
    inputs = {f"{n}.json": b'{"sleep": 0.4}' for n in range(4)}
    started = time.monotonic()
    outcome, _, _ = transform(
        server, inputs, content_type="application/json", max_concurrent_transforms=4
    )
    assert len(outcome.succeeded) == 4
    assert time.monotonic() - started < 1.2  # serially it would take 1.6 s


def test_stop_leaves_unfinished_objects_without_output(server):
    stop = threading.Event()
    outputs: dict[str, bytes] = {}

    def invoke(payload, headers):
        stop.set()  # the stop arrives while the first request is in flight
        return server.request("POST", "/invocations", payload, headers)

    objects = [InputObject(f"{n}.json", f"{n}.out") for n in range(5)]
    outcome = run_transform(
        objects,
        lambda key: json.dumps(ROWS).encode(),
        outputs.__setitem__,
        invoke,
        TransformSettings(content_type="application/json"),
        stop,
        lambda line: None,
    )
    assert outcome.stopped
    assert outputs == {}
