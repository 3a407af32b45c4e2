"""The runtime's one WSGI app and its services.

Every request first passes the gate (:mod:`local_sagemaker.gate`: Host, origin, body size and
SigV4 signature). ``GET /_local/health`` (unsigned) answers ``{"status": "ok", "families": [...]}``
(the SageMaker families by name: ``training``, ``hosting``, ...) once the runtime serves. Every
other request is routed by the service its signature's credential scope names, as AWS routes by
endpoint:

- ``sagemaker``: ``X-Amz-Target: SageMaker.<Op>`` is the SageMaker API
  (:mod:`local_sagemaker.sagemaker`); ``POST /endpoints/<name>/invocations`` is SageMaker Runtime
  (it signs as ``sagemaker`` too), delegated to the hosting family's ``invoke_endpoint``.
- ``logs``: CloudWatch Logs (:mod:`local_sagemaker.logs`).
- ``monitoring``: CloudWatch metrics of training jobs and multi-model endpoints
  (:mod:`local_sagemaker.cloudwatch`), JSON or Query protocol.
- ``sts`` and ``iam``: the runtime's caller (:mod:`local_sagemaker.identity`).
- ``s3``: S3 (moto, journaled: :mod:`local_sagemaker.s3`).
- any other service: an error in its protocol's form naming the service, never another
  service's answer.

One line per request is logged: method, path, operation, status, milliseconds.
"""

import json
import logging
import re
import time
from dataclasses import dataclass

from werkzeug.wrappers import Request, Response

from local_sagemaker.cloudwatch import MetricsService, metrics_operations
from local_sagemaker.config import RuntimeConfig
from local_sagemaker.credentials import data_dir_key_pair
from local_sagemaker.errors import AwsError, UnknownOperationException
from local_sagemaker.executor import Executor
from local_sagemaker.gate import SIGNED_SERVICE, Gate
from local_sagemaker.identity import Caller, StsService, iam_operations, sts_operations
from local_sagemaker.json_protocol import JsonProtocolApi, error_response
from local_sagemaker.logs import LogService
from local_sagemaker.query_protocol import FORM_CONTENT_TYPE, QueryProtocolApi, query_error_response
from local_sagemaker.s3 import S3Service
from local_sagemaker.sagemaker.backend import SageMakerBackend, build_backend
from local_sagemaker.sagemaker.responses import sagemaker_api
from local_sagemaker.store import RecordStore

log = logging.getLogger("local_sagemaker")
INVOCATIONS_PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/invocations$")
HEALTH_PATH = "/_local/health"
# What a request signed for another service is told (SigV4 signing names, as botocore has them).
SERVED_SERVICES = ("sagemaker", "logs", "monitoring", "sts", "iam", "s3")


def _route_label(method: str, path: str, target: str, content_type: str) -> str:
    """Which route serves a request: ``health``, ``api``, ``query`` (a Query protocol form),
    ``invocation`` or ``s3``; it decides the gate's body cap and refusal format."""
    if path == HEALTH_PATH and method == "GET":
        return "health"
    if target:
        return "api"
    if method == "POST" and content_type.startswith(FORM_CONTENT_TYPE):
        return "query"
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
        metrics = metrics_operations(MetricsService(self.backend.training, self.backend.hosting))
        self.metrics_json = JsonProtocolApi("cloudwatch", metrics, service_label="CloudWatch")
        caller = Caller(self.config.account, self.gate.key_pair.access_key_id)
        self.query_apis = {
            "monitoring": QueryProtocolApi("cloudwatch", metrics, service_label="CloudWatch"),
            "sts": QueryProtocolApi("sts", sts_operations(StsService(caller)), service_label="STS"),
            "iam": QueryProtocolApi("iam", iam_operations(caller), service_label="IAM"),
        }

    def app(self, environ, start_response):
        started = time.monotonic()
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        statuses = []

        def recording_start_response(status, headers, exc_info=None):
            statuses.append(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        route = _route_label(method, path, target, environ.get("CONTENT_TYPE", ""))
        try:
            protocol = {"s3": "s3", "query": "query"}.get(route, "json")
            refusal = self.gate.admit(environ, protocol, route)
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
        service = environ[SIGNED_SERVICE]
        if service == "s3":
            return self.s3.wsgi_app(environ, start_response)
        invocation = INVOCATIONS_PATH.match(path)
        if service == "sagemaker" and invocation and method == "POST" and not target:
            return self._invoke_endpoint(invocation["name"], Request(environ))(
                environ, start_response
            )
        status, headers, body = self._serve_api(environ, service, target)
        return Response(body, status=status, headers=headers)(environ, start_response)

    def _serve_api(self, environ, service: str, target: str) -> tuple[int, dict, bytes]:
        """A signed API request of ``service``: its answer, or an error naming what is unserved."""
        json_apis = {
            "sagemaker": self.sagemaker,
            "logs": self.logs_api,
            "monitoring": self.metrics_json,
        }
        body = Request(environ).get_data()
        if target and service in json_apis:
            api = json_apis[service]
            if api.handles(target):
                return api.handle(target, body)
            return error_response(
                UnknownOperationException(f"{target} is not an operation of the {service} service")
            )
        is_form = environ.get("CONTENT_TYPE", "").startswith(FORM_CONTENT_TYPE)
        if is_form and service in self.query_apis:
            return self.query_apis[service].handle(body)
        error = UnknownOperationException(
            f"The local SageMaker runtime does not serve this request of the {service!r} service "
            f"(it serves {', '.join(SERVED_SERVICES)}; SageMaker, Logs and CloudWatch over their "
            "JSON protocols, STS, IAM and CloudWatch over Query)"
        )
        return query_error_response(error) if is_form else error_response(error)

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
