"""The AWS Query protocol (``Action=<Operation>&...`` form posts, XML answers), as STS, IAM and
CloudWatch's older clients speak it: form -> validated request -> service method -> XML.

moto parses the form and writes the XML from botocore's service model, so neither the request
members nor the response shapes are written here. Errors are Query's ``<ErrorResponse>``.
"""

import datetime
import logging
import uuid
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from moto.core.parse import QueryParser
from moto.core.serialize import QuerySerializer
from moto.core.utils import get_service_model
from werkzeug.datastructures import MultiDict

from local_sagemaker.errors import AwsError, InternalFailure
from local_sagemaker.validation import validate_request

log = logging.getLogger(__name__)
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


class InvalidAction(AwsError):
    """Query services' answer for an action they do not have."""

    code = "InvalidAction"
    status = 400


def _epoch_seconds(value):
    """moto parses Query timestamps to naive UTC datetimes; the runtime's services take the
    JSON protocols' epoch seconds, so both protocols reach them alike."""
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=value.tzinfo or datetime.UTC).timestamp()
    if isinstance(value, dict):
        return {key: _epoch_seconds(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_epoch_seconds(item) for item in value]
    return value


def query_error_response(error: AwsError) -> tuple[int, dict, bytes]:
    """(status, headers, body) of a Query ``<ErrorResponse>``, as botocore reads it."""
    kind = "Receiver" if error.status >= 500 else "Sender"
    body = (
        f"<ErrorResponse><Error><Type>{kind}</Type><Code>{escape(error.code)}</Code>"
        f"<Message>{escape(error.message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )
    return error.status, {"Content-Type": "text/xml"}, body.encode()


class QueryProtocolApi:
    """Serves one Query service (``service_name`` as botocore names it) from the ``operations``
    table (operation name -> method taking the request dict and returning the response dict,
    timestamps as ``datetime``), as :class:`~local_sagemaker.json_protocol.JsonProtocolApi`
    does for JSON services."""

    def __init__(
        self,
        service_name: str,
        operations: Mapping[str, Callable[[dict], dict]],
        service_label: str,
    ):
        self.service_model = get_service_model(service_name)
        unknown = sorted(set(operations) - set(self.service_model.operation_names))
        if unknown:
            raise ValueError(f"not {service_label} operations: {', '.join(unknown)}")
        self.operations = operations
        self.service_label = service_label

    def handle(self, body: bytes) -> tuple[int, dict, bytes]:
        """Serve one form-encoded request; never raises for client errors."""
        values = MultiDict(
            parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        )
        operation = values.get("Action", "")
        try:
            if operation not in self.service_model.operation_names:
                raise InvalidAction(
                    f"The action {operation or '(none)'} is not valid for this web service "
                    f"({self.service_label})."
                )
            method = self.operations.get(operation)
            if method is None:
                raise InvalidAction(
                    f"{operation} is part of the {self.service_label} API but the local "
                    "SageMaker runtime does not implement it"
                )
            operation_model = self.service_model.operation_model(operation)
            form = {"values": values, "body": body, "headers": {}, "method": "POST",
                    "url_params": {}, "url_path": "/"}  # fmt: skip
            request = _epoch_seconds(QueryParser(operation_model).parse(form))
            if operation_model.input_shape is not None:
                validate_request(operation_model.input_shape, request)
            response = method(request)
        except AwsError as error:
            log.info("%s %s -> %s: %s", self.service_label, operation, error.code, error.message)
            return query_error_response(error)
        except Exception as error:
            log.exception("%s %s failed", self.service_label, operation)
            return query_error_response(InternalFailure(f"{type(error).__name__}: {error}"))
        serialized = QuerySerializer(operation_model).serialize(response)
        return serialized["status_code"], serialized["headers"], serialized["body"].encode()
