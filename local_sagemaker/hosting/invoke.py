"""SageMaker Runtime's InvokeEndpoint, answered by the endpoint's live model server.

Wire behaviour (sagemaker-behaviour.md 5.5; botocore's sagemaker-runtime model, REST-JSON):
- 200: the container's body, its ``Content-Type``, ``x-Amzn-Invoked-Production-Variant`` and any
  ``X-Amzn-SageMaker-Custom-Attributes`` it returned.
- container 4xx/5xx: HTTP 424 ``ModelError`` with ``Message`` ("Received client error (400) from
  primary with message ..."), ``OriginalStatusCode``, ``OriginalMessage`` and ``LogStreamArn``.
- unknown endpoint, or one with no serving deployment (Creating, Failed): HTTP 400
  ``ValidationError`` "Endpoint <name> of account <acct> not found."
- a model server that died: HTTP 500 ``InternalFailure`` naming the variant and its log group
  (the endpoint is not healed: delete and re-create, or update, it).
- ``TargetVariant`` naming no variant, or an untargeted request when every weight is 0: 400
  ``ValidationError``.
- multi-model (``multi_model.py``): ``TargetModel`` on a single-model endpoint, or none on a
  multi-model one: 400 ``ValidationError`` with SageMaker's texts ("Endpoint <name> is not a
  multi-model endpoint and does not support target model header.", "Request <id> is missing a
  target model header."); a TargetModel with no object under the prefix: 400 ``ValidationError``
  naming its bucket and key; a model whose archive or model_fn fails: 424 ``ModelError`` whose
  message names the model and carries model_fn's error.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import uuid
from collections.abc import Iterator, Mapping

from local_sagemaker.hosting.fleet import (
    Deployment,
    EndpointFleet,
    NoWeightedVariantError,
    RunningVariant,
    UnknownVariantError,
)
from local_sagemaker.hosting.multi_model import TargetModelLoadError, TargetModelNotFoundError
from local_sagemaker.hosting.process import ModelServerProcess

# Request headers SageMaker passes on to the container; it strips every other one (5.5).
FORWARDED_HEADERS = (
    "content-type",
    "accept",
    "x-amzn-sagemaker-custom-attributes",
    "x-amzn-sagemaker-inference-id",
)
TARGET_VARIANT = "x-amzn-sagemaker-target-variant"
TARGET_MODEL = "x-amzn-sagemaker-target-model"
TIMEOUT_MESSAGE = (
    "Your invocation timed out while waiting for a response from container primary. Review the "
    "latency metrics for each container in Amazon CloudWatch, resolve the issue, and try again."
)

Response = tuple[int, dict[str, str], bytes]


def endpoint_log_group(endpoint_name: str) -> str:
    return f"/aws/sagemaker/Endpoints/{endpoint_name}"


def error_response(status: int, code: str, fields: dict) -> Response:
    """A REST-JSON error: botocore reads the code from ``x-amzn-ErrorType``, the rest from JSON."""
    headers = {
        "Content-Type": "application/json",
        "x-amzn-ErrorType": code,
        "x-amzn-RequestId": str(uuid.uuid4()),
    }
    return status, headers, json.dumps(fields).encode()


def validation_error(message: str) -> Response:
    return error_response(400, "ValidationError", {"message": message, "Message": message})


def model_error(
    endpoint_name: str, region: str, account: str, status: int | None, body: str
) -> Response:
    """The 424 ModelError SageMaker answers when the container fails (or times out)."""
    group = endpoint_log_group(endpoint_name)
    console = (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logEventViewer:group={group} in account {account}"
    )
    if status is None:
        message, status = TIMEOUT_MESSAGE, 0
    else:
        kind = "client" if status < 500 else "server"
        message = (
            f'Received {kind} error ({status}) from primary with message "{body}". '
            f"See {console} for more information."
        )
    fields = {
        "ErrorCode": "CLIENT_ERROR_FROM_MODEL" if status < 500 else "INTERNAL_FAILURE_FROM_MODEL",
        "LogStreamArn": f"arn:aws:logs:{region}:{account}:log-group:{group}",
        "Message": message,
        "message": message,
        "OriginalMessage": body,
        "OriginalStatusCode": status,
    }
    return error_response(424, "ModelError", fields)


class Refusal(Exception):
    """An invocation answered with an error before (or instead of) a model server's answer."""

    def __init__(self, response: Response) -> None:
        super().__init__(response[0])
        self.response = response


def choose_variant(deployment: Deployment, target_variant: str | None, endpoint_name: str):
    """The RunningVariant that answers (TargetVariant's, else one drawn by weight)."""
    try:
        return deployment.choose(target_variant)
    except UnknownVariantError as error:
        raise Refusal(
            validation_error(f"The variant {error} is not deployed on endpoint {endpoint_name}.")
        ) from None
    except NoWeightedVariantError:
        raise Refusal(
            validation_error(
                f"Every production variant of endpoint {endpoint_name} has weight 0: name one "
                "with TargetVariant, or give one a weight with UpdateEndpointWeightsAndCapacities."
            )
        ) from None


@contextlib.contextmanager
def server_for(
    variant: RunningVariant, target_model: str | None, endpoint_name: str, region, account
) -> Iterator[ModelServerProcess]:
    """The model server that answers: one of the variant's instances, or for a multi-model
    variant TargetModel's server (loaded first if need be, and kept loaded for the block)."""
    if not variant.multi_model:
        if target_model:
            raise Refusal(
                validation_error(
                    f"Endpoint {endpoint_name} is not a multi-model endpoint and does not support "
                    "target model header."
                )
            )
        yield variant.pick_server()
        return
    if not target_model:
        raise Refusal(validation_error(f"Request {uuid.uuid4()} is missing a target model header."))
    try:
        with variant.cache_for(target_model).serving(target_model) as server:
            yield server
    except TargetModelNotFoundError as error:
        raise Refusal(validation_error(str(error))) from None
    except TargetModelLoadError as error:
        raise Refusal(model_error(endpoint_name, region, account, 500, str(error))) from None


def exchange(
    server: ModelServerProcess,
    deployment: Deployment,
    variant_name: str,
    body: bytes,
    request_headers: dict[str, str],
    endpoint_name: str,
) -> tuple[int, dict[str, str], bytes]:
    """POST /invocations to ``server``, counted on ``deployment`` (the rollback alarms read it).
    Raises TimeoutError, or Refusal (InternalFailure) when the server cannot be reached."""
    forwarded = {k: v for k, v in request_headers.items() if k in FORWARDED_HEADERS}
    try:
        status, container_headers, payload = server.request("POST", "/invocations", body, forwarded)
    except TimeoutError:
        deployment.count_invocation(server_error=True)
        raise
    except (OSError, http.client.HTTPException) as error:  # the server process is gone
        deployment.count_invocation(server_error=True)
        message = (
            f"The model server of variant {variant_name} could not be reached ({error}); "
            f"see the log group {endpoint_log_group(endpoint_name)}."
        )
        raise Refusal(
            error_response(500, "InternalFailure", {"message": message, "Message": message})
        ) from None
    deployment.count_invocation(server_error=status >= 500)
    return status, container_headers, payload


def answer_invocation(
    fleet: EndpointFleet,
    endpoint_name: str,
    body: bytes,
    headers: Mapping[str, str],
    region: str,
    account: str,
) -> Response:
    """Run one InvokeEndpoint request; returns (HTTP status, response headers, response body).

    ``headers`` are the client's request headers (any case). Safe to call from many threads; a
    request that started on a deployment is answered by it even if UpdateEndpoint swaps it out.
    Each answer from a model server is counted on its deployment (the rollback alarms read it).
    """
    request_headers = {name.lower(): value for name, value in headers.items()}
    try:
        with fleet.serving(endpoint_name) as deployment:
            if deployment is None:
                raise Refusal(
                    validation_error(f"Endpoint {endpoint_name} of account {account} not found.")
                )
            variant = choose_variant(deployment, request_headers.get(TARGET_VARIANT), endpoint_name)
            target_model = request_headers.get(TARGET_MODEL)
            with server_for(variant, target_model, endpoint_name, region, account) as server:
                status, container_headers, payload = exchange(
                    server, deployment, variant.name, body, request_headers, endpoint_name
                )
    except Refusal as refusal:
        return refusal.response
    except TimeoutError:
        return model_error(endpoint_name, region, account, None, "")
    if status >= 400:
        text = payload.decode("utf-8", errors="replace")
        return model_error(endpoint_name, region, account, status, text)
    response_headers = {
        "Content-Type": container_headers.get("content-type", "application/octet-stream"),
        "x-Amzn-Invoked-Production-Variant": variant.name,
        "x-amzn-RequestId": str(uuid.uuid4()),
    }
    if "x-amzn-sagemaker-custom-attributes" in container_headers:
        response_headers["X-Amzn-SageMaker-Custom-Attributes"] = container_headers[
            "x-amzn-sagemaker-custom-attributes"
        ]
    return status, response_headers, payload
