"""Spans for the drop-in: stock boto3 / aiobotocore response streams decoded by ``patch_botocore()``.

botocore makes the call; its client's ``_make_api_call`` is wrapped (only for
InvokeEndpointWithResponseStream on sagemaker-runtime, and only while the drop-in is in effect)
to note when the call started and what it asked. The span is opened when the ``Body`` is first
iterated (backdated to the call's start) and ends with the stream, as a sagestream client's
does; a call that fails before its answer gets its span at once. A body never iterated makes no
span: nothing was read. sagestream's own clients, which read botocore's body themselves on
botocore's path, are not traced twice: their calls are skipped here while they wait for their
answer.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any

from sagestream import _patch, _proof

if TYPE_CHECKING:
    from collections.abc import Callable

    from sagestream.otel._calls import Call, Telemetry

__all__ = ["install", "uninstall"]

STREAM_OPERATION = "InvokeEndpointWithResponseStream"

#: The telemetry the wrappers report to (None: they pass calls straight through).
_telemetry: Telemetry | None = None
#: ``(class, original)`` of each wrapped ``_make_api_call``, to put back.
_wrapped: list[tuple[type, Any]] = []


def _applies(client: Any, operation_name: str) -> Telemetry | None:
    telemetry = _telemetry
    if telemetry is None or operation_name != STREAM_OPERATION or not _patch.is_patched():
        return None
    if getattr(client.meta.service_model, "service_name", None) != "sagemaker-runtime":
        return None
    if telemetry.inside_call():  # a sagestream client on botocore's path: its own span
        return None
    if _proof.probing():  # a client proving its request path: nothing is sent
        return None
    return telemetry


def _opener(
    telemetry: Telemetry, client: Any, params: dict[str, Any], started: float, response: Any
) -> Callable[[], Call]:
    """What the patched iterator calls on its first loop: the call's span, begun at ``started``."""

    def open_call() -> Call:
        call = telemetry.call(STREAM_OPERATION, params, client.meta.endpoint_url, started=started)
        meta = response.get("ResponseMetadata") or {}
        status = int(meta.get("HTTPStatusCode") or 200)
        call.answered(status, meta.get("HTTPHeaders") or {}, int(meta.get("RetryAttempts") or 0) + 1)
        return call

    return open_call


class _Watch:
    """One drop-in call while botocore makes it: a failure before its answer gets its span at
    once; an answer's ``Body`` is watched, to open the span when it is first iterated."""

    __slots__ = ("client", "params", "started", "telemetry")

    def __init__(self, telemetry: Telemetry, client: Any, params: dict[str, Any]) -> None:
        self.telemetry = telemetry
        self.client = client
        self.params = params
        self.started = time.monotonic()

    def __enter__(self) -> _Watch:
        return self

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        if isinstance(error, Exception):
            endpoint_url = self.client.meta.endpoint_url
            self.telemetry.call(STREAM_OPERATION, self.params, endpoint_url, started=self.started).failed(
                error
            )

    def answered(self, response: Any) -> Any:
        """``response``, its ``Body`` watched."""
        body = response.get("Body") if isinstance(response, dict) else None
        if body is not None and hasattr(body, "__dict__"):
            opener = _opener(self.telemetry, self.client, self.params, self.started, response)
            _patch.watch_stream(body, opener)
        return response


def _wrap_sync(original: Any) -> Any:
    @functools.wraps(original)
    def _make_api_call(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        telemetry = _applies(self, operation_name)
        if telemetry is None:
            return original(self, operation_name, api_params)
        with _Watch(telemetry, self, api_params) as watch:
            response = original(self, operation_name, api_params)
        return watch.answered(response)

    return _make_api_call


def _wrap_async(original: Any) -> Any:
    @functools.wraps(original)
    async def _make_api_call(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        telemetry = _applies(self, operation_name)
        if telemetry is None:
            return await original(self, operation_name, api_params)
        with _Watch(telemetry, self, api_params) as watch:
            response = await original(self, operation_name, api_params)
        return watch.answered(response)

    return _make_api_call


def install(telemetry: Telemetry) -> None:
    """Report drop-in streams to ``telemetry`` (wrapping botocore's, and aiobotocore's, client)."""
    global _telemetry
    _telemetry = telemetry
    from botocore.client import BaseClient

    targets: list[tuple[type, Callable[[Any], Any]]] = [(BaseClient, _wrap_sync)]
    try:
        from aiobotocore.client import AioBaseClient
    except ImportError:
        pass
    else:
        targets.append((AioBaseClient, _wrap_async))
    done = {cls for cls, _ in _wrapped}
    for cls, wrap in targets:
        if cls in done:
            continue
        original = cls.__dict__["_make_api_call"]
        _wrapped.append((cls, original))
        cls._make_api_call = wrap(original)  # type: ignore[attr-defined]


def uninstall() -> None:
    """Stop reporting, and put botocore's methods back unless something wrapped them since (then
    the wrappers stay, passing every call straight through, and are used again by ``install``)."""
    global _telemetry
    _telemetry = None
    kept = []
    for cls, original in _wrapped:
        current = cls.__dict__.get("_make_api_call")
        if getattr(current, "__wrapped__", None) is original:
            cls._make_api_call = original  # type: ignore[attr-defined]
        else:
            kept.append((cls, original))
    _wrapped[:] = kept
