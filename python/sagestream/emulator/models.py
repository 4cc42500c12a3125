"""The models an emulated endpoint can serve: ``demo``, ``echo`` and a proxy to a container.

A model turns one request into a reply: a content type and an async iterator of batches of
payload parts (a batch is written to the socket in one go; each part is its own PayloadPart
frame on streams, and the parts are joined for InvokeEndpoint).
"""

from __future__ import annotations

import asyncio
import json
import random
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from .._connwatch import watch_connection
from .faults import Knobs

#: Built-in model names (anything else must be an ``http://host:port`` container URL).
BUILTIN_MODELS = ("demo", "echo")
#: Tokens the demo model generates when the request does not say.
DEFAULT_MAX_NEW_TOKENS = 20
#: Echo streams split the body into parts of this size.
ECHO_PART_SIZE = 4096
#: Parts per batch when there is no pacing.
_BATCH = 512

_CONTENT_TYPES = {
    "text": "text/plain",
    "sse": "text/event-stream",
    "jsonl": "application/jsonlines",
    "json": "application/json",
}
_ACCEPT_FORMATS = {
    "text/plain": "text",
    "text/event-stream": "sse",
    "application/jsonlines": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-ndjson": "jsonl",
    "application/json": "json",
}

_WORDS = [
    "stream",
    "river",
    "token",
    "frame",
    "model",
    "answer",
    "bright",
    "quiet",
    "swift",
    "endpoint",
    "signal",
    "packet",
    "harbor",
    "lantern",
    "meadow",
    "orbit",
    "pixel",
    "quartz",
    "rocket",
    "summit",
    "timber",
    "velvet",
    "willow",
    "zephyr",
    "amber",
    "beacon",
    "cobalt",
    "delta",
    "ember",
    "fable",
    "glacier",
    "horizon",
    "island",
    "jasper",
    "kernel",
    "lumen",
    "marble",
    "nectar",
    "onyx",
    "prism",
    "quiver",
    "ripple",
    "saffron",
    "tundra",
    "umber",
    "vortex",
    "wander",
    "yonder",
]


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


async def _batches(parts: list[bytes], delay: float) -> AsyncIterator[list[bytes]]:
    if delay > 0:
        for part in parts:
            await asyncio.sleep(delay)
            yield [part]
    else:
        for i in range(0, len(parts), _BATCH):
            yield parts[i : i + _BATCH]


async def _nothing() -> AsyncIterator[list[bytes]]:
    return
    yield  # pragma: no cover


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


def bulk_reply(count: int, size: int, delay: float) -> ModelReply:
    """``count`` parts of ``size`` bytes, paced by ``delay`` seconds (0: as fast as possible)."""

    async def parts() -> AsyncIterator[list[bytes]]:
        if delay > 0:
            for i in range(count):
                await asyncio.sleep(delay)
                yield [bulk_part(i, size)]
            return
        fill = _FILL * (size // len(_FILL) + 2)
        for start in range(0, count, _BATCH):
            batch = []
            for i in range(start, min(count, start + _BATCH)):
                head = b"%d:" % i
                batch.append((head + fill)[:size] if size > len(head) else head[:size])
            yield batch

    return ModelReply("application/octet-stream", parts())


# --- demo -------------------------------------------------------------------------------------


def _prompt_and_limit(body: bytes) -> tuple[str, int | None]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body.decode("utf-8", "replace"), None
    if isinstance(doc, str):
        return doc, None
    if not isinstance(doc, dict):
        return body.decode("utf-8", "replace"), None
    prompt = doc.get("inputs", doc.get("prompt", doc.get("text_inputs", "")))
    if isinstance(prompt, list):
        prompt = " ".join(str(p) for p in prompt)
    params = doc.get("parameters")
    limit = None
    if isinstance(params, dict) and isinstance(params.get("max_new_tokens"), int):
        limit = params["max_new_tokens"]
    elif isinstance(doc.get("max_new_tokens"), int):
        limit = doc["max_new_tokens"]
    return str(prompt), limit


def demo_tokens(prompt: str, count: int) -> list[str]:
    """The demo model's deterministic tokens for ``prompt``: the same prompt, the same text."""
    rng = random.Random(zlib.crc32(prompt.encode("utf-8", "replace")))
    tokens = []
    for i in range(count):
        word = rng.choice(_WORDS)
        tokens.append(word.capitalize() if i == 0 else " " + word)
    if tokens:
        tokens[-1] += "."
    return tokens


def _token_id(text: str) -> int:
    return zlib.crc32(text.encode()) % 32000


def _logprob(index: int, text: str) -> float:
    return -round((zlib.crc32(f"{index}{text}".encode()) % 5000) / 1000.0, 3)


def _format_tokens(tokens: list[str], fmt: str) -> list[bytes]:
    """One part per token in format ``fmt`` (``json`` is a single part)."""
    text = "".join(tokens)
    if fmt == "text":
        return [t.encode() for t in tokens]
    if fmt == "json":
        return [json.dumps([{"generated_text": text}]).encode()]
    out = []
    last = len(tokens) - 1
    for i, tok in enumerate(tokens):
        token = {"id": _token_id(tok), "text": tok}
        if fmt == "sse":
            doc = {
                "token": {**token, "logprob": _logprob(i, tok), "special": False},
                "generated_text": text if i == last else None,
                "details": None,
            }
            out.append(b"data: " + json.dumps(doc).encode() + b"\n\n")
        else:
            line: dict[str, object] = {"token": {**token, "log_prob": _logprob(i, tok)}}
            if i == last:
                line["generated_text"] = text
            out.append(json.dumps(line).encode() + b"\n")
    return out


def demo_format(request: ModelRequest) -> str:
    """The output format: ``format=`` knob, else the Accept type, else text (streams) / json."""
    if request.knobs.format:
        return request.knobs.format
    accept = (request.accept or "").split(";", 1)[0].strip().lower()
    fmt = _ACCEPT_FORMATS.get(accept)
    if fmt is None or (fmt == "json" and request.streaming):
        return "text" if request.streaming else "json"
    return fmt


class DemoModel:
    """Deterministic text generation, token by token, in the formats LLM containers use."""

    name = "demo"

    async def invoke(self, request: ModelRequest) -> ModelReply:
        prompt, limit = _prompt_and_limit(request.body)
        count = request.knobs.tokens if request.knobs.tokens is not None else limit
        if count is None:
            count = DEFAULT_MAX_NEW_TOKENS
        fmt = demo_format(request)
        parts = _format_tokens(demo_tokens(prompt, count), fmt)
        delay = request.knobs.delay if request.knobs.delay is not None else request.token_delay
        if not request.streaming:
            delay = 0.0
        return ModelReply(_CONTENT_TYPES[fmt], _batches(parts, delay))

    async def close(self) -> None:
        return None


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
        return ModelReply(request.content_type or "application/octet-stream", _batches(parts, delay))

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


def make_model(spec: str) -> Model:
    """``demo`` | ``echo`` | ``http://host:port`` → a model."""
    if spec == "demo":
        return DemoModel()
    if spec == "echo":
        return EchoModel()
    if spec.startswith(("http://", "https://")):
        return ProxyModel(spec)
    raise ValueError(f"unknown model {spec!r}: expected demo, echo or an http://host:port container URL")
