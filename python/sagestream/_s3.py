"""S3 as the job handles see it (:class:`sagestream._jobs.S3Access`): get an object (None while
it does not exist), put one. The sync client's is a boto3 S3 client; the asyncio client's sends
botocore-signed requests over its own transport (:mod:`sagestream._botocore_path`), so thousands
of waits cost no thread each.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from sagestream import _botocore_path
from sagestream._botocore import transport_for
from sagestream._caps import ResponseLimits
from sagestream._transport import read_capped
from sagestream.exceptions import ServiceError

__all__ = ["AsyncTransportS3", "BotoS3"]


class BotoS3:
    """S3 through a boto3 client, made on first use by ``make``; objects read up to
    ``limits.async_output`` bytes."""

    def __init__(self, make: Callable[[], Any], limits: ResponseLimits | None = None) -> None:
        self._make = make
        self._limits = limits or ResponseLimits()
        self._client: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        """The boto3 S3 client."""
        with self._lock:
            if self._client is None:
                self._client = self._make()
            return self._client

    def get(self, bucket: str, key: str) -> bytes | None:
        s3 = self.client()
        try:
            response = s3.get_object(Bucket=bucket, Key=key)
        except s3.exceptions.NoSuchKey:
            return None
        except Exception as exc:
            status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404:
                return None
            raise
        return read_capped(response, self._limits.async_output)

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.client().put_object(Bucket=bucket, Key=key, Body=data)


class AsyncTransportS3:
    """S3 through a botocore client (made in a worker thread on first use by ``make``) and a
    transport of its own, on the asyncio client's hub (``hub()``); objects read up to
    ``limits.async_output`` bytes, error answers up to ``limits.error_body``."""

    def __init__(
        self, make: Callable[[], Any], hub: Callable[[], Any], limits: ResponseLimits | None = None
    ) -> None:
        self._make = make
        self._limits = limits or ResponseLimits()
        self._hub = hub
        self._made: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    def _setup(self) -> tuple[Any, Any]:
        with self._lock:
            if self._made is None:
                s3 = self._make()
                transport, why = transport_for(s3, s3.meta.region_name, "s3")
                if transport is None:
                    raise NotImplementedError(f"sagestream.AsyncClient cannot send to S3: {why}")
                self._made = (s3, transport)
            return self._made

    async def _call(self, operation: str, params: dict[str, Any]) -> _botocore_path.Reply:
        s3, transport = self._made if self._made is not None else await asyncio.to_thread(self._setup)
        reply = await _botocore_path.call(
            s3,
            transport,
            self._hub(),
            operation,
            params,
            limit=self._limits.async_output,
            error_limit=self._limits.error_body,
        )
        if reply.status >= 300 and reply.status != 404:
            raise ServiceError(reply.parsed or {}, operation)
        return reply

    async def get(self, bucket: str, key: str) -> bytes | None:
        reply = await self._call("GetObject", {"Bucket": bucket, "Key": key})
        return None if reply.status == 404 else reply.body

    async def put(self, bucket: str, key: str, data: bytes) -> None:
        await self._call("PutObject", {"Bucket": bucket, "Key": key, "Body": data})

    def close(self) -> None:
        """Close the idle connections."""
        if self._made is not None:
            self._made[1].close()
