"""A request's way in: SigV4 on its headers first, then its body, bounded and hashed.

An unsigned or badly signed request is refused on its headers, before any of its body is
read (aiohttp then reads and discards the rest, holding no more than a read buffer); a
declared ``Content-Length`` over the limit is refused unread too. The body of a request that
passed is read as it arrives, hashed on the way, and bounded in size and time.
"""

from __future__ import annotations

import asyncio
import hashlib

from aiohttp import web

from sagestream import service

from .protocol import S3StyleError
from .sigv4 import SignedRequest, check_request, scope_service
from .validation import body_too_large

__all__ = ["BodyTimeout", "authenticate", "lower_headers", "read_body"]


class BodyTimeout(Exception):
    """The request's body did not arrive within the bound."""


def lower_headers(request: web.Request) -> dict[str, list[str]]:
    """Lower-case header names to every value received under each."""
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        headers.setdefault(name.lower(), []).append(value)
    return headers


def authenticate(
    request: web.Request,
    *,
    credentials: dict[str, str],
    region: str,
    s3_url: str | None,
) -> SignedRequest:
    """Every SigV4 check the headers allow; raises EmulatorError.

    An S3 client pointed at the runtime port (``AWS_ENDPOINT_URL`` names both services) gets an
    S3-style error that names the emulator's S3 URL.
    """
    headers = lower_headers(request)
    if scope_service(headers) == "s3":
        where = s3_url or "the S3 endpoint the emulator printed at start-up"
        raise S3StyleError(
            403,
            "AccessDenied",
            f"This is the sagestream emulator's SageMaker Runtime endpoint, not S3. Send S3 requests "
            f"to {where}: set AWS_ENDPOINT_URL_S3={where} and "
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME for the runtime, instead of AWS_ENDPOINT_URL for both.",
        )
    return check_request(
        method=request.method,
        raw_path=request.rel_url.raw_path,
        query_string=request.rel_url.raw_query_string,
        headers=headers,
        credentials=credentials,
        region=region,
        service=service.SIGNING_NAME,
    )


async def read_body(
    request: web.Request, signed: SignedRequest, *, limit: int = service.MAX_BODY_BYTES, timeout: float
) -> bytes:
    """The body once its signature checks out: at most ``limit`` bytes within ``timeout`` s.

    Over the limit (declared or counted) is the service's ValidationError; a body that takes
    longer is :class:`BodyTimeout`.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise body_too_large(limit)

    async def read() -> bytes:
        chunks: list[bytes] = []
        digest = hashlib.sha256()
        size = 0
        async for data in request.content.iter_any():
            size += len(data)
            if size > limit:
                raise body_too_large(limit)
            digest.update(data)
            chunks.append(data)
        signed.verify_payload(digest.hexdigest())
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(read(), timeout)
    except asyncio.TimeoutError:
        raise BodyTimeout(f"the request body did not arrive within {timeout:g} s") from None
