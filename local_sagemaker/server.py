"""The runtime's one WSGI app and its services.

Every request first passes the gate (:mod:`local_sagemaker.gate`: Host, origin, body size and
SigV4 signature). Routes, in order:

- ``GET /_local/health``: ``{"status": "ok", "families": [...]}`` once the runtime serves
  (the SageMaker families by name: ``training``, ``hosting``, ...).
- ``X-Amz-Target: SageMaker.<Op>``: the SageMaker API (:mod:`local_sagemaker.sagemaker`).
- ``X-Amz-Target: Logs_20140328.<Op>``: CloudWatch Logs (:mod:`local_sagemaker.logs`).
- any other ``X-Amz-Target``: ``UnknownOperationException``.
- ``POST /endpoints/<name>/invocations``: SageMaker Runtime, delegated to the hosting family's
  ``invoke_endpoint(name, request)``.
- anything else: S3 (moto, journaled: :mod:`local_sagemaker.s3`).

One line per request is logged: method, path, operation, status, milliseconds.
"""

import json
import logging
import re
import time
from dataclasses import dataclass

from werkzeug.wrappers import Request, Response

from local_sagemaker.config import RuntimeConfig
from local_sagemaker.credentials import data_dir_key_pair
from local_sagemaker.errors import AwsError, UnknownOperationException
from local_sagemaker.executor import Executor
from local_sagemaker.gate import Gate
from local_sagemaker.json_protocol import JsonProtocolApi, error_response
from local_sagemaker.logs import LogService
from local_sagemaker.s3 import S3Service
from local_sagemaker.sagemaker.backend import SageMakerBackend, build_backend
from local_sagemaker.sagemaker.responses import sagemaker_api
from local_sagemaker.store import RecordStore

log = logging.getLogger("local_sagemaker")
INVOCATIONS_PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/invocations$")
HEALTH_PATH = "/_local/health"


def _route_label(method: str, path: str, target: str) -> str:
    """Which route serves a request: ``health``, ``api``, ``invocation`` or ``s3``."""
    if path == HEALTH_PATH and method == "GET":
        return "health"
    if target:
        return "api"
    return "invocation" if INVOCATIONS_PATH.match(path) and method == "POST" else "s3"


@dataclass
class Runtime:
    """Every service of one runtime; ``app`` is the WSGI application serving them."""

    config: RuntimeConfig
    store: RecordStore
    s3: S3Service
    logs: LogService
    executor: Executor
    backend: SageMakerBackend
    gate: Gate

    def __post_init__(self):
        self.sagemaker = sagemaker_api(self.backend)
        self.logs_api = JsonProtocolApi(
            "logs", logs_operations(self.logs), service_label="CloudWatch Logs"
        )

    def app(self, environ, start_response):
        started = time.monotonic()
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        statuses = []

        def recording_start_response(status, headers, exc_info=None):
            statuses.append(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        route = _route_label(method, path, target)
        try:
            refusal = self.gate.admit(environ, "s3" if route == "s3" else "json", route)
            if refusal is not None:
                return refusal(environ, recording_start_response)
            return self._route(environ, recording_start_response, method, path, target)
        finally:
            elapsed_ms = (time.monotonic() - started) * 1000
            operation = target or {"invocation": "InvokeEndpoint"}.get(route, route)
            log.info(
                "%s %s %s -> %s (%.0f ms)",
                method,
                path.encode("latin-1").decode("utf-8", errors="replace"),
                operation,
                statuses[0] if statuses else "?",
                elapsed_ms,
            )

    def _route(self, environ, start_response, method, path, target):
        if path == HEALTH_PATH and method == "GET":
            families = list(self.backend.families)
            return Response(
                json.dumps({"status": "ok", "families": families}), mimetype="application/json"
            )(environ, start_response)
        for api in (self.sagemaker, self.logs_api):
            if api.handles(target):
                status, headers, body = api.handle(target, Request(environ).get_data())
                return Response(body, status=status, headers=headers)(environ, start_response)
        if target:
            status, headers, body = error_response(
                UnknownOperationException(f"{target} is not an operation this runtime serves")
            )
            return Response(body, status=status, headers=headers)(environ, start_response)
        invocation = INVOCATIONS_PATH.match(path)
        if invocation and method == "POST":
            return self._invoke_endpoint(invocation["name"], Request(environ))(
                environ, start_response
            )
        return self.s3.wsgi_app(environ, start_response)

    def _invoke_endpoint(self, endpoint_name: str, request: Request) -> Response:
        try:
            return self.backend.hosting.invoke_endpoint(endpoint_name, request)
        except AwsError as error:
            status, headers, body = error_response(error)
            return Response(body, status=status, headers=headers)

    def shutdown(self) -> None:
        self.backend.shutdown()


def logs_operations(logs: LogService) -> dict:
    """The CloudWatch Logs operations the runtime serves: operation -> LogService method."""
    return {
        "CreateLogGroup": logs.create_log_group,
        "CreateLogStream": logs.create_log_stream,
        "DescribeLogGroups": logs.describe_log_groups,
        "DescribeLogStreams": logs.describe_log_streams,
        "GetLogEvents": logs.get_log_events,
        "FilterLogEvents": logs.filter_log_events,
        "PutLogEvents": logs.put_log_events,
    }


def build_runtime(config: RuntimeConfig) -> Runtime:
    """Create (or reopen) the runtime's state in ``config.data_dir`` and compose its services."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = RecordStore(config.data_dir)
    s3 = S3Service(config.data_dir, config.region, config.account)
    logs = LogService(config.data_dir, config.region, config.account)
    executor = Executor(config, s3, logs)
    backend = build_backend(config, store, s3, logs, executor)
    gate = Gate(
        key_pair=config.key_pair or data_dir_key_pair(config.data_dir),
        allowed_hosts=config.allowed_host_names(),
        limits=config.limits,
    )
    return Runtime(config, store, s3, logs, executor, backend, gate)
