"""The synchronous client: a boto3 session in, payload parts out, typed errors.

Each call runs on the request path (:mod:`sagestream._call`: Rust sends and signs, the calling
thread waits with the GIL released), unless the botocore client holds machinery that path does
not reproduce; then botocore sends it and sagestream decodes the body (:mod:`._transport`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sagestream import _jobs, _observe
from sagestream._base import BaseClient
from sagestream._botocore import Bridge
from sagestream._call import Call, send
from sagestream._jobs import InferenceJob
from sagestream._operations import (
    AsyncAnswer,
    InvokeResult,
    parse_new_session,
)
from sagestream._s3 import BotoS3
from sagestream._stream import Closing, ResponseStream
from sagestream._transport import botocore_errors, open_body, read_capped
from sagestream.service import INVOKE, INVOKE_ASYNC, INVOKE_STREAM

if TYPE_CHECKING:
    from collections.abc import Iterable  # noqa: F401 (named in Client's base)

    from sagestream._duplex import Data, DuplexSession  # noqa: F401 (likewise)

__all__ = ["Client", "InvokeResult", "parse_new_session", "stream_from_boto3"]


class Client(
    BaseClient[InvokeResult, ResponseStream, InferenceJob, "DuplexSession", "Iterable[Data]"], Closing
):
    """Streaming client for SageMaker AI endpoints on top of a botocore ``sagemaker-runtime`` client.

    botocore resolves the endpoint, the credentials and the retry policy and parses error
    answers; sagestream sends and signs the requests and decodes the response stream in Rust.

    ``verify`` is botocore's: ``False`` skips TLS certificate checks, a path names a CA bundle.
    ``observer`` is told of each attempt of each call (:class:`sagestream.AttemptObserver`).
    ``response_limits`` bounds what an answer may bring into memory
    (:class:`sagestream.ResponseLimits`: 25 MiB for a body, 1 MiB for an error's, by default).
    """

    _bridge: Bridge

    def _open(self) -> None:
        self._new_bridge()
        self._s3 = BotoS3(self._new_s3, self._bridge.limits)

    @property
    def region_name(self) -> str:
        """The client's region."""
        return str(self._runtime.meta.region_name)

    @property
    def runtime_client(self) -> Any:
        """The underlying botocore ``sagemaker-runtime`` client."""
        return self._runtime

    @property
    def fast_path(self) -> bool:
        """Whether calls take the request path (see :attr:`fast_path_reason` when not)."""
        return self._bridge.fast()

    def close(self) -> None:
        """Close the connection pools (open streams keep their connections until they end)."""
        if self._bridge.transport is not None:
            self._bridge.transport.close()
        close = getattr(self._runtime, "close", None)
        if close is not None:
            close()

    # --- sending ---------------------------------------------------------------------------

    def _send(
        self, operation: str, params: dict[str, Any], *, stream: bool = False, deadline: float | None = None
    ) -> tuple[Call, Any, dict[str, Any]]:
        """One call, on this thread: its last response (None when botocore sent it) and the
        botocore-style answer of its headers (with the body read, when botocore read it)."""
        watch = None if _observe.watcher is None else self._watch(operation, params)
        started = time.monotonic()
        call = Call(
            self._bridge, operation, params, stream=stream, deadline=deadline, started=started, watch=watch
        )
        if watch is None and self._bridge.fast():
            return call, *send(call)
        with _observe.Failures(watch):
            return call, *self._sent(call)

    def _sent(self, call: Call) -> tuple[Any, dict[str, Any]]:
        """The call, watched or on botocore's path."""
        if self._bridge.fast():
            response, answer = send(call)
            return response, answer
        answer = self._via_botocore(call)
        if call.watch is not None:
            _observe.answered_botocore(call.watch, answer)
        return None, answer

    def _via_botocore(self, call: Call) -> dict[str, Any]:
        """botocore's own call: its parsed answer, a whole body read within the limit."""
        bridge = self._bridge
        operation = call.operation
        params = bridge.for_botocore(operation, call.params)
        with botocore_errors(operation):
            answer: dict[str, Any] = getattr(self._runtime, bridge.api_method(bridge.routes[operation]))(
                **params
            )
            body = answer.get("Body")
            if call.mode == "whole" and body is not None and not isinstance(body, bytes):
                answer["Body"] = read_capped(answer, bridge.limits.body)  # (botocore's Stubber answers bytes)
        return answer

    # --- operations ------------------------------------------------------------------------

    def _invoke_stream(self, arguments: dict[str, Any]) -> ResponseStream:
        params = self._params(INVOKE_STREAM, arguments, arguments["extra"])
        call, response, answer = self._send(
            INVOKE_STREAM.name, params, stream=True, deadline=arguments["deadline"]
        )
        if response is not None:
            return ResponseStream(self._parts(call, response.parts(), False), answer, started=call.started)
        read_timeout = self._runtime.meta.config.read_timeout
        with _observe.Failures(call.watch):
            parts, owner = open_body(
                answer["Body"]._raw_stream, deadline=call.remaining(), read_timeout=read_timeout
            )
        parts = self._parts(call, parts, False)
        return ResponseStream(parts, answer, started=call.started, on_close=lambda: owner.release(False))

    def _invoke(self, arguments: dict[str, Any]) -> InvokeResult:
        params = self._params(INVOKE, arguments, arguments["extra"])
        call, response, answer = self._send(INVOKE.name, params, deadline=arguments["deadline"])
        return self._invoke_result(call, response, answer)

    def _invoke_async_call(self, params: dict[str, Any]) -> AsyncAnswer:
        """InvokeEndpointAsync itself (the job handles' submit step)."""
        call, response, answer = self._send(INVOKE_ASYNC.name, params)
        return self._async_answer(call, response, answer)

    def _invoke_async(self, arguments: dict[str, Any]) -> InferenceJob:
        input, prefix, extra = arguments["input"], arguments["input_prefix"], arguments["extra"]
        return _jobs.submit(
            self._s3, self._invoke_async_call, arguments, input=input, input_prefix=prefix, extra=extra
        )

    def _invoke_bidirectional(self, arguments: dict[str, Any]) -> DuplexSession:
        from sagestream._duplex import Opening

        endpoint_url = arguments["endpoint_url"] or self.duplex_endpoint_url
        return Opening(self._bridge, arguments, endpoint_url).open(arguments["input"])


def stream_from_boto3(response: dict[str, Any], *, deadline: float | None = None) -> ResponseStream:
    """sagestream's stream over a stock boto3 ``invoke_endpoint_with_response_stream`` response,
    on the same connection: parts as ``bytes``, ``.lines()`` / ``.sse()`` / ``.json_lines()``,
    metrics and sagestream's typed errors, decoded in Rust. The response's ``Body`` must not
    have been iterated yet."""
    body = response.get("Body") if isinstance(response, dict) else None
    raw = getattr(body, "_raw_stream", None)
    if raw is None or not hasattr(raw, "stream"):
        raise TypeError("expected the response of a boto3 invoke_endpoint_with_response_stream call")
    read_timeout = None
    parts, owner = open_body(raw, deadline=deadline, read_timeout=read_timeout)
    # A copy: what the stream says of its answer, read when asked for, is the response as it is now.
    answer = dict(response)
    return ResponseStream(parts, answer, started=time.monotonic(), on_close=lambda: owner.release(False))
