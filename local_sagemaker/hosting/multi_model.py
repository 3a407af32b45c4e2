"""Multi-model hosting: the models under one S3 prefix, loaded on first invocation, unloaded
least-recently-used under a memory budget, as a SageMaker multi-model endpoint does.

A model with ``PrimaryContainer.Mode: MultiModel`` names an S3 prefix in ``ModelDataUrl``.
InvokeEndpoint's ``TargetModel`` is the key of a ``.tar.gz`` relative to it. Each instance of such
a variant holds a :class:`ModelCache`:

- the first request for a model downloads ``<prefix><TargetModel>``, extracts it and starts a
  model server on it (``model_fn`` runs then); later requests reuse that server;
- a model put under the prefix while the endpoint serves is found by its first request: there is
  no list of models to update;
- after each load, while the loaded models' memory exceeds the budget, the least recently used
  model that no request is using is unloaded (its server stopped). Memory is the resident set
  size (RSS) of each model server's process and its children, read with psutil; the budget is
  the runtime setting ``multi_model_memory_mb`` (``LOCAL_SAGEMAKER_MULTI_MODEL_MEMORY_MB``), per
  instance, as SageMaker's is the instance's memory. A model in use is never unloaded, so a
  request is never dropped; the budget is then exceeded until the request ends, and the log says so.

Design: one model server process per loaded model, not one server importing several models.
- The handlers need no change: each server runs the toolkit chain on one model dir exactly as a
  single-model endpoint does, so warm requests cost what they cost there.
- Unloading really frees memory: stopping a process returns all of it, where dropping a torch
  model inside a long-lived process leaves the allocator's pages behind.
- A model's memory is measurable (its process tree's RSS), and a model that fails to load cannot
  harm the others.
- SageMaker's own multi-model server (MMS) works the same way: one backend worker process per model.
The price is a process start (interpreter and framework import) in each first invocation, which
``benchmarks/bench_hosting.py`` measures.

Requests for one instance's models are spread across instances by a stable hash of TargetModel,
so each model loads on one instance (SageMaker also routes a model to the instances that hold it).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import logging
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import psutil

from local_sagemaker.hosting.artifacts import ModelArtifactError, fetch_archive
from local_sagemaker.hosting.process import ModelServerProcess, ModelServerStartError
from local_sagemaker.s3 import S3Service, parse_s3_uri

log = logging.getLogger(__name__)


class TargetModelNotFoundError(LookupError):
    """No object ``<prefix><TargetModel>`` exists (SageMaker answers ValidationError)."""


class TargetModelLoadError(RuntimeError):
    """The target model's archive or its model_fn failed; the message names the model."""


@dataclass
class LoadedModel:
    target_model: str
    server: ModelServerProcess
    model_dir: Path
    in_flight: int = 0

    def memory_bytes(self) -> int:
        """RSS of the model server and its children (0 once they are gone)."""
        total = 0
        with contextlib.suppress(psutil.Error):
            leader = psutil.Process(self.server.identity["pid"])
            for process in [leader, *leader.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += process.memory_info().rss
        return total


@dataclass
class CacheCounts:
    """What the cache did so far (DescribeEndpoint and the CloudWatch metrics read it)."""

    loads: collections.Counter = field(default_factory=collections.Counter)
    unloads: int = 0
    cache_hits: int = 0
    # CloudWatch metric name -> [{"Timestamp": epoch s, "Value": v}], as SageMaker names them.
    points: dict[str, list[dict]] = field(default_factory=lambda: collections.defaultdict(list))

    def record(self, metric: str, value: float) -> None:
        self.points[metric].append({"Timestamp": time.time(), "Value": float(value)})


def variant_status(caches: list[ModelCache]) -> dict:
    """A multi-model variant's models over all its instances: what DescribeEndpoint adds."""
    loads: collections.Counter = collections.Counter()
    for cache in caches:
        loads.update(cache.counts.loads)
    return {
        "LoadedModels": sorted(model for cache in caches for model in cache.loaded_models()),
        "ModelLoadCount": sum(loads.values()),
        "ModelUnloadCount": sum(cache.counts.unloads for cache in caches),
        "ModelCacheHitCount": sum(cache.counts.cache_hits for cache in caches),
        "LoadCountsByModel": dict(sorted(loads.items())),
    }


def variant_metric_points(caches: list[ModelCache]) -> dict[str, list[dict]]:
    """CloudWatch metric name -> the points of a multi-model variant's instances, oldest first."""
    merged: dict[str, list[dict]] = collections.defaultdict(list)
    for cache in caches:
        for metric, points in list(cache.counts.points.items()):
            merged[metric] += points
    return {
        metric: sorted(points, key=lambda p: p["Timestamp"]) for metric, points in merged.items()
    }


def target_model_key(prefix_uri: str, target_model: str) -> tuple[str, str]:
    """(bucket, key) of a TargetModel under the ModelDataUrl prefix; TargetModelNotFoundError for
    a path that leaves the prefix."""
    relative = PurePosixPath(target_model)
    if relative.is_absolute() or ".." in relative.parts:
        raise TargetModelNotFoundError(
            f"TargetModel {target_model} must be a path relative to the model prefix {prefix_uri}"
        )
    bucket, prefix = parse_s3_uri(prefix_uri)
    return bucket, prefix + target_model


class ModelCache:
    """One instance's loaded models. Thread-safe; ``serving`` is the only way requests use it.

    ``start_server(target_model, model_dir)`` starts (not yet healthy) a model server;
    ``on_servers_changed()`` is called whenever servers start or stop (the caller records their
    identities for crash clean-up: :meth:`identities`).
    """

    def __init__(
        self,
        s3: S3Service,
        prefix_uri: str,
        work_dir: Path,
        memory_budget_bytes: int,
        start_server: Callable[[str, Path], ModelServerProcess],
        startup_timeout_s: float,
        on_servers_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self.s3 = s3
        self.prefix_uri = prefix_uri if prefix_uri.endswith("/") else prefix_uri + "/"
        self.work_dir = work_dir
        self.memory_budget_bytes = memory_budget_bytes
        self._start_server = start_server
        self._startup_timeout_s = startup_timeout_s
        self._on_servers_changed = on_servers_changed
        self._lock = threading.Lock()
        self._loaded: collections.OrderedDict[str, LoadedModel] = collections.OrderedDict()
        self._load_locks: dict[str, threading.Lock] = {}
        self._stopped = False
        self.counts = CacheCounts()

    @contextlib.contextmanager
    def serving(self, target_model: str) -> Iterator[ModelServerProcess]:
        """The server of ``target_model``, loaded first if need be, kept loaded for the block."""
        model = self._acquire(target_model)
        try:
            yield model.server
        finally:
            with self._lock:
                model.in_flight -= 1

    def loaded_models(self) -> list[str]:
        """The loaded models, least recently used first."""
        with self._lock:
            return list(self._loaded)

    def identities(self) -> list[dict]:
        with self._lock:
            return [model.server.identity for model in self._loaded.values()]

    def stop(self) -> None:
        """Unload every model (endpoint deleted or replaced; in-flight requests already drained)."""
        with self._lock:
            self._stopped = True
            models = list(self._loaded.values())
            self._loaded.clear()
        for model in models:
            self._unload(model)

    # -- loading and unloading ----------------------------------------------------------------

    def _acquire(self, target_model: str) -> LoadedModel:
        while True:
            with self._lock:
                if self._stopped:
                    raise TargetModelLoadError(f"The endpoint no longer serves {target_model}")
                model = self._loaded.get(target_model)
                if model is not None:
                    self._loaded.move_to_end(target_model)
                    model.in_flight += 1
                    self.counts.cache_hits += 1
                    self.counts.record("ModelCacheHit", 1)
                    return model
                load_lock = self._load_locks.setdefault(target_model, threading.Lock())
            with load_lock:  # concurrent first requests load the model once
                with self._lock:
                    if target_model in self._loaded:
                        continue
                model = self._load(target_model)
                with self._lock:
                    self._loaded[target_model] = model
                    model.in_flight = 1
                    self.counts.loads[target_model] += 1
                    self.counts.record("ModelCacheHit", 0)
                    self.counts.record("LoadedModelCount", len(self._loaded))
            self._on_servers_changed()
            self._unload_over_budget(keep=target_model)
            return model

    def _load(self, target_model: str) -> LoadedModel:
        bucket, key = target_model_key(self.prefix_uri, target_model)
        if not self.s3.exists(bucket, key):
            raise TargetModelNotFoundError(
                f"Failed to download model data (bucket: {bucket}, key: {key}): there is no "
                f"object for TargetModel {target_model} under {self.prefix_uri}"
            )
        started = time.monotonic()
        # A fresh folder per load: nothing left of an earlier load of this model can meet it.
        slot = (
            self.work_dir
            / f"{hashlib.sha256(target_model.encode()).hexdigest()[:16]}-{secrets.token_hex(4)}"
        )
        model_dir = slot / "model"
        model_dir.mkdir(parents=True, exist_ok=True)
        try:
            fetch_archive(self.s3, f"s3://{bucket}/{key}", model_dir, slot)
        except ModelArtifactError as error:
            shutil.rmtree(slot, ignore_errors=True)
            raise TargetModelLoadError(f"Could not load model {target_model}: {error}") from error
        downloaded = time.monotonic()
        try:
            server = self._start_server(target_model, model_dir)
        except OSError as error:
            shutil.rmtree(slot, ignore_errors=True)
            message = f"Could not start a server for {target_model}: {error}"
            raise TargetModelLoadError(message) from error
        try:
            server.wait_until_healthy(self._startup_timeout_s)
        except ModelServerStartError as error:
            server.stop()
            shutil.rmtree(slot, ignore_errors=True)
            raise TargetModelLoadError(f"Model {target_model} failed to load: {error}") from error
        loaded = time.monotonic()
        # SageMaker reports these in microseconds.
        self.counts.record("ModelDownloadingTime", (downloaded - started) * 1e6)
        self.counts.record("ModelLoadingTime", (loaded - downloaded) * 1e6)
        log.info("loaded model %s in %.2f s", target_model, loaded - started)
        return LoadedModel(target_model, server, model_dir)

    def _unload_over_budget(self, keep: str) -> None:
        """Unload least-recently-used idle models until the loaded ones fit the budget."""
        while True:
            with self._lock:
                models = list(self._loaded.values())
            used = sum(model.memory_bytes() for model in models)
            if used <= self.memory_budget_bytes:
                return
            with self._lock:
                idle = [
                    m for m in self._loaded.values() if m.target_model != keep and not m.in_flight
                ]
                if not idle:
                    log.warning(
                        "loaded models use %.0f MB, over the %.0f MB budget, and no other "
                        "loaded model is idle: none is unloaded now",
                        used / 2**20, self.memory_budget_bytes / 2**20,
                    )  # fmt: skip
                    return
                victim = idle[0]
                del self._loaded[victim.target_model]
                self.counts.unloads += 1
                self.counts.record("LoadedModelCount", len(self._loaded))
            log.info(
                "unloading model %s: loaded models use %.0f MB of a %.0f MB budget",
                victim.target_model, used / 2**20, self.memory_budget_bytes / 2**20,
            )  # fmt: skip
            self._unload(victim)
            self._on_servers_changed()

    def _unload(self, model: LoadedModel) -> None:
        started = time.monotonic()
        model.server.stop()
        shutil.rmtree(model.model_dir.parent, ignore_errors=True)
        self.counts.record("ModelUnloadingTime", (time.monotonic() - started) * 1e6)
