"""The runtime's front door: which requests get in at all, before any service sees them.

In order, a request is refused when:

1. its ``Host`` is not a loopback name or address or a host given at start-up (DNS rebinding);
2. it comes from a browser page of another origin: any ``OPTIONS`` preflight (CORS is off), a
   ``Sec-Fetch-Site`` other than ``same-origin``/``none``, or an ``Origin`` that is not the
   runtime's own;
3. its body is larger than the route's cap (:class:`RequestLimits`);
4. it is not signed with the runtime's key pair (:mod:`local_sagemaker.signatures`); an S3
   browser form POST must carry a policy signed with it instead.

An admitted request carries its signing service in ``environ[SIGNED_SERVICE]`` for routing.

The only unsigned route is ``GET /_local/health``, which changes nothing and tells nothing but
that the runtime serves. Refusals use each service's own error format: S3's XML, Query's
``<ErrorResponse>`` for form posts (STS, IAM, CloudWatch's older clients), or JSON
``__type``/``message`` for SageMaker, SageMaker Runtime, CloudWatch Logs and metrics.
"""

import io
import ipaddress
import logging
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from werkzeug.formparser import parse_form_data
from werkzeug.wrappers import Response

from local_sagemaker.credentials import KeyPair
from local_sagemaker.errors import AwsError
from local_sagemaker.json_protocol import error_response
from local_sagemaker.query_protocol import query_error_response
from local_sagemaker.signatures import (
    ArrivedRequest,
    AuthFailure,
    content_length_range,
    verify_post_policy,
    verify_request,
)

log = logging.getLogger(__name__)
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
TRUSTED_FETCH_SITES = {"same-origin", "none"}
MIB = 1024 * 1024
# The WSGI environ key where an admitted request's signing service (its credential scope's
# service name: sagemaker, s3, logs, sts, ...) is left for routing.
SIGNED_SERVICE = "local_sagemaker.signed_service"

# reason -> (code, HTTP status, message) in JSON 1.1 services, as AWS's JSON services answer.
JSON_REFUSALS = {
    "missing": ("MissingAuthenticationToken", 403, "Missing Authentication Token"),
    "unsupported": ("IncompleteSignature", 403,
                    "The request signature does not conform to AWS standards: only "
                    "AWS4-HMAC-SHA256 (Signature Version 4) is accepted."),
    "malformed": ("IncompleteSignature", 403, "The request signature does not conform to AWS "
                                              "standards."),
    "unknown_key": ("UnrecognizedClientException", 403,
                    "The security token included in the request is invalid."),
    "mismatch": ("InvalidSignatureException", 403,
                 "The request signature we calculated does not match the signature you provided. "
                 "Check your AWS Secret Access Key and signing method. Consult the service "
                 "documentation for details."),
    "skewed": ("InvalidSignatureException", 400, "Signature expired."),
    "expired": ("InvalidSignatureException", 403, "Request has expired."),
    "payload_mismatch": ("InvalidSignatureException", 403,
                         "The request body does not match its signed hash."),
    "host": ("AccessDeniedException", 403, "The Host header is not one this runtime serves."),
    "origin": ("AccessDeniedException", 403, "Cross-origin requests are refused."),
    "too_large": ("RequestEntityTooLargeException", 413, "The request entity is too large."),
}  # fmt: skip
# reason -> (code, HTTP status, message) as S3 sends them.
S3_REFUSALS = {
    "missing": ("AccessDenied", 403, "Access Denied"),
    "unsupported": ("InvalidRequest", 400, "The authorization mechanism you have provided is not "
                                          "supported. Please use AWS4-HMAC-SHA256."),
    "malformed": ("AuthorizationHeaderMalformed", 400, "The authorization header is malformed."),
    "unknown_key": ("InvalidAccessKeyId", 403,
                    "The AWS Access Key Id you provided does not exist in our records."),
    "mismatch": ("SignatureDoesNotMatch", 403,
                 "The request signature we calculated does not match the signature you provided. "
                 "Check your key and signing method."),
    "skewed": ("RequestTimeTooSkewed", 403,
               "The difference between the request time and the current time is too large."),
    "expired": ("AccessDenied", 403, "Request has expired"),
    "payload_mismatch": ("XAmzContentSHA256Mismatch", 400,
                         "The provided 'x-amz-content-sha256' header does not match what was "
                         "computed."),
    "policy": ("AccessDenied", 403, "Invalid according to Policy"),
    "host": ("AccessDenied", 403, "The Host header is not one this runtime serves."),
    "origin": ("AccessDenied", 403, "Cross-origin requests are refused."),
    "too_large": ("EntityTooLarge", 400,
                  "Your proposed upload exceeds the maximum allowed size."),
}  # fmt: skip


@dataclass(frozen=True)
class RequestLimits:
    """Largest request body each route takes, in bytes."""

    # SageMaker and CloudWatch Logs requests are small; PutLogEvents' own cap is 1 MiB.
    api_bytes: int = 4 * MIB
    # InvokeEndpoint's payload limit on AWS is 6 MB.
    invocation_bytes: int = 6 * MIB
    # One S3 request (boto3 and the AWS CLI switch to multipart parts of 8 MiB above 8 MiB).
    s3_bytes: int = 256 * MIB
    # Seconds a connection may stay silent mid-request before it is dropped.
    socket_timeout_seconds: float = 30.0


class Refusal(Exception):
    """A request the gate does not let in."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail


def _is_loopback(hostname: str) -> bool:
    if hostname in LOOPBACK_NAMES or hostname.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _hostname(host_header: str) -> str:
    """``name:port`` or ``[v6]:port`` -> the lower-cased name or address."""
    return (urlsplit(f"//{host_header}").hostname or "").lower()


@dataclass
class Gate:
    """Admits a request (returns its body, put back for the services) or refuses it."""

    key_pair: KeyPair
    allowed_hosts: frozenset[str] = frozenset()
    limits: RequestLimits = RequestLimits()

    def admit(self, environ, protocol: str, route: str) -> Response | None:
        """None when the request may proceed; otherwise the refusal to send.

        ``protocol`` is ``"json"``, ``"query"`` or ``"s3"`` (the error format); ``route`` is
        ``"health"``, ``"api"``, ``"query"``, ``"invocation"`` or ``"s3"`` (the body cap)."""
        try:
            self._check_host(environ)
            self._check_origin(environ)
            if route == "health":
                return None
            body = self._read_body(environ, route)
            self._check_signature(environ, body, protocol)
        except Refusal as refusal:
            return self._refusal_response(environ, protocol, refusal.reason, refusal.detail)
        except AuthFailure as failure:
            return self._refusal_response(environ, protocol, failure.reason, failure.detail)
        return None

    def _check_host(self, environ) -> None:
        host = environ.get("HTTP_HOST", "")
        name = _hostname(host)
        if not name or not (_is_loopback(name) or name in self.allowed_hosts):
            raise Refusal(
                "host",
                f"Host {host!r} is not a loopback name or address, nor one given with "
                "--allowed-host (or LOCAL_SAGEMAKER_ALLOWED_HOSTS)",
            )

    def _check_origin(self, environ) -> None:
        if environ["REQUEST_METHOD"] == "OPTIONS":
            raise Refusal("origin", "CORS preflight requests are refused: CORS is off")
        fetch_site = environ.get("HTTP_SEC_FETCH_SITE")
        if fetch_site is not None and fetch_site not in TRUSTED_FETCH_SITES:
            raise Refusal("origin", f"Sec-Fetch-Site: {fetch_site} requests are refused")
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None:
            own = urlsplit(origin).netloc.lower() == environ.get("HTTP_HOST", "").lower()
            if not own:
                raise Refusal("origin", f"requests from origin {origin!r} are refused")

    def _read_body(self, environ, route: str) -> bytes:
        cap = {"invocation": self.limits.invocation_bytes, "s3": self.limits.s3_bytes}.get(
            route, self.limits.api_bytes
        )
        declared = environ.get("CONTENT_LENGTH") or ""
        if declared.isdigit() and int(declared) > cap:
            raise Refusal("too_large", f"a request body of {declared} bytes exceeds {cap} bytes")
        stream = environ["wsgi.input"]
        if declared.isdigit():
            body = stream.read(int(declared)) if int(declared) else b""
        elif environ.get("wsgi.input_terminated"):
            body = stream.read(cap + 1)
        else:
            body = b""
        if len(body) > cap:
            raise Refusal("too_large", f"the request body exceeds {cap} bytes")
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ.pop("wsgi.input_terminated", None)
        return body

    def _check_signature(self, environ, body: bytes, protocol: str) -> None:
        request = arrived_request(environ, body)
        if protocol == "s3" and _is_form_post(environ, request):
            self._check_form_post(environ, request)
            environ[SIGNED_SERVICE] = "s3"
            return
        environ[SIGNED_SERVICE] = verify_request(request, self.key_pair)

    def _check_form_post(self, environ, request: ArrivedRequest) -> None:
        form_environ = {**environ, "wsgi.input": io.BytesIO(request.body)}
        _, form, files = parse_form_data(form_environ)
        bucket = request.raw_path.lstrip("/").split("/", 1)[0]
        fields = {name: form[name] for name in form}
        verify_post_policy(fields, bucket, self.key_pair)
        bounds = content_length_range(fields.get("policy") or fields.get("Policy", ""))
        upload = files.get("file")
        if bounds and upload is not None:
            size = len(upload.read())
            if not bounds[0] <= size <= bounds[1]:
                reason = "too_large" if size > bounds[1] else "policy"
                raise Refusal(reason, f"the file's {size} bytes are outside the policy's {bounds}")

    def _refusal_response(self, environ, protocol: str, reason: str, detail: str) -> Response:
        table = S3_REFUSALS if protocol == "s3" else JSON_REFUSALS
        code, status, message = table.get(reason, table["mismatch"])
        if detail and reason in {"malformed", "skewed", "host", "origin", "too_large", "policy"}:
            message = f"{message} ({detail})" if reason != "skewed" else detail
        log.warning(
            "refused %s %s from Host %r: %s (%s)",
            environ["REQUEST_METHOD"], environ.get("PATH_INFO"), environ.get("HTTP_HOST"),
            code, detail or reason,
        )  # fmt: skip
        if protocol in ("json", "query"):
            error = AwsError(message)
            error.code, error.status = code, status
            render = error_response if protocol == "json" else query_error_response
            status, headers, body = render(error)
            return Response(body, status=status, headers=headers)
        return s3_error_response(code, message, status, environ.get("PATH_INFO", "/"))


def s3_error_response(code: str, message: str, status: int, resource: str) -> Response:
    """An S3 ``<Error>`` document, as S3 sends it."""
    request_id = uuid.uuid4().hex[:16].upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<Resource>{escape(resource)}</Resource><RequestId>{request_id}</RequestId></Error>"
    )
    return Response(body, status=status, mimetype="application/xml")


def _raw_target(environ) -> tuple[str, str]:
    """The request target as the client sent it: (path, query), percent-encoding intact."""
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI") or environ.get("PATH_INFO", "/")
    if raw.startswith(("http://", "https://")):
        raw = urlsplit(raw)._replace(scheme="", netloc="").geturl()
    path, _, query = raw.partition("?")
    return path or "/", query


def arrived_request(environ, body: bytes) -> ArrivedRequest:
    headers = {
        name[len("HTTP_") :].replace("_", "-").lower(): value
        for name, value in environ.items()
        if name.startswith("HTTP_")
    }
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(name):
            headers[name.replace("_", "-").lower()] = environ[name]
    path, query = _raw_target(environ)
    return ArrivedRequest(
        method=environ["REQUEST_METHOD"],
        host=environ.get("HTTP_HOST", ""),
        raw_path=path,
        raw_query=query,
        headers=headers,
        body=body,
    )


def _is_form_post(environ, request: ArrivedRequest) -> bool:
    """An S3 browser upload: a multipart form POST to a bucket, signed by its policy field."""
    return (
        request.method == "POST"
        and "authorization" not in request.headers
        and environ.get("CONTENT_TYPE", "").startswith("multipart/form-data")
    )
