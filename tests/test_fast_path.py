"""Which path a client takes, with the botocore that is installed, and why.

A client takes the request path when the request botocore would build — its whole handler
chain, the client's own handlers, nothing sent — is the request the path sends (the proof in
``sagestream._proof``). These tests fail the day a botocore release or a default setting makes a
default client fall back silently; they also play a few such releases (handlers with botocore's
name that add a constant header, a per-call header, rewrite a header or sign elsewhere) and the
user's own handlers, which must be run, so fall back with one warning.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
import sagestream
from _raw_server import RawServer, Request, Response
from botocore.config import Config
from sagestream import FallbackWarning

REGION = "eu-west-1"
CREDENTIALS = {"aws_access_key_id": "AKIDFAST", "aws_secret_access_key": "fast-secret"}

RETRIES: dict[str, dict[str, Any] | None] = {
    "default": None,
    "legacy": {"mode": "legacy"},
    "standard": {"mode": "standard"},
    "adaptive": {"mode": "adaptive"},
    "standard-5": {"mode": "standard", "total_max_attempts": 5},
    "legacy-1": {"mode": "legacy", "max_attempts": 0},
}


def _config(retries: dict[str, Any] | None) -> Config | None:
    return None if retries is None else Config(retries=retries)


def _session() -> boto3.Session:
    return boto3.Session(region_name=REGION, **CREDENTIALS)


def _aio_fast_path(client: sagestream.AsyncClient) -> tuple[bool, str | None]:
    async def main() -> tuple[bool, str | None]:
        async with client:
            return client.fast_path, client.fast_path_reason

    return asyncio.run(main())


@pytest.mark.parametrize("retries", list(RETRIES))
def test_every_retry_mode_takes_the_request_path(retries: str) -> None:
    config = _config(RETRIES[retries])
    client = sagestream.Client(_session(), config=config)
    assert (client.fast_path, client.fast_path_reason) == (True, None)
    aclient = sagestream.AsyncClient(_session(), config=config)
    assert _aio_fast_path(aclient) == (True, None)


def test_a_client_with_nothing_configured_takes_the_request_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's first line on a machine with no AWS set-up at all: the region given, no
    credentials anywhere (they may come later, from the environment of the real program)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    client = sagestream.Client(region_name="us-east-1")
    if client._runtime._request_signer._credentials is not None:
        pytest.skip("credentials were found in this environment")
    if not _signs_with_request_credentials():
        pytest.skip("botocore < 1.34.100 signs only with the client's own credentials")
    assert (client.fast_path, client.fast_path_reason) == (True, None)


def _signs_with_request_credentials() -> bool:
    import inspect

    import botocore.signers

    return "request_credentials" in inspect.getsource(botocore.signers.RequestSigner.sign)


# --- what goes on the wire -------------------------------------------------------------------


def _ok(request: Request) -> Response:
    return Response(
        headers={"Content-Type": "application/json"}, writes=[b"{}"], chunked=False, content_length=2
    )


def _recorded(*calls: Callable[[str], None]) -> list[Request]:
    """What ``calls`` sent, one after the other, to the same server."""
    with RawServer(_ok) as server:
        for call in calls:
            call(server.url)
        return list(server.requests)


def _stock(url: str, config: Config | None, register: Callable[[Any], None] | None = None) -> None:
    client = _session().client("sagemaker-runtime", endpoint_url=url, config=config)
    if register is not None:
        register(client)
    client.invoke_endpoint(EndpointName="ep", Body=b"{}", CustomAttributes="a=b")
    client.close()


#: Headers that differ between any two calls, whoever makes them.
VARYING = {"x-amz-date", "authorization", "amz-sdk-invocation-id"}


def _same(ours: Request, theirs: Request) -> None:
    assert (ours.method, ours.path, ours.body) == (theirs.method, theirs.path, theirs.body)
    assert {k: v for k, v in ours.headers.items() if k not in VARYING} == {
        k: v for k, v in theirs.headers.items() if k not in VARYING
    }


@pytest.mark.parametrize("retries", list(RETRIES))
def test_the_first_attempt_carries_botocores_retry_header(retries: str) -> None:
    """``amz-sdk-request``: ``attempt=1`` before botocore 1.44, ``attempt=1; max=N`` since."""
    config = _config(RETRIES[retries])

    def ours(url: str) -> None:
        with sagestream.Client(_session(), endpoint_url=url, config=config) as client:
            assert client.fast_path, client.fast_path_reason
            client.invoke("ep", b"{}", custom_attributes="a=b")

    mine, stock = _recorded(ours, lambda url: _stock(url, config))
    assert mine.headers["amz-sdk-request"] == stock.headers["amz-sdk-request"]
    _same(mine, stock)


# --- releases of botocore to come, played by handlers with botocore's name --------------------


def _as_botocores(function: Callable[..., None]) -> Callable[..., None]:
    function.__module__ = "botocore.handlers"
    return function


def _add_constant_header(request: Any, **_: Any) -> None:
    request.headers["amz-sdk-future"] = "mode=fast"


def _add_counter_header(counter: Iterator[int]) -> Callable[..., None]:
    def add(request: Any, **_: Any) -> None:
        request.headers["amz-sdk-count"] = str(next(counter))

    return add


def _upper_attributes(params: Any, **_: Any) -> None:
    if "CustomAttributes" in params:
        params["CustomAttributes"] = params["CustomAttributes"].upper()


def _sign_elsewhere(context: Any, **_: Any) -> None:
    context.setdefault("signing", {})["region"] = "eu-west-2"


def _registrar(event: str, handler: Callable[..., None]) -> Callable[[Any], None]:
    def register(client: Any) -> None:
        client.meta.events.register(f"{event}.sagemaker-runtime", _as_botocores(handler))

    return register


def _client_with(url: str, register: Callable[[Any], None]) -> sagestream.Client:
    client = sagestream.Client(_session(), endpoint_url=url)
    register(client.runtime_client)
    return client


def test_a_constant_header_of_a_new_release_is_sent_as_botocore_sends_it() -> None:
    register = _registrar("request-created", _add_constant_header)

    def ours(url: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback, no warning
            client = _client_with(url, register)
            assert (client.fast_path, client.fast_path_reason) == (True, None)
            client.invoke("ep", b"{}", custom_attributes="a=b")

    mine, stock = _recorded(ours, lambda url: _stock(url, None, register))
    assert mine.headers["amz-sdk-future"] == "mode=fast" == stock.headers["amz-sdk-future"]
    _same(mine, stock)


@pytest.mark.parametrize(
    ("event", "handler", "named"),
    [
        ("request-created", _add_counter_header(itertools.count()), "amz-sdk-count header changes"),
        ("before-parameter-build", _upper_attributes, "x-amzn-sagemaker-custom-attributes is"),
        ("before-call", _sign_elsewhere, "botocore signs with AWS4-HMAC-SHA256 eu-west-2/sagemaker"),
    ],
    ids=["per-call header", "rewritten parameter", "another signing region"],
)
def test_a_release_that_changes_the_request_sends_calls_to_botocore(
    event: str, handler: Callable[..., None], named: str
) -> None:
    def ours(url: str) -> None:
        client = _client_with(url, _registrar(event, handler))
        with pytest.warns(FallbackWarning, match="please report it") as caught:
            assert not client.fast_path
        assert named in str(client.fast_path_reason)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # said once
            client.invoke("ep", b"{}", custom_attributes="A=B")
        assert len(caught) == 1

    [sent] = _recorded(ours)
    assert sent.headers["user-agent"].startswith("Boto3/")  # botocore sent it


# --- the user's own handlers ------------------------------------------------------------------


def _user_before_call(**_: Any) -> None:
    """A user's hook: it must run, so botocore must make the call."""


def test_a_user_handler_is_run_by_botocore_and_said_once() -> None:
    seen: list[str] = []

    def hook(model: Any, **_: Any) -> None:
        seen.append(model.name)

    def ours(url: str) -> None:
        client = sagestream.Client(_session(), endpoint_url=url)
        client.runtime_client.meta.events.register("before-call.sagemaker-runtime", hook)
        with pytest.warns(FallbackWarning, match=r"before-call handler .*hook.*without that handler"):
            client.invoke("ep", b"{}")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            client.invoke("ep", b"{}")

    assert len(_recorded(ours)) == 2
    assert seen == ["InvokeEndpoint", "InvokeEndpoint"]


def test_a_handler_registered_later_is_noticed_and_its_removal_too() -> None:
    def ours(url: str) -> None:
        client = sagestream.Client(_session(), endpoint_url=url)
        client.invoke("ep", b"{}")
        assert client.fast_path
        events = client.runtime_client.meta.events
        events.register("before-call.sagemaker-runtime", _user_before_call, unique_id="u")
        with pytest.warns(FallbackWarning):
            assert not client.fast_path
        events.unregister("before-call.sagemaker-runtime", unique_id="u")
        assert (client.fast_path, client.fast_path_reason) == (True, None)

    _recorded(ours)


def test_a_stubber_takes_the_calls_without_a_warning() -> None:
    from botocore.stub import Stubber

    client = sagestream.Client(_session())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Stubber(client.runtime_client) as stubber:
            stubber.add_response(
                "invoke_endpoint", {"Body": b"stubbed"}, {"EndpointName": "ep", "Body": b"x"}
            )
            assert client.invoke("ep", b"x").body == b"stubbed"
            assert not client.fast_path
            assert "botocore.stub" in str(client.fast_path_reason)
        assert client.fast_path


def test_the_proof_leaves_the_users_client_as_it_was() -> None:
    """The probes' handlers come and go, and nothing a probe does reaches another thread's
    call on the same botocore client."""
    runtime = _session().client("sagemaker-runtime")
    client = sagestream.Client.from_boto3(runtime)
    assert client.fast_path
    handlers = runtime.meta.events._emitter._handlers
    for event in ("before-send", "before-call"):
        found = handlers.prefix_search(f"{event}.sagemaker-runtime.InvokeEndpoint")
        names = [getattr(h, "__name__", type(h).__name__) for h in found]
        assert not [n for n in names if n in ("_take_request", "_lend_credentials")]


def test_botocores_path_names_the_botocore_a_member_needs() -> None:
    """On botocore's own path, a member the installed model lacks cannot be sent: the error
    says which botocore has it (the request path sends it whatever the botocore)."""
    model = _session().client("sagemaker-runtime").meta.service_model
    if "SessionId" in model.operation_model("InvokeEndpoint").input_shape.members:
        pytest.skip("this botocore's model has SessionId (1.35.15 and later)")
    client = sagestream.Client(_session(), endpoint_url="http://127.0.0.1:9")
    client.runtime_client.meta.events.register("before-call.sagemaker-runtime", _user_before_call)
    with (
        pytest.warns(FallbackWarning),
        pytest.raises(sagestream.ParamValidationError, match=r"since botocore 1\.35\.15"),
    ):
        client.invoke("ep", b"{}", session_id="sess-1")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is Unix-only")
def test_a_forked_child_opens_its_own_connection() -> None:
    """A child forked after a call does not send on the parent's pooled connection: it makes
    a runtime and a connection of its own, and the parent's connection stays the parent's."""
    from _raw_server import payload_frame, stream_response

    with RawServer(lambda _request: stream_response([payload_frame(b"hi")])) as server:
        client = sagestream.Client(_session(), endpoint_url=server.url, config=_config(None))
        try:
            assert list(client.invoke_stream("ep", b"{}")) == [b"hi"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork of a threaded process
                pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                try:
                    ok = list(client.invoke_stream("ep", b"{}")) == [b"hi"]
                except BaseException:
                    ok = False
                os._exit(0 if ok else 1)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            assert list(client.invoke_stream("ep", b"{}")) == [b"hi"]
            assert server.connections == 2
        finally:
            client.close()
