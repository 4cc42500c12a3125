"""InvokeEndpointWithBidirectionalStream: full-duplex sessions, for both clients.

The session is a Rust object (``sagestream._core.Duplex``) on the shared I/O runtime: the
request goes out on HTTP/2 and its body streams the input parts, each signed in a chain from
the request's signature; the answer's parts are read while the input is still being sent.
This module builds the request (endpoint, validated headers, credentials from botocore) and
wraps the session: :class:`DuplexSession` for threads, :class:`AsyncDuplexSession` for
asyncio. botocore has no model of this operation, so there is no botocore path to fall back
to: a client whose settings the transport cannot honour cannot open sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Generator,
    Iterable,
    Iterator,
    Mapping,
)
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

from sagestream import _core, _observe, _params
from sagestream._stream import AsyncClosing, Closing, Opened, StreamMetrics
from sagestream.exceptions import ParamValidationError, SageStreamError
from sagestream.service import INVOKE_DUPLEX

if TYPE_CHECKING:
    from sagestream._botocore import Bridge
    from sagestream.reassembly import ServerSentEvent

__all__ = [
    "DUPLEX_OPERATION",
    "ENDPOINT_ENV",
    "MAX_PART_BYTES",
    "AsyncDuplexSession",
    "DuplexCall",
    "DuplexSession",
    "OutputPart",
    "configured_endpoint",
    "derived_endpoint",
    "duplex_endpoint",
]

DUPLEX_OPERATION = INVOKE_DUPLEX.name
#: The environment variable naming the endpoint of this operation (the AWS SDKs' name for the
#: service "SageMaker Runtime HTTP2").
ENDPOINT_ENV = "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME_HTTP2"
#: The largest input part (its signed frame must stay under the event stream's payload cap).
MAX_PART_BYTES = 16 * 1024 * 1024
#: The port the service answers this operation on.
PORT = INVOKE_DUPLEX.port

Data: TypeAlias = bytes | bytearray | memoryview | str


def _partition(region: str) -> dict[str, Any]:
    import botocore.loaders

    partitions = botocore.loaders.create_loader().load_data("partitions")["partitions"]
    for partition in partitions:
        if region in partition["regions"]:
            return dict(partition["outputs"])
    for partition in partitions:
        if re.match(partition["regionRegex"], region):
            return dict(partition["outputs"])
    return dict(partitions[0]["outputs"])


def duplex_endpoint(region: str, *, fips: bool = False, dualstack: bool = False) -> str:
    """The service's URL for this operation in ``region`` (the AWS SDKs' endpoint rules):
    ``https://runtime.sagemaker.{region}.{dns suffix}:8443``, ``runtime-fips`` with FIPS, the
    partition's dual-stack suffix with dual-stack."""
    outputs = _partition(region)
    suffix = outputs["dualStackDnsSuffix"] if dualstack else outputs["dnsSuffix"]
    prefix = "runtime-fips" if fips else "runtime"
    return f"https://{prefix}.sagemaker.{region}.{suffix}:{PORT}"


def configured_endpoint(client: Any) -> str | None:
    """The endpoint URL the botocore client was configured with (``endpoint_url=``,
    ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``, ``AWS_ENDPOINT_URL``, the config file's
    ``endpoint_url``), or None when botocore resolves the service's own."""
    resolver = getattr(client, "_ruleset_resolver", None)
    value = getattr(resolver, "_builtins", {}).get("SDK::Endpoint")
    return str(value) if value else None


def derived_endpoint(configured: str) -> str:
    """This operation's URL on the configured host: its scheme, host and path, on the port the
    service answers the operation on (8443), as the service's own endpoint is derived from the
    runtime's host. A VPC endpoint, a proxy or the emulator keep every call on that host."""
    parts = urlsplit(configured.rstrip("/"))
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return urlunsplit((parts.scheme, f"{host}:{PORT}", parts.path, "", ""))


def _endpoint_url(bridge: Bridge, explicit: str | None) -> str:
    """Where a session connects: the explicit URL, ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME_HTTP2``,
    else the client's configured host (:func:`derived_endpoint`), else the service's endpoint
    for the region. Never the public endpoint when the client was given a host of its own."""
    if explicit:
        return explicit.rstrip("/")
    from_env = os.environ.get(ENDPOINT_ENV)
    if from_env:
        return from_env.rstrip("/")
    client = bridge.client
    configured = configured_endpoint(client)
    if configured is not None:
        return derived_endpoint(configured)
    config = client.meta.config
    return duplex_endpoint(
        str(client.meta.region_name),
        fips=bool(getattr(config, "use_fips_endpoint", False)),
        dualstack=bool(getattr(config, "use_dualstack_endpoint", False)),
    )


class OutputPart(bytes):
    """One output part: its bytes, and the ``DataType`` (``"UTF8"`` / ``"BINARY"``) and
    ``CompletionState`` (``"PARTIAL"`` / ``"COMPLETE"``) the endpoint sent with it (None when
    absent)."""

    data_type: str | None
    completion_state: str | None

    def __new__(
        cls, data: bytes, data_type: str | None = None, completion_state: str | None = None
    ) -> OutputPart:
        part = super().__new__(cls, data)
        part.data_type = data_type
        part.completion_state = completion_state
        return part

    @property
    def is_text(self) -> bool:
        """Whether the endpoint marked the part as UTF-8 text."""
        return self.data_type == "UTF8"

    @property
    def complete(self) -> bool | None:
        """True for ``COMPLETE``, False for ``PARTIAL``, None when the endpoint did not say."""
        if self.completion_state is None:
            return None
        return self.completion_state == "COMPLETE"

    def __repr__(self) -> str:
        return (
            f"OutputPart({bytes(self)!r}, data_type={self.data_type!r}, "
            f"completion_state={self.completion_state!r})"
        )

    def __reduce__(self) -> Any:
        return (OutputPart, (bytes(self), self.data_type, self.completion_state))


def _part(data: Data, text: bool | None, complete: bool | None) -> tuple[bytes, str | None, str | None]:
    """The bytes and headers of one input part.

    ``text``: True sends ``DataType: UTF8`` (the container gets a WebSocket text frame), False
    ``BINARY``; None: UTF8 for a ``str``, no DataType for bytes (binary to the container).
    ``complete``: True ``CompletionState: COMPLETE``, False ``PARTIAL``, None: not sent.
    """
    if isinstance(data, str):
        raw = data.encode("utf-8")
        if text is None:
            text = True
    elif isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
    else:
        raise ParamValidationError(f"a part must be bytes or str, got {type(data).__name__}")
    if len(raw) > MAX_PART_BYTES:
        raise ParamValidationError(f"a part holds at most {MAX_PART_BYTES} bytes, got {len(raw)}")
    data_type = None if text is None else ("UTF8" if text else "BINARY")
    state = None if complete is None else ("COMPLETE" if complete else "PARTIAL")
    return raw, data_type, state


def request_for(
    bridge: Bridge,
    endpoint_name: str,
    *,
    target_variant: str | None,
    model_invocation_path: str | None,
    model_query_string: str | None,
    endpoint_url: str | None,
) -> tuple[str, list[tuple[str, str]], list[tuple[str, str]]]:
    """URL, headers (signed) and headers added after signing of one session's request."""
    params = INVOKE_DUPLEX.params(
        {
            "endpoint_name": endpoint_name,
            "target_variant": target_variant,
            "model_invocation_path": model_invocation_path,
            "model_query_string": model_query_string,
        }
    )
    return _request(bridge, params, endpoint_url)


def _request(
    bridge: Bridge, params: dict[str, Any], endpoint_url: str | None
) -> tuple[str, list[tuple[str, str]], list[tuple[str, str]]]:
    if bridge.transport is None:
        raise NotImplementedError(
            f"sagestream cannot open a bidirectional stream for this client: {bridge.reason}"
        )
    url, headers, _ = INVOKE_DUPLEX.request(_endpoint_url(bridge, endpoint_url), params)
    after = [("User-Agent", bridge.user_agent())]
    return url, headers, after


def _check_deadline(deadline: float | None) -> float | None:
    return _params.check_deadline(deadline)


class _SessionBase:
    """What both sessions share: the Rust session, what the answer said, metrics."""

    def __init__(self, core: Any, url: str, started: float) -> None:
        self._core = core
        self._started = started
        self._feed_error: BaseException | None = None
        #: The URL the session was opened on.
        self.url = url

    def _answer(self) -> tuple[int | None, dict[str, str] | None]:
        return self._core.status, self._core.headers

    @property
    def status(self) -> int | None:
        """The answer's HTTP status, once it arrived (None before)."""
        return self._core.status  # type: ignore[no-any-return]

    @property
    def headers(self) -> dict[str, str]:
        """The answer's headers (lower-case names), once they arrived (empty before)."""
        return dict(self._core.headers or {})

    @property
    def invoked_production_variant(self) -> str | None:
        """The production variant that serves the session (``X-Amzn-Invoked-Production-Variant``)."""
        return self.headers.get("x-amzn-invoked-production-variant")

    @property
    def content_type(self) -> str | None:
        """None: this operation's answer names no content type of the model's output."""
        return None

    @property
    def request_id(self) -> str | None:
        """The service's request id, once the answer arrived."""
        return self.headers.get("x-amzn-requestid")

    @property
    def input_closed(self) -> bool:
        """Whether :meth:`close_input` was called."""
        return bool(self._core.input_closed)

    @property
    def closed(self) -> bool:
        """True once the output ended, failed, or the session was closed."""
        return bool(self._core.finished)

    @property
    def sent_parts(self) -> int:
        """Input parts sent (queued) so far."""
        return int(self._core.sent()[0])

    @property
    def sent_bytes(self) -> int:
        """Input bytes sent (queued) so far."""
        return int(self._core.sent()[1])

    @property
    def metrics(self) -> StreamMetrics:
        """Of the output: time to first part, parts, bytes, duration, the largest gap."""
        return StreamMetrics.of(self._core.stats(), self._started)

    def close_input(self) -> None:
        """End the input: the endpoint sees its end once the parts sent before arrive."""
        self._core.close_input()

    def _raise_feed_error(self) -> None:
        if self._feed_error is not None:
            raise self._feed_error

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<{type(self).__name__} {state} sent={self.sent_parts} received={self.metrics.parts}>"


class DuplexSession(_SessionBase, Closing):
    """A bidirectional session, for threads.

    ``send`` parts (waiting while the input queue is full), ``close_input()`` when done, and
    iterate the output parts (:class:`OutputPart`, ``bytes`` with ``data_type`` and
    ``completion_state``) as they arrive, from the same thread or another. Every part received
    before an error is yielded first, then the typed exception is raised. Use it as a context
    manager or call :meth:`close` to abandon it (the stream is reset).
    """

    def __init__(
        self,
        core: Any,
        url: str,
        started: float,
        feed: Iterable[Data] | None = None,
        watch: _observe.CallWatch | None = None,
    ) -> None:
        super().__init__(core, url, started)
        parts = core.parts(OutputPart)
        self._parts = parts if watch is None else watch.parts(parts, False, self._answer)
        self._feeder: threading.Thread | None = None
        if feed is not None:
            self.feed_in_background(feed)

    def send(self, data: Data, *, text: bool | None = None, complete: bool | None = None) -> None:
        """Send one part. ``text``: True marks it UTF-8 (``DataType: UTF8``), False binary; by
        default a ``str`` is UTF-8 and bytes carry no DataType. ``complete``: the
        ``CompletionState`` to send (True ``COMPLETE``, False ``PARTIAL``; None: none)."""
        raw, data_type, state = _part(data, text, complete)
        self._core.send(raw, data_type, state)

    def feed(self, parts: Iterable[Data], *, text: bool | None = None, complete: bool | None = None) -> None:
        """Send every part of ``parts`` (with backpressure), then close the input."""
        for data in parts:
            self.send(data, text=text, complete=complete)
        self.close_input()

    def feed_in_background(
        self, parts: Iterable[Data], *, text: bool | None = None, complete: bool | None = None
    ) -> None:
        """:meth:`feed` from a thread of its own, while this one reads the output. When
        iterating ``parts`` raises, the session is closed and the output's iteration raises
        that error after the parts received."""
        if self._feeder is not None:
            raise RuntimeError("this session is fed already")

        def run() -> None:
            try:
                self.feed(parts, text=text, complete=complete)
            except SageStreamError:
                pass  # the session failed: its own error comes with its output
            except BaseException as exc:
                self._feed_error = exc
                self._core.close()

        self._feeder = threading.Thread(target=run, name="sagestream-duplex-input", daemon=True)
        self._feeder.start()

    def __iter__(self) -> Iterator[OutputPart]:
        return self

    def __next__(self) -> OutputPart:
        try:
            return next(self._parts)  # type: ignore[no-any-return]
        except StopIteration:
            self._raise_feed_error()
            raise

    def close(self) -> None:
        """Abandon the session now: the stream is reset, unread output dropped (idempotent)."""
        self._core.close()
        with contextlib.suppress(RuntimeError):  # another thread is inside next()
            self._parts.close()

    def read_all(self) -> bytes:
        """Every remaining output part, joined."""
        return b"".join(self)

    def lines(self, **kwargs: Any) -> Iterator[str]:
        """Text lines of the output, across parts (see ``sagestream.reassembly.iter_lines``)."""
        from sagestream import reassembly

        return reassembly.iter_lines(self, **kwargs)

    def sse(self, **kwargs: Any) -> Iterator[ServerSentEvent]:
        """Server-sent events of the output, across parts."""
        from sagestream import reassembly

        return reassembly.iter_sse(self, **kwargs)

    def json_lines(self, **kwargs: Any) -> Iterator[Any]:
        """One JSON value per output line, across parts."""
        from sagestream import reassembly

        return reassembly.iter_json_lines(self, **kwargs)


class _InputClosed:
    """What the asyncio session's ``close_input()`` returns: done already, awaitable at once."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # a generator: awaiting it returns without suspending

    def __repr__(self) -> str:
        return "<input closed>"


_INPUT_CLOSED = _InputClosed()


class AsyncDuplexSession(_SessionBase, AsyncClosing):
    """A bidirectional session, for asyncio: ``await send(...)`` (it waits while the input
    queue is full), ``await close_input()``, and ``async for part in session``. Cancelling the task
    that reads, :meth:`close`, or leaving ``async with`` resets the stream."""

    def __init__(
        self,
        core: Any,
        hub: _core.Hub,
        url: str,
        started: float,
        feed: Iterable[Data] | AsyncIterable[Data] | None = None,
        watch: _observe.CallWatch | None = None,
    ) -> None:
        super().__init__(core, url, started)
        self._hub = hub
        parts = core.aparts(hub, OutputPart)
        self._parts = parts if watch is None else watch.parts(parts, True, self._answer)
        self._feeder: asyncio.Task[None] | None = None
        if feed is not None:
            self._feeder = asyncio.get_running_loop().create_task(self._feed_in_background(feed))

    async def send(self, data: Data, *, text: bool | None = None, complete: bool | None = None) -> None:
        """Send one part (see :meth:`DuplexSession.send`); returns once it is queued."""
        raw, data_type, state = _part(data, text, complete)
        await self._core.send_async(self._hub, raw, data_type, state)

    def close_input(self) -> _InputClosed:  # type: ignore[override]
        """End the input: the endpoint sees its end once the parts sent before arrive.

        The input is closed when this returns; the result may be awaited, as the AWS SDKs'
        asyncio ``close()`` is (``await session.close_input()``), or not."""
        self._core.close_input()
        return _INPUT_CLOSED

    async def feed(
        self,
        parts: Iterable[Data] | AsyncIterable[Data],
        *,
        text: bool | None = None,
        complete: bool | None = None,
    ) -> None:
        """Send every part of ``parts`` (an iterable or async iterable), then close the input."""
        if isinstance(parts, AsyncIterable):
            async for data in parts:
                await self.send(data, text=text, complete=complete)
        else:
            for data in parts:
                await self.send(data, text=text, complete=complete)
        self.close_input()

    async def _feed_in_background(self, parts: Iterable[Data] | AsyncIterable[Data]) -> None:
        try:
            await self.feed(parts)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._feed_error = exc
            self._core.close()

    def __aiter__(self) -> AsyncIterator[OutputPart]:
        return self

    async def __anext__(self) -> OutputPart:
        try:
            return await self._parts.__anext__()  # type: ignore[no-any-return]
        except StopAsyncIteration:
            self._raise_feed_error()
            raise

    def close(self) -> None:
        """Abandon the session now: the stream is reset, unread output dropped (idempotent)."""
        if self._feeder is not None and not self._feeder.done():
            self._feeder.cancel()
        self._core.close()
        self._parts.close()

    async def read_all(self) -> bytes:
        """Every remaining output part, joined."""
        return b"".join([part async for part in self])

    def lines(self, **kwargs: Any) -> AsyncIterator[str]:
        """Text lines of the output, across parts."""
        from sagestream.reassembly import aiter_lines

        return aiter_lines(self, **kwargs)

    def sse(self, **kwargs: Any) -> AsyncIterator[ServerSentEvent]:
        """Server-sent events of the output, across parts."""
        from sagestream.reassembly import aiter_sse

        return aiter_sse(self, **kwargs)

    def json_lines(self, **kwargs: Any) -> AsyncIterator[Any]:
        """One JSON value per output line, across parts."""
        from sagestream.reassembly import aiter_json_lines

        return aiter_json_lines(self, **kwargs)


class Opening:
    """One session's request as both clients prepare it (``arguments``: the client method's
    ``locals()``): the deadline checked, the parameters validated by the operation table, the
    request built for the host the client is configured for, and its clock started. The two
    ways to open it differ only in how they wait."""

    __slots__ = ("after", "bridge", "deadline", "headers", "params", "started", "url")

    def __init__(self, bridge: Bridge, arguments: Mapping[str, Any], endpoint_url: str | None) -> None:
        self.deadline: float | None = _check_deadline(arguments.get("deadline"))
        self.started = time.monotonic()
        self.bridge = bridge
        params = INVOKE_DUPLEX.of_call(arguments)
        self.url, self.headers, self.after = _request(bridge, params, endpoint_url)
        #: What a watch (``sagestream._observe``) is told of the call.
        self.params = {"EndpointName": params["EndpointName"], "TargetVariant": params.get("TargetVariant")}

    def open(self, input: Iterable[Data] | None) -> DuplexSession:
        """Open the session on this thread (blocks until its request is on its way)."""
        bridge = self.bridge
        with _observe.Failures(watch := _observe.call_watch(DUPLEX_OPERATION, self.params, self.url)):
            if not bridge.credentials_fresh():
                bridge.refresh_credentials()
            core = bridge.transport.open_duplex(
                self.url,
                self.headers,
                after=self.after,
                deadline=self.deadline,
                error_limit=bridge.limits.error_body,
            )
        return DuplexSession(core, self.url, self.started, input, watch)

    async def open_async(
        self, hub: _core.Hub, input: Iterable[Data] | AsyncIterable[Data] | None
    ) -> AsyncDuplexSession:
        """Open the session from an asyncio task (credentials refreshed in a worker thread)."""
        bridge = self.bridge
        with _observe.Failures(watch := _observe.call_watch(DUPLEX_OPERATION, self.params, self.url)):
            if not bridge.credentials_fresh():
                await asyncio.to_thread(bridge.refresh_credentials)
            core = await bridge.transport.open_duplex(
                self.url,
                self.headers,
                hub=hub,
                after=self.after,
                deadline=self.deadline,
                error_limit=bridge.limits.error_body,
            )
        return AsyncDuplexSession(core, hub, self.url, self.started, input, watch)


class DuplexCall(Opened[AsyncDuplexSession]):
    """What ``AsyncClient.invoke_bidirectional`` returns: awaitable, and an async context
    manager that closes the session on the way out."""
