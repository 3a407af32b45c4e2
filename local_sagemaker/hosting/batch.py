"""Batch transform over input objects: split, batch, invoke the model server, assemble, write.

SageMaker's semantics (sagemaker-behaviour.md 5.6):
- SplitType ``None`` sends each object whole; ``Line`` splits it into lines (records).
- BatchStrategy ``SingleRecord`` sends one record per request; ``MultiRecord`` packs as many
  records as fit in MaxPayloadInMB, never spanning two objects. MaxPayloadInMB 0 means no limit.
- A payload (or single record) over MaxPayloadInMB fails that object with a clear reason.
- Each object's responses, in input order, are joined (AssembleWith ``Line`` adds a newline after
  each) and written as that object's output. A failed object gets no output; the others go on.
- Up to MaxConcurrentTransforms requests are in flight at once, across objects.
- Connection failures and timeouts are retried up to InvocationsMaxRetries times; an HTTP error
  from the handlers is the model's answer and is not retried.
"""

from __future__ import annotations

import gzip
import http.client
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

MEGABYTE = 1024 * 1024


class ObjectFailure(Exception):
    """One input object could not be transformed; the message says why."""


@dataclass(frozen=True)
class TransformSettings:
    content_type: str | None = None
    accept: str | None = None
    split_type: str = "None"
    compression_type: str = "None"
    batch_strategy: str = "MultiRecord"
    max_payload_mb: int = 6
    max_concurrent_transforms: int = 1
    assemble_with: str = "None"
    max_retries: int = 3

    def request_headers(self) -> dict[str, str]:
        headers = {}
        if self.content_type:
            headers["Content-Type"] = self.content_type
        if self.accept:
            headers["Accept"] = self.accept
        return headers


@dataclass
class TransformOutcome:
    """What happened to the objects; ``failures`` maps an input key to its reason."""

    succeeded: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    stopped: bool = False


def split_records(data: bytes, split_type: str) -> list[bytes]:
    """The records of one object: the whole object, or its non-empty lines without terminators."""
    if split_type == "None":
        return [data]
    return [line for line in data.splitlines() if line.strip()]


def build_payloads(data: bytes, settings: TransformSettings) -> list[bytes]:
    """Request bodies for one object, in record order; raises ObjectFailure when one is too big."""
    if settings.compression_type == "Gzip":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise ObjectFailure(f"CompressionType is Gzip but the object is not: {error}") from None
    limit = settings.max_payload_mb * MEGABYTE or None
    records = split_records(data, settings.split_type)
    for number, record in enumerate(records, start=1):
        if limit is not None and len(record) > limit:
            what = "The object" if settings.split_type == "None" else f"Record {number}"
            raise ObjectFailure(
                f"{what} is {len(record)} bytes, more than MaxPayloadInMB "
                f"({settings.max_payload_mb} MB); split the input (SplitType=Line) or raise "
                "MaxPayloadInMB"
            )
    if settings.split_type == "None" or settings.batch_strategy == "SingleRecord":
        return records
    return pack_records(records, limit)


def pack_records(records: list[bytes], limit: int | None) -> list[bytes]:
    """MultiRecord: newline-joined mini-batches, each at most ``limit`` bytes."""
    payloads: list[bytes] = []
    batch: list[bytes] = []
    size = 0
    for record in records:
        added = len(record) + (1 if batch else 0)
        if batch and limit is not None and size + added > limit:
            payloads.append(b"\n".join(batch))
            batch, size, added = [], 0, len(record)
        batch.append(record)
        size += added
    if batch:
        payloads.append(b"\n".join(batch))
    return payloads


def assemble(responses: list[bytes], assemble_with: str) -> bytes:
    if assemble_with != "Line":
        return b"".join(responses)
    return b"".join(r if r.endswith(b"\n") else r + b"\n" for r in responses)


Invoke = Callable[[bytes, dict[str, str]], tuple[int, dict[str, str], bytes]]


def invoke_with_retries(invoke: Invoke, payload: bytes, settings: TransformSettings) -> bytes:
    """POST one payload; returns the response body or raises ObjectFailure."""
    for attempt in range(settings.max_retries + 1):
        try:
            status, _, body = invoke(payload, settings.request_headers())
            break
        except (OSError, http.client.HTTPException) as error:  # the container may recover
            if attempt == settings.max_retries:
                raise ObjectFailure(
                    f"No response from the model server after {attempt + 1} attempts: {error}"
                ) from None
    if status >= 400:
        first_line = body.decode("utf-8", errors="replace").strip().splitlines()[:1]
        raise ObjectFailure(f"The model answered {status}: {''.join(first_line)}")
    return body


@dataclass
class InputObject:
    key: str
    output_key: str


class _PendingObject:
    def __init__(self, source: InputObject, futures: list[Future] | None, error: str | None):
        self.source = source
        self.futures = futures or []
        self.error = error


def run_transform(
    objects: Iterable[InputObject],
    read: Callable[[str], bytes],
    write: Callable[[str, bytes], None],
    invoke: Invoke,
    settings: TransformSettings,
    stop: threading.Event,
    log: Callable[[str], None],
) -> TransformOutcome:
    """Transform every object; ``read``/``write`` move bytes by key, ``invoke`` posts one payload.

    Objects are read ahead while earlier ones are being answered, bounded so that at most about
    twice MaxConcurrentTransforms requests wait in the queue. Setting ``stop`` cancels what has
    not started; objects not finished by then get no output and ``outcome.stopped`` is True.
    """
    outcome = TransformOutcome()
    pending: deque[_PendingObject] = deque()
    workers = max(1, settings.max_concurrent_transforms)

    def finish_oldest() -> None:
        item = pending.popleft()
        if stop.is_set():
            for future in item.futures:
                future.cancel()
            return
        try:
            if item.error is not None:
                raise ObjectFailure(item.error)
            output = assemble([future.result() for future in item.futures], settings.assemble_with)
            write(item.source.output_key, output)
        except ObjectFailure as failure:
            outcome.failures[item.source.key] = str(failure)
            log(f"Failed to transform {item.source.key}: {failure}")
            return
        outcome.succeeded.append(item.source.key)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for source in objects:
            if stop.is_set():
                break
            try:
                payloads = build_payloads(read(source.key), settings)
            except ObjectFailure as failure:
                pending.append(_PendingObject(source, None, str(failure)))
            else:
                futures = [
                    pool.submit(invoke_with_retries, invoke, payload, settings)
                    for payload in payloads
                ]
                pending.append(_PendingObject(source, futures, None))
            while sum(len(item.futures) for item in pending) > 2 * workers:
                finish_oldest()
        while pending:
            finish_oldest()
    outcome.stopped = stop.is_set()
    return outcome
