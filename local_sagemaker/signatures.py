"""AWS Signature Version 4, checked the way AWS checks it, with botocore's own signer.

The runtime recomputes each request's signature from what arrived (method, raw path and query,
the headers the client says it signed, the body or its declared hash) with the runtime's secret,
using botocore's ``SigV4Auth`` family, the very code that signed the request on the client side.
Three forms are accepted, as AWS accepts them:

- header auth (``Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
  Signature=...``), what boto3, the AWS CLI and the provider's hooks send; S3 requests carry
  ``x-amz-content-sha256`` (the body's hash, ``UNSIGNED-PAYLOAD`` or
  ``STREAMING-UNSIGNED-PAYLOAD-TRAILER``), and a hex hash must match the body;
- presigned URLs (``X-Amz-Algorithm``, ``X-Amz-Credential``, ... in the query string);
- S3 browser form POSTs, whose ``policy`` field is signed (:func:`verify_post_policy`).

Anything else (no signature, SigV2, an unknown key, a wrong signature, a date more than 15
minutes off, an expired URL) raises :class:`AuthFailure`, which the gate renders in the
service's own error format.
"""

import base64
import binascii
import datetime
import hashlib
import hmac
import json
from dataclasses import dataclass
from urllib.parse import parse_qsl

from botocore.auth import (
    SIGV4_TIMESTAMP,
    STREAMING_UNSIGNED_PAYLOAD_TRAILER,
    UNSIGNED_PAYLOAD,
    S3SigV4Auth,
    S3SigV4QueryAuth,
    SigV4Auth,
    SigV4QueryAuth,
)
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

from local_sagemaker.credentials import KeyPair

ALGORITHM = "AWS4-HMAC-SHA256"
# AWS refuses a request dated more than 15 minutes from its own clock, in either direction.
MAX_CLOCK_SKEW = datetime.timedelta(minutes=15)
# A presigned URL lives at most seven days (X-Amz-Expires <= 604800), as on AWS.
MAX_PRESIGNED_EXPIRES = 604800
UNHASHED_PAYLOADS = {UNSIGNED_PAYLOAD, STREAMING_UNSIGNED_PAYLOAD_TRAILER}


class AuthFailure(Exception):
    """Why a request is not let in. ``reason`` is one of the keys of the gate's error tables:
    ``missing``, ``unsupported``, ``malformed``, ``unknown_key``, ``mismatch``, ``skewed``,
    ``expired``, ``payload_mismatch``."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class ArrivedRequest:
    """A request as it reached the runtime: what a signature covers."""

    method: str
    host: str
    raw_path: str  # as sent, percent-encoding intact
    raw_query: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


class _SignedHeadersOnly:
    """Signs exactly the headers the client listed, rather than botocore's choice of headers."""

    signed_header_names: list[str] = []

    def headers_to_sign(self, request):
        header_map = HTTPHeaders()
        for name in self.signed_header_names:
            if name in request.headers:
                header_map[name] = request.headers[name]
        return header_map


def _signer(query: bool, service: str, key_pair: KeyPair, region: str, signed: list[str]):
    """botocore's signer for this form of request and service (S3 does not normalise paths and
    signs its payload hash header; presigned S3 URLs sign UNSIGNED-PAYLOAD)."""
    if service == "s3":
        base = S3SigV4QueryAuth if query else S3SigV4Auth
    else:
        base = SigV4QueryAuth if query else SigV4Auth
    signer_class = type("ArrivedRequestSigner", (_SignedHeadersOnly, base), {})
    credentials = Credentials(key_pair.access_key_id, key_pair.secret_access_key)
    signer = signer_class(credentials, service, region)
    signer.signed_header_names = signed
    return signer


def _parse_credential(credential: str, key_pair: KeyPair) -> tuple[str, str, str]:
    """``AKID/yyyymmdd/region/service/aws4_request`` -> (date, region, service)."""
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise AuthFailure("malformed", f"Credential should be scoped correctly: {credential!r}")
    access_key_id, date, region, service, _ = parts
    if not hmac.compare_digest(access_key_id, key_pair.access_key_id):
        raise AuthFailure("unknown_key", access_key_id)
    return date, region, service


def _parse_timestamp(value: str) -> datetime.datetime:
    try:
        return datetime.datetime.strptime(value, SIGV4_TIMESTAMP).replace(tzinfo=datetime.UTC)
    except ValueError:
        raise AuthFailure("malformed", f"X-Amz-Date {value!r} is not yyyymmddThhmmssZ") from None


def _authorization_fields(header: str) -> dict[str, str]:
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise AuthFailure("unsupported", algorithm)
    fields = {}
    for item in rest.split(","):
        name, _, value = item.strip().partition("=")
        fields[name] = value
    required = ("Credential", "SignedHeaders", "Signature")
    missing = [name for name in required if not fields.get(name)]
    if missing:
        raise AuthFailure("malformed", f"Authorization header lacks {', '.join(missing)}")
    return fields


def _check_clock(timestamp: datetime.datetime, now: datetime.datetime) -> None:
    if abs(now - timestamp) > MAX_CLOCK_SKEW:
        raise AuthFailure(
            "skewed",
            f"Signature expired: {timestamp.strftime(SIGV4_TIMESTAMP)} is now earlier than "
            f"{(now - MAX_CLOCK_SKEW).strftime(SIGV4_TIMESTAMP)} "
            f"({now.strftime(SIGV4_TIMESTAMP)} - 15 min.)"
            if timestamp < now
            else f"Signature not yet current: {timestamp.strftime(SIGV4_TIMESTAMP)} is still "
            f"later than {(now + MAX_CLOCK_SKEW).strftime(SIGV4_TIMESTAMP)} "
            f"({now.strftime(SIGV4_TIMESTAMP)} + 15 min.)",
        )


def verify_request(
    request: ArrivedRequest, key_pair: KeyPair, now: datetime.datetime | None = None
) -> str:
    """Check a header-signed or presigned request; returns the signing service name.

    Raises :class:`AuthFailure` for any request that AWS would refuse for its signature."""
    now = now or datetime.datetime.now(datetime.UTC)
    query_pairs = parse_qsl(request.raw_query, keep_blank_values=True)
    query = dict(query_pairs)
    if "Signature" in query or "AWSAccessKeyId" in query:
        raise AuthFailure("unsupported", "Signature Version 2")
    if "X-Amz-Signature" in query:
        return _verify_presigned(request, query, key_pair, now)
    if "authorization" not in request.headers:
        raise AuthFailure("missing")
    fields = _authorization_fields(request.headers["authorization"])
    date, region, service = _parse_credential(fields["Credential"], key_pair)
    amz_date = request.headers.get("x-amz-date")
    if not amz_date:
        raise AuthFailure("malformed", "the request has no X-Amz-Date header")
    timestamp = _parse_timestamp(amz_date)
    if timestamp.strftime("%Y%m%d") != date:
        raise AuthFailure("mismatch", "the credential scope's date is not the request's date")
    signed_headers = fields["SignedHeaders"].split(";")
    if "host" not in signed_headers:
        raise AuthFailure("malformed", "the Host header must be signed")
    _check_payload_hash(request)
    signer = _signer(False, service, key_pair, region, signed_headers)
    expected = _expected_signature(signer, request, request.raw_query, amz_date)
    if not hmac.compare_digest(expected, fields["Signature"]):
        raise AuthFailure("mismatch")
    _check_clock(timestamp, now)
    return service


def _verify_presigned(request, query: dict, key_pair: KeyPair, now) -> str:
    if query.get("X-Amz-Algorithm") != ALGORITHM:
        raise AuthFailure("unsupported", query.get("X-Amz-Algorithm", ""))
    missing = [
        name
        for name in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders")
        if name not in query
    ]
    if missing:
        raise AuthFailure("malformed", f"the presigned URL lacks {', '.join(missing)}")
    date, region, service = _parse_credential(query["X-Amz-Credential"], key_pair)
    timestamp = _parse_timestamp(query["X-Amz-Date"])
    try:
        expires = int(query["X-Amz-Expires"])
    except ValueError:
        raise AuthFailure("malformed", "X-Amz-Expires must be a number of seconds") from None
    if not 0 < expires <= MAX_PRESIGNED_EXPIRES:
        raise AuthFailure("malformed", "X-Amz-Expires must be between 1 and 604800 seconds")
    # Everything but the signature itself is signed, in the client's own encoding.
    unsigned_query = "&".join(
        pair for pair in request.raw_query.split("&") if not pair.startswith("X-Amz-Signature=")
    )
    signer = _signer(True, service, key_pair, region, query["X-Amz-SignedHeaders"].split(";"))
    expected = _expected_signature(signer, request, unsigned_query, query["X-Amz-Date"])
    if not hmac.compare_digest(expected, query["X-Amz-Signature"]):
        raise AuthFailure("mismatch")
    if timestamp.strftime("%Y%m%d") != date:
        raise AuthFailure("mismatch", "the credential scope's date is not X-Amz-Date's")
    if now > timestamp + datetime.timedelta(seconds=expires):
        raise AuthFailure("expired")
    if timestamp - now > MAX_CLOCK_SKEW:
        raise AuthFailure("skewed", "X-Amz-Date is in the future")
    return service


def _check_payload_hash(request: ArrivedRequest) -> None:
    declared = request.headers.get("x-amz-content-sha256")
    if declared is None or declared in UNHASHED_PAYLOADS:
        return
    if declared.startswith("STREAMING-"):
        # Chunk-signed streaming uploads (STREAMING-AWS4-HMAC-SHA256-PAYLOAD...): boto3 and the
        # AWS CLI never send them, and the runtime does not verify per-chunk signatures.
        raise AuthFailure("unsupported", f"x-amz-content-sha256: {declared}")
    if not hmac.compare_digest(declared, hashlib.sha256(request.body).hexdigest()):
        raise AuthFailure("payload_mismatch")


def _expected_signature(signer, request: ArrivedRequest, query: str, amz_date: str) -> str:
    url = f"http://{request.host}{request.raw_path}" + (f"?{query}" if query else "")
    aws_request = AWSRequest(
        method=request.method, url=url, headers=request.headers, data=request.body
    )
    aws_request.context["timestamp"] = amz_date
    canonical = signer.canonical_request(aws_request)
    return signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)


# ---- S3 browser form POSTs ------------------------------------------------------------------


def verify_post_policy(
    fields: dict[str, str], bucket: str, key_pair: KeyPair, now: datetime.datetime | None = None
) -> None:
    """Check an S3 POST form's policy signature, expiry and conditions (bucket, key, fields).

    ``fields`` are the form's text fields (names as sent). Raises :class:`AuthFailure`."""
    now = now or datetime.datetime.now(datetime.UTC)
    lowered = {name.lower(): value for name, value in fields.items()}
    if "policy" not in lowered or "x-amz-signature" not in lowered:
        if "signature" in lowered or "awsaccesskeyid" in lowered:
            raise AuthFailure("unsupported", "Signature Version 2")
        raise AuthFailure("missing")
    if lowered.get("x-amz-algorithm") != ALGORITHM:
        raise AuthFailure("unsupported", lowered.get("x-amz-algorithm", ""))
    date, region, service = _parse_credential(lowered.get("x-amz-credential", ""), key_pair)
    timestamp = _parse_timestamp(lowered.get("x-amz-date", ""))
    signer = _signer(False, service, key_pair, region, [])
    context_request = AWSRequest()
    context_request.context["timestamp"] = timestamp.strftime(SIGV4_TIMESTAMP)
    expected = signer.signature(lowered["policy"], context_request)
    if date != timestamp.strftime("%Y%m%d") or not hmac.compare_digest(
        expected, lowered["x-amz-signature"]
    ):
        raise AuthFailure("mismatch")
    try:
        policy = json.loads(base64.b64decode(lowered["policy"], validate=True))
    except (binascii.Error, ValueError):
        raise AuthFailure("malformed", "the policy is not base64-encoded JSON") from None
    _check_policy(policy, {**lowered, "bucket": bucket}, now)


# Form fields a policy need not name (AWS: the signature itself, the policy, the file).
UNCONDITIONED_FIELDS = {"policy", "x-amz-signature", "file"}


def _check_policy(policy: dict, fields: dict[str, str], now: datetime.datetime) -> None:
    try:
        expiration = datetime.datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError):
        raise AuthFailure("malformed", "the policy has no valid expiration") from None
    if now > expiration:
        raise AuthFailure("expired", "Invalid according to Policy: Policy expired.")
    conditions = policy.get("conditions", [])
    named = {
        str(name).lstrip("$").lower()
        for condition in conditions
        for name in (condition.keys() if isinstance(condition, dict) else condition[1:2])
    }
    allowed = named | UNCONDITIONED_FIELDS | {"bucket"}
    extra = sorted(
        name for name in fields if name not in allowed and not name.startswith("x-ignore-")
    )
    if extra:
        raise AuthFailure("policy", f"Invalid according to Policy: Extra input fields: {extra}")
    for condition in conditions:
        if isinstance(condition, dict):
            for name, value in condition.items():
                if fields.get(name.lower()) != value:
                    raise AuthFailure("policy", f"Policy Condition failed: [eq, ${name}, {value}]")
        elif isinstance(condition, list) and len(condition) == 3:
            operator, name, value = condition
            if operator == "content-length-range":
                continue  # checked against the file by the gate
            field_value = fields.get(str(name).lstrip("$").lower(), "")
            if operator == "eq" and field_value != value:
                raise AuthFailure("policy", f"Policy Condition failed: {condition}")
            if operator == "starts-with" and not field_value.startswith(value):
                raise AuthFailure("policy", f"Policy Condition failed: {condition}")


def content_length_range(policy_b64: str) -> tuple[int, int] | None:
    """The policy's ``content-length-range`` bounds, if it sets them."""
    policy = json.loads(base64.b64decode(policy_b64))
    for condition in policy.get("conditions", []):
        if isinstance(condition, list) and condition[:1] == ["content-length-range"]:
            return int(condition[1]), int(condition[2])
    return None
