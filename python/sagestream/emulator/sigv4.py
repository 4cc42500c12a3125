"""AWS Signature Version 4 verification of received requests.

The signature is recomputed from the request as received (method, path, query, the headers
named in ``SignedHeaders``, the body hash) with the configured secret key and compared in
constant time. Failures carry the error codes and messages AWS answers with (403).

Verification comes in two steps so that a server can refuse a request on its headers before
reading its body: :func:`check_request` does every check the headers allow (and the whole
signature when the client declared the payload hash), :meth:`SignedRequest.verify_payload`
finishes with the hash of the body as received.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote

from .protocol import EmulatorError

ALGORITHM = "AWS4-HMAC-SHA256"
#: How far X-Amz-Date may be from the server's clock.
MAX_SKEW = _dt.timedelta(minutes=5)
_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)


def auth_error(code: str, message: str, status: int = 403) -> EmulatorError:
    """An authentication error with the lower-case ``message`` key AWS uses for them."""
    return EmulatorError(status, code, message, message_key="message")


@dataclass(frozen=True)
class Authorization:
    """The parts of an ``Authorization: AWS4-HMAC-SHA256 ...`` header."""

    access_key_id: str
    date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/{self.terminator}"


def parse_authorization(value: str) -> Authorization:
    """Parse the header; a malformed one is IncompleteSignatureException (403)."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise auth_error(
            "IncompleteSignatureException",
            f"Unsupported AWS 'algorithm': '{algorithm}'.",
        )
    params: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, val = item.strip().partition("=")
        if sep:
            params[key] = val
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if k not in params]
    if missing:
        raise auth_error(
            "IncompleteSignatureException",
            f"Authorization header requires '{missing[0]}' parameter. Authorization={value}",
        )
    parts = params["Credential"].split("/")
    if len(parts) != 5:
        raise auth_error(
            "IncompleteSignatureException",
            f"Credential should have 5 parts separated by '/'. Credential={params['Credential']}",
        )
    return Authorization(
        access_key_id=parts[0],
        date=parts[1],
        region=parts[2],
        service=parts[3],
        terminator=parts[4],
        signed_headers=tuple(params["SignedHeaders"].split(";")),
        signature=params["Signature"],
    )


def _canonical_query(query_string: str) -> str:
    pairs = parse_qsl(query_string, keep_blank_values=True)
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def canonical_request(
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, list[str]],
    signed_headers: tuple[str, ...],
    payload_hash: str,
    *,
    s3: bool = False,
) -> str:
    """The SigV4 canonical request.

    Paths are URI-encoded once more, as for every service but S3, whose signers use the path
    as sent (``s3=True``).
    """
    path = (raw_path or "/") if s3 else quote(raw_path or "/", safe="/~")
    lines = [method.upper(), path, _canonical_query(query_string)]
    for name in signed_headers:
        values = headers.get(name, [])
        lines.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}")
    lines.append("")
    lines.append(";".join(signed_headers))
    lines.append(payload_hash)
    return "\n".join(lines)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signature(secret_key: str, auth: Authorization, amz_date: str, canonical: str) -> str:
    """The hex signature of ``canonical`` for the scope in ``auth``."""
    string_to_sign = "\n".join(
        [ALGORITHM, amz_date, auth.scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(("AWS4" + secret_key).encode(), auth.date)
    for part in (auth.region, auth.service, auth.terminator):
        key = _hmac(key, part)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


#: ``x-amz-content-sha256`` values that are not a hash of the body.
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_STREAMING_PREFIX = "STREAMING-"
#: What AWS answers for an ``x-amz-*`` header left out of SignedHeaders.
UNSIGNED_HEADERS = "There were headers present in the request which were not signed"


@dataclass(frozen=True)
class SignedRequest:
    """A request whose headers passed every SigV4 check; the payload hash is still to come.

    When the client declared the payload hash (``x-amz-content-sha256``), the signature has
    already been checked too, and :meth:`verify_payload` only compares the body's hash.
    """

    auth: Authorization
    secret: str
    amz_date: str
    method: str
    raw_path: str
    query_string: str
    headers: Mapping[str, list[str]]
    declared_hash: str | None
    s3: bool

    @property
    def access_key_id(self) -> str:
        """The access key id the request was signed with."""
        return self.auth.access_key_id

    @property
    def body_is_signed(self) -> bool:
        """False when the body is not part of the signature (UNSIGNED-PAYLOAD, streaming)."""
        declared = self.declared_hash
        return declared is None or not (
            declared == UNSIGNED_PAYLOAD or declared.startswith(_STREAMING_PREFIX)
        )

    def check_signature(self, payload_hash: str) -> None:
        """Compare the signature over the canonical request with ``payload_hash``."""
        canonical = canonical_request(
            self.method,
            self.raw_path,
            self.query_string,
            self.headers,
            self.auth.signed_headers,
            payload_hash,
            s3=self.s3,
        )
        expected = signature(self.secret, self.auth, self.amz_date, canonical)
        if not hmac.compare_digest(expected, self.auth.signature):
            raise auth_error("InvalidSignatureException", _MISMATCH)

    def verify_payload(self, body_hash: str) -> str:
        """Finish verification with the hex SHA-256 of the body received; the access key id."""
        declared = self.declared_hash
        if declared is None:
            self.check_signature(body_hash)
        elif self.body_is_signed and not hmac.compare_digest(declared, body_hash):
            raise auth_error(
                "XAmzContentSHA256Mismatch" if self.s3 else "InvalidSignatureException",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
                status=400,
            )
        return self.auth.access_key_id


def scope_service(headers: Mapping[str, list[str]]) -> str | None:
    """The service an ``Authorization`` header is scoped to, or None if there is none."""
    values = headers.get("authorization")
    if not values:
        return None
    try:
        return parse_authorization(values[0]).service
    except EmulatorError:
        return None


def check_request(
    *,
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, list[str]],
    credentials: Mapping[str, str],
    region: str,
    service: str,
    now: _dt.datetime | None = None,
    s3: bool = False,
) -> SignedRequest:
    """Every SigV4 check that needs no body; raises EmulatorError (403) on the first failure.

    ``headers`` maps lower-case names to every value received under that name. Every
    ``x-amz-*`` header must be signed; other headers may travel unsigned, as with AWS.
    """
    authorization = headers.get("authorization")
    if not authorization:
        raise auth_error("MissingAuthenticationTokenException", "Missing Authentication Token")
    auth = parse_authorization(authorization[0])
    secret = credentials.get(auth.access_key_id)
    if secret is None:
        raise auth_error(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    amz_date = _request_date(headers)
    _check_scope(auth, amz_date, region, service, now)
    unsigned = sorted(n for n in headers if n.startswith("x-amz-") and n not in auth.signed_headers)
    if unsigned:
        raise auth_error("InvalidSignatureException", f"{UNSIGNED_HEADERS}: {', '.join(unsigned)}")
    declared_values = headers.get("x-amz-content-sha256")
    declared = declared_values[0] if declared_values else None
    if s3 and declared is None:
        raise auth_error(
            "InvalidRequest", "Missing required header for this request: x-amz-content-sha256", status=400
        )
    signed = SignedRequest(
        auth=auth,
        secret=secret,
        amz_date=amz_date,
        method=method,
        raw_path=raw_path,
        query_string=query_string,
        headers=headers,
        declared_hash=declared,
        s3=s3,
    )
    if declared is not None:
        # The payload hash is known: refuse a bad signature before the body is read.
        signed.check_signature(declared)
    return signed


def _request_date(headers: Mapping[str, list[str]]) -> str:
    amz_date_values = headers.get("x-amz-date")
    date_values = headers.get("date")
    if amz_date_values:
        return amz_date_values[0]
    if date_values:
        try:
            parsed = email.utils.parsedate_to_datetime(date_values[0])
        except (TypeError, ValueError):
            parsed = None
        return parsed.astimezone(_dt.timezone.utc).strftime(_AMZ_DATE_FORMAT) if parsed else date_values[0]
    raise auth_error(
        "IncompleteSignatureException",
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    )


def _check_scope(
    auth: Authorization, amz_date: str, region: str, service: str, now: _dt.datetime | None
) -> None:
    try:
        stamp = _dt.datetime.strptime(amz_date, _AMZ_DATE_FORMAT).replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        raise auth_error(
            "IncompleteSignatureException", f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'."
        ) from None
    now = now or _dt.datetime.now(_dt.timezone.utc)
    fmt = _AMZ_DATE_FORMAT
    if stamp < now - MAX_SKEW:
        raise auth_error(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than {(now - MAX_SKEW).strftime(fmt)} "
            f"({now.strftime(fmt)} - 5 min.)",
        )
    if stamp > now + MAX_SKEW:
        raise auth_error(
            "InvalidSignatureException",
            f"Signature not yet current: {amz_date} is still later than "
            f"{(now + MAX_SKEW).strftime(fmt)} ({now.strftime(fmt)} + 5 min.)",
        )
    if auth.date != amz_date[:8]:
        raise auth_error(
            "InvalidSignatureException",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{auth.date}' != '{amz_date[:8]}', from '{amz_date}'.",
        )
    if auth.region != region:
        raise auth_error(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region, not '{auth.region}'. ",
        )
    if auth.service != service or auth.terminator != "aws4_request":
        raise auth_error(
            "InvalidSignatureException",
            f"Credential should be scoped to correct service: '{service}'. ",
        )
    if "host" not in auth.signed_headers:
        raise auth_error(
            "InvalidSignatureException",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        )


def verify(*, body: bytes, **request: Any) -> str:
    """Verify a whole request's SigV4 signature: :func:`check_request` (``request``: its
    keywords), then ``body``'s hash; returns the access key id or raises EmulatorError."""
    return check_request(**request).verify_payload(hashlib.sha256(body).hexdigest())
