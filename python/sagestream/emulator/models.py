"""The models an emulated endpoint can serve: ``demo`` (in :mod:`.demo`), ``echo`` and a proxy
to a container.

A model turns one request into a reply: a content type and an async iterator of batches of
payload parts (a batch is written to the socket in one go; each part is its own PayloadPart
frame on streams, and the parts are joined for InvokeEndpoint).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from .connwatch import watch_connection
from .faults import Knobs
from .protocol import EmulatorError, model_error

#: Echo streams split the body into parts of this size.
ECHO_PART_SIZE = 4096
#: A batch (written to the socket in one go, then drained) holds at most this many parts and
#: about this many bytes, so memory stays bounded by one batch whatever the reply's size.
_BATCH_PARTS = 512
_BATCH_BYTES = 256 * 1024


class ModelFailure(Exception):
    """The model container answered an error (becomes ModelError 424)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ModelNotReady(Exception):
    """The container does not answer its health check (becomes ModelNotReadyException 429)."""


class ModelStreamBroken(Exception):
    """The container's reply broke off mid-stream (becomes a ModelStreamError frame with
    ErrorCode StreamBroken, as the service reports it)."""


@dataclass
class ModelRequest:
    """One invocation as the model sees it."""

    endpoint: str
    body: bytes
    content_type: str | None
    accept: str | None
    custom_attributes: str | None
    knobs: Knobs
    streaming: bool
    token_delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ModelReply:
    """The model's answer: content type, batches of parts, response CustomAttributes."""

    content_type: str
    parts: AsyncIterator[list[bytes]]
    custom_attributes: str | None = None


class Model(Protocol):
    """What the server calls."""

    name: str

    async def invoke(self, request: ModelRequest) -> ModelReply: ...

    async def close(self) -> None: ...


async def batches(parts: Iterable[bytes], delay: float) -> AsyncIterator[list[bytes]]:
    """Parts in batches for the writer: one per ``delay`` seconds, or as many as fit a batch."""
    if delay > 0:
        for part in parts:
            await asyncio.sleep(delay)
            yield [part]
        return
    batch: list[bytes] = []
    size = 0
    for part in parts:
        batch.append(part)
        size += len(part)
        if len(batch) >= _BATCH_PARTS or size >= _BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


# --- bulk parts (benchmarks and load tests) ---------------------------------------------------

_FILL = bytes(range(97, 123)) * 4


def bulk_part(index: int, size: int) -> bytes:
    """Part ``index`` of a ``parts=N;part_size=B`` reply: ``b"<index>:"`` then a-z filler, cut to ``size``."""
    head = b"%d:" % index
    if size <= len(head):
        return head[:size]
    fill_len = size - len(head)
    fill = _FILL * (fill_len // len(_FILL) + 1)
    return head + fill[:fill_len]


def _bulk_parts(count: int, size: int) -> Iterator[bytes]:
    fill = _FILL * (size // len(_FILL) + 2)
    for i in range(count):
        head = b"%d:" % i
        yield (head + fill[: size - len(head)]) if size > len(head) else head[:size]


def bulk_reply(count: int, size: int, delay: float) -> ModelReply:
    """``count`` parts of ``size`` bytes, paced by ``delay`` seconds (0: as fast as possible).

    The parts are made as the writer asks for them: a million parts of 16 MiB cost one batch
    of memory, not the total.
    """
    return ModelReply("application/octet-stream", batches(_bulk_parts(count, size), delay))


async def join_reply(reply: ModelReply, limit: int, endpoint: str, region: str, hint: str = "") -> bytes:
    """The reply's parts as one body (InvokeEndpoint, async output), refusing to hold more than
    ``limit`` bytes: a reply larger (``hint`` says what to do instead) or broken is the
    ModelError the service answers."""
    out: list[bytes] = []
    size = 0
    try:
        async for batch in reply.parts:
            for part in batch:
                size += len(part)
                if size > limit:
                    message = f"the model's response is larger than {limit} bytes{hint}"
                    raise model_error(endpoint, region, 500, message)
                out.append(part)
    except ModelStreamBroken as exc:
        raise model_error(endpoint, region, 500, str(exc)) from None
    finally:
        await aclose_reply(reply)
    return b"".join(out)


async def aclose_reply(reply: ModelReply) -> None:
    """Stop the reply's generator (and whatever it holds: a container response)."""
    aclose = getattr(reply.parts, "aclose", None)
    if aclose is not None:
        await aclose()


class EchoModel:
    """Returns the request body unchanged, with its content type."""

    name = "echo"

    async def invoke(self, request: ModelRequest) -> ModelReply:
        body = request.body
        if request.streaming:
            parts = [body[i : i + ECHO_PART_SIZE] for i in range(0, len(body), ECHO_PART_SIZE)]
        else:
            parts = [body] if body else []
        delay = request.knobs.delay or 0.0
        attributes = request.custom_attributes if request.knobs.echo_attributes else None
        return ModelReply(
            request.content_type or "application/octet-stream", batches(parts, delay), attributes
        )

    async def close(self) -> None:
        return None


class ProxyModel:
    """Forwards to a SageMaker-compatible container (``POST /invocations``, ``GET /ping``).

    The container's reply is streamed on as it arrives: one payload part per HTTP chunk of a
    chunked reply, or per read otherwise.
    """

    def __init__(self, url: str) -> None:
        self.name = url
        self.url = url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._healthy = False

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10), auto_decompress=False
            )
        return self._session

    async def _ping(self) -> None:
        try:
            async with self._client().get(
                self.url + "/ping", timeout=aiohttp.ClientTimeout(total=10)
            ) as resp:
                await resp.read()
                ok = resp.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            ok = False
        if not ok:
            raise ModelNotReady(f"Model container at {self.url} did not pass its /ping health check.")
        self._healthy = True

    async def invoke(self, request: ModelRequest) -> ModelReply:
        if not self._healthy:
            await self._ping()
        headers = {"Content-Type": request.content_type or "application/octet-stream"}
        if request.accept:
            headers["Accept"] = request.accept
        if request.custom_attributes:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = request.custom_attributes
        headers.update(request.headers)
        try:
            resp = await self._client().post(self.url + "/invocations", data=request.body, headers=headers)
        except (aiohttp.ClientError, OSError) as exc:
            self._healthy = False
            raise ModelNotReady(f"Model container at {self.url} is unreachable: {exc}") from None
        if resp.status != 200:
            text = (await resp.read()).decode("utf-8", "replace")
            resp.release()
            raise ModelFailure(resp.status, text)
        chunked = "chunked" in resp.headers.get("Transfer-Encoding", "").lower()

        watch_connection(resp)  # bad chunk framing must end the reply, not stall it

        async def parts() -> AsyncIterator[list[bytes]]:
            try:
                if chunked:
                    pending = b""
                    async for data, end_of_chunk in resp.content.iter_chunks():
                        pending += data
                        if end_of_chunk and pending:
                            yield [pending]
                            pending = b""
                    if pending:
                        yield [pending]
                else:
                    async for data in resp.content.iter_any():
                        if data:
                            yield [data]
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                raise ModelStreamBroken(f"The model container's response stream broke: {exc}") from exc
            finally:
                resp.release()

        return ModelReply(
            resp.headers.get("Content-Type", "application/octet-stream"),
            parts(),
            resp.headers.get("X-Amzn-SageMaker-Custom-Attributes"),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def call_model(model: Model, request: ModelRequest, region: str) -> ModelReply:
    """The model's reply (a bulk reply for ``parts=N``), its failures as the service's errors."""
    if request.knobs.parts is not None:
        return bulk_reply(request.knobs.parts, request.knobs.part_size, request.knobs.delay or 0.0)
    try:
        return await model.invoke(request)
    except ModelFailure as exc:
        raise model_error(request.endpoint, region, exc.status, exc.message) from None
    except ModelNotReady as exc:
        raise EmulatorError(429, "ModelNotReadyException", str(exc)) from None
