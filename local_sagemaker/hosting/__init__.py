"""Real-time endpoints and batch transform for the local runtime.

``model_server.py`` runs inside the "container" (stdlib only); ``process.py`` starts and stops
it; ``fleet.py`` maps endpoints to their running servers; ``invoke.py`` answers InvokeEndpoint.

Entry point for the runtime's HTTP server (``POST /endpoints/<name>/invocations``):
:func:`invoke_endpoint`.
"""

from __future__ import annotations

from collections.abc import Mapping

from local_sagemaker.hosting.invoke import answer_invocation


def invoke_endpoint(
    backend, endpoint_name: str, body: bytes, headers: Mapping[str, str]
) -> tuple[int, dict[str, str], bytes]:
    """Answer ``POST /endpoints/<endpoint_name>/invocations``: (HTTP status, headers, body).

    ``backend`` is the SageMakerBackend (it carries ``endpoint_fleet`` from the hosting mixin and
    ``config``); ``headers`` are the request's headers in any case. The result is the complete
    SageMaker Runtime response, errors included (ValidationError 400, ModelError 424), so the
    server only writes it out. Thread-safe.
    """
    return answer_invocation(
        backend.endpoint_fleet,
        endpoint_name,
        body,
        headers,
        backend.config.region,
        backend.config.account,
    )
