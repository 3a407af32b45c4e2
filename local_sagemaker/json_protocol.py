"""The AWS JSON 1.1 protocol (``X-Amz-Target: <Prefix>.<Operation>``), shared by SageMaker and
CloudWatch Logs: operation name -> validated request -> the method its dispatch table names ->
JSON response.

The table maps an operation name (``CreateTrainingJob``) to a callable taking the request dict
and returning the response dict. Timestamps may be returned as epoch-second floats (the wire form)
or as ``datetime`` objects. Any :class:`~local_sagemaker.errors.AwsError` becomes the wire error.
"""

import datetime
import json
import logging
from collections.abc import Callable, Mapping

import botocore.session

from local_sagemaker.errors import (
    AwsError,
    InternalFailure,
    SerializationException,
    UnknownOperationException,
    ValidationException,
)
from local_sagemaker.validation import validate_request

log = logging.getLogger(__name__)
CONTENT_TYPE = "application/x-amz-json-1.1"
# No SageMaker or CloudWatch Logs input shape nests anywhere near this deep.
MAX_JSON_DEPTH = 32


def _depth(value) -> int:
    """How deeply ``value`` (parsed JSON) nests containers, walked without recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in (
                item.values() if isinstance(item, dict) else item))  # fmt: skip
    return deepest


def parse_request_body(body: bytes) -> dict:
    """The JSON object of a request body; ValidationException naming what is wrong otherwise."""
    try:
        text = (body or b"{}").decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValidationException(f"The request body is not valid UTF-8: {error}") from None
    too_deep = f"The request body nests JSON deeper than {MAX_JSON_DEPTH} levels"
    try:
        request = json.loads(text)
    except RecursionError:  # thousands of levels: the parser itself gives up
        raise ValidationException(too_deep) from None
    if not isinstance(request, dict):
        raise SerializationException("The request body must be a JSON object")
    if _depth(request) > MAX_JSON_DEPTH:
        raise ValidationException(too_deep)
    return request


def _wire_default(value):
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable: {value!r}")


def error_response(error: AwsError) -> tuple[int, dict, bytes]:
    """(status, headers, body) of an AWS-shaped JSON error."""
    headers = {"Content-Type": CONTENT_TYPE, "x-amzn-ErrorType": error.code}
    return error.status, headers, json.dumps(error.to_json()).encode()


class JsonProtocolApi:
    """Dispatches JSON 1.1 requests of one service (``service_name`` as botocore names it) to
    the ``operations`` table (operation name -> method)."""

    def __init__(
        self,
        service_name: str,
        operations: Mapping[str, Callable[[dict], dict]],
        service_label: str,
    ):
        self.service_model = botocore.session.get_session().get_service_model(service_name)
        self.target_prefix = self.service_model.metadata["targetPrefix"]
        unknown = sorted(set(operations) - set(self.service_model.operation_names))
        if unknown:
            raise ValueError(f"not {service_label} operations: {', '.join(unknown)}")
        self.operations = operations
        self.service_label = service_label

    def handles(self, target: str) -> bool:
        return target.startswith(f"{self.target_prefix}.")

    def _method_for(self, operation: str):
        if operation not in self.service_model.operation_names:
            raise UnknownOperationException(
                f"{operation} is not an operation of the {self.service_label} API"
            )
        method = self.operations.get(operation)
        if method is None:
            raise UnknownOperationException(
                f"{operation} is part of the {self.service_label} API but the local SageMaker "
                "runtime does not implement it"
            )
        return method

    def call(self, operation: str, method, request: dict) -> dict:
        """Run the backend's method for a validated request (services may wrap this)."""
        return method(request)

    def handle(self, target: str, body: bytes) -> tuple[int, dict, bytes]:
        """Serve one request; returns (status, headers, body). Never raises for client errors."""
        operation = target.split(".", 1)[1]
        try:
            method = self._method_for(operation)
            request = parse_request_body(body)
            input_shape = self.service_model.operation_model(operation).input_shape
            validate_request(input_shape, request)
            response = self.call(operation, method, request)
        except AwsError as error:
            log.info("%s %s -> %s: %s", self.service_label, operation, error.code, error.message)
            return error_response(error)
        except json.JSONDecodeError as error:
            return error_response(SerializationException(f"request body is not JSON: {error}"))
        except Exception as error:
            log.exception("%s %s failed", self.service_label, operation)
            return error_response(InternalFailure(f"{type(error).__name__}: {error}"))
        payload = json.dumps(response, default=_wire_default).encode()
        return 200, {"Content-Type": CONTENT_TYPE}, payload
