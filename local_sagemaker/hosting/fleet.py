"""Which model servers answer for which endpoint, and swapping them without dropping requests.

A :class:`Deployment` is what one endpoint config runs: per production variant, one model server
per instance, or for a multi-model variant one ``multi_model.ModelCache`` per instance, whose
servers start on demand.
The :class:`EndpointFleet` maps endpoint names to their live deployment, and during a blue/green
update (``deployment.py``) to the new one too, with its share of invocations. UpdateEndpoint
builds the new deployment first, shifts traffic to it, installs it, then drains and stops the old
one, so a request either reaches the old servers (which stay up until it is answered) or the new
ones.
"""

from __future__ import annotations

import random
import shutil
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from local_sagemaker.executor.processes import each_started
from local_sagemaker.hosting.multi_model import ModelCache
from local_sagemaker.hosting.process import ModelServerProcess, ModelServerStartError

DRAIN_TIMEOUT_S = 60.0


@dataclass
class VariantSpec:
    """What to launch for one production variant (model dir already extracted): one model
    server per instance id, all loading the same model dir."""

    name: str
    weight: float
    python: str
    model_dir: Path
    environment: dict[str, str]
    instance_ids: list[str]
    # Multi-model variants: one cache per instance id, and no server started up front.
    caches: list[ModelCache] = field(default_factory=list)


@dataclass
class RunningVariant:
    """A variant's instances. ``weight`` is its CurrentWeight: UpdateEndpointWeightsAndCapacities
    replaces it while requests are routed (a float assignment, atomic for readers)."""

    name: str
    weight: float
    servers: list[ModelServerProcess]
    caches: list[ModelCache] = field(default_factory=list)

    @property
    def multi_model(self) -> bool:
        return bool(self.caches)

    def pick_server(self) -> ModelServerProcess:
        """One of the variant's instances, drawn at random (spreads load across instances)."""
        return random.choice(self.servers)

    def cache_for(self, target_model: str) -> ModelCache:
        """The instance that holds ``target_model``: the same one for every request for it."""
        return self.caches[zlib.crc32(target_model.encode()) % len(self.caches)]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        for cache in self.caches:
            cache.stop()


class UnknownVariantError(LookupError):
    """A TargetVariant header named a variant the endpoint does not have."""


class NoWeightedVariantError(LookupError):
    """An untargeted request reached an endpoint whose variants all have weight 0."""


class Deployment:
    """The running variants of one endpoint config; thread-safe to route through."""

    def __init__(
        self, deployment_id: str, variants: list[RunningVariant], work_dir: Path | None = None
    ) -> None:
        self.deployment_id = deployment_id
        self.variants = variants
        self.work_dir = work_dir
        self._in_flight = 0
        self._retired = False
        self._idle = threading.Condition()
        self._invocations = 0
        self._server_errors = 0

    def choose(self, target_variant: str | None) -> RunningVariant:
        """The variant named by ``target_variant``, else one drawn by CurrentWeight: a variant
        of weight 0 gets only the requests that name it."""
        if target_variant:
            for variant in self.variants:
                if variant.name == target_variant:
                    return variant
            raise UnknownVariantError(target_variant)
        weights = [variant.weight for variant in self.variants]
        if sum(weights) <= 0:
            raise NoWeightedVariantError()
        return random.choices(self.variants, weights=weights)[0]

    def set_weights(self, weights: dict[str, float]) -> None:
        """Give the named variants new CurrentWeights (the others keep theirs)."""
        for variant in self.variants:
            variant.weight = weights.get(variant.name, variant.weight)

    def enter_request(self) -> bool:
        """Count a request as in flight (``drain_and_stop`` waits for it); False once retired."""
        with self._idle:
            if self._retired:
                return False
            self._in_flight += 1
            return True

    def leave_request(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def count_invocation(self, server_error: bool) -> None:
        """Count one answered invocation; ``server_error``: a 5xx (the container's, a timeout or
        an unreachable server), as CloudWatch's Invocation5XXErrors counts them."""
        with self._idle:
            self._invocations += 1
            self._server_errors += server_error

    def counts(self) -> tuple[int, int]:
        """(Invocations, Invocation5XXErrors) answered by this deployment so far."""
        with self._idle:
            return self._invocations, self._server_errors

    def drain_and_stop(self, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        """Refuse new requests, wait (bounded) for in-flight ones, stop every variant's server,
        remove work_dir."""
        with self._idle:
            self._retired = True
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout_s)
        for variant in self.variants:
            variant.stop()
        if self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)


def launch_deployment(
    deployment_id: str,
    specs: list[VariantSpec],
    log_line: Callable[[str, str, str], None],
    startup_timeout_s: float,
    work_dir: Path | None = None,
    on_spawned: Callable[[list[dict]], None] = lambda identities: None,
) -> Deployment:
    """Start every instance's server in parallel and wait until all answer /ping.

    ``log_line(variant_name, instance_id, line)`` receives each output line; ``on_spawned``
    receives the identities of the servers started so far each time one starts, before its
    output is read, so a caller can record them for crash clean-up. If any server fails to
    start, all are stopped and ModelServerStartError names the variant and its output.
    ``work_dir`` (the variants' model dirs) is removed when the deployment is stopped.
    """
    launched: list[tuple[VariantSpec, ModelServerProcess]] = []
    spawned = each_started(on_spawned)
    for spec in specs:
        for instance_id in [] if spec.caches else spec.instance_ids:
            try:
                server = ModelServerProcess(
                    spec.python,
                    spec.model_dir,
                    spec.environment,
                    lambda line, spec=spec, iid=instance_id: log_line(spec.name, iid, line),
                    on_started=spawned,
                )
            except OSError as error:  # e.g. the image's Python does not exist
                for _, started in launched:
                    started.stop()
                raise ModelServerStartError(
                    f"variant {spec.name}: could not start {spec.python}: {error}"
                ) from error
            launched.append((spec, server))

    def wait(spec: VariantSpec, server: ModelServerProcess) -> str | None:
        try:
            server.wait_until_healthy(startup_timeout_s)
        except ModelServerStartError as error:
            return f"variant {spec.name}: {error}"
        return None

    with ThreadPoolExecutor(max_workers=max(1, len(launched))) as pool:
        failures = [f for f in pool.map(lambda pair: wait(*pair), launched) if f]
    if failures:
        for _, server in launched:
            server.stop()
        raise ModelServerStartError("; ".join(failures))
    variants = [
        RunningVariant(
            spec.name, spec.weight, [s for owner, s in launched if owner is spec], spec.caches
        )
        for spec in specs
    ]
    return Deployment(deployment_id, variants, work_dir)


class EndpointFleet:
    """Endpoint name -> its live Deployment. All methods are thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deployments: dict[str, Deployment] = {}
        # Endpoint name -> (the deployment an update shifts traffic to, its share of requests).
        self._shifting: dict[str, tuple[Deployment, float]] = {}

    def current(self, endpoint_name: str) -> Deployment | None:
        with self._lock:
            return self._deployments.get(endpoint_name)

    def install(self, endpoint_name: str, deployment: Deployment) -> Deployment | None:
        """Make ``deployment`` answer all of the endpoint's requests; returns the one it replaced
        (if any)."""
        with self._lock:
            previous = self._deployments.get(endpoint_name)
            self._deployments[endpoint_name] = deployment
            self._shifting.pop(endpoint_name, None)
            return previous

    def shift(self, endpoint_name: str, deployment: Deployment, share: float) -> None:
        """Send ``share`` (0 to 1) of the endpoint's requests to ``deployment``, the rest to its
        live one; a share of 0 sends them all back."""
        with self._lock:
            if share > 0:
                self._shifting[endpoint_name] = (deployment, share)
            else:
                self._shifting.pop(endpoint_name, None)

    def _route(self, endpoint_name: str) -> Deployment | None:
        with self._lock:
            shifting = self._shifting.get(endpoint_name)
            if shifting and random.random() < shifting[1]:
                return shifting[0]
            return self._deployments.get(endpoint_name)

    @contextmanager
    def serving(self, endpoint_name: str) -> Iterator[Deployment | None]:
        """The deployment that answers this request (the live one, or by its share the one an
        update shifts traffic to), counted in flight for the ``with`` block (None when the
        endpoint has none). A deployment retired between the lookup and the count (an update's
        swap or rollback) is passed over for the one that replaced it, so no request is
        dropped."""
        while True:
            deployment = self._route(endpoint_name)
            if deployment is None:
                yield None
                return
            if deployment.enter_request():
                break
        try:
            yield deployment
        finally:
            deployment.leave_request()

    def remove(self, endpoint_name: str) -> Deployment | None:
        """Forget the endpoint (DeleteEndpoint); returns its live deployment. An update's new
        deployment gets no more requests; the update stops it."""
        with self._lock:
            self._shifting.pop(endpoint_name, None)
            return self._deployments.pop(endpoint_name, None)

    def stop_all(self) -> None:
        """Stop every endpoint's servers (runtime shutdown), giving in-flight requests 5 s."""
        with self._lock:
            deployments = list(self._deployments.values())
            self._deployments.clear()
        for deployment in deployments:
            deployment.drain_and_stop(timeout_s=5.0)
