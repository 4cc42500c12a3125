"""Answers a call must not trust: a deadline that cuts the retries short, heads that do not
parse, bodies larger than the service would ever send. Each case runs on both clients (and on
the asyncio client's botocore path where it applies), against a scripted loopback server that
counts the requests it saw.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import sagestream
from _raw_server import CUT, LAST_CHUNK, RawServer, Request, Response, chunk, json_error
from botocore.config import Config


def _session() -> boto3.Session:
    return boto3.Session(
        aws_access_key_id="AKIDHOSTILE", aws_secret_access_key="secret", region_name="us-east-1"
    )


def _config(attempts: int = 3) -> Config:
    # Retries allowed: a request sent again shows in the server's count.
    return Config(retries={"max_attempts": attempts, "mode": "standard"}, read_timeout=30, connect_timeout=5)


def _looks(**_: Any) -> None:
    """A user's before-send handler that only looks."""


def _botocore_path(client: Any) -> None:
    """Make ``client`` take botocore's own path (a handler the request path does not know)."""
    client.runtime_client.meta.events.register("before-send", _looks)
    with pytest.warns(sagestream.FallbackWarning, match=r"before-send handler .*_looks"):
        assert not client.fast_path


@dataclass
class Outcome:
    body: bytes | None
    error: BaseException | None
    requests: int


def invoke_sync(url: str, *, deadline: float | None, attempts: int, botocore_path: bool, **kw: Any) -> Any:
    client = sagestream.Client(_session(), endpoint_url=url, config=_config(attempts), **kw)
    if botocore_path:
        _botocore_path(client)
    try:
        return client.invoke("ep", b"{}", deadline=deadline).body
    finally:
        client.close()


def invoke_async(url: str, *, deadline: float | None, attempts: int, botocore_path: bool, **kw: Any) -> Any:
    async def main() -> bytes:
        async with sagestream.AsyncClient(
            _session(), endpoint_url=url, config=_config(attempts), **kw
        ) as client:
            if botocore_path:
                _botocore_path(client)
            return (await client.invoke("ep", b"{}", deadline=deadline)).body

    return asyncio.run(asyncio.wait_for(main(), 60))


#: Client, AsyncClient, AsyncClient on botocore's path (the Rust transport still reads), and
#: Client on botocore's path (botocore sends and reads).
RUNNERS: dict[str, Callable[..., Any]] = {
    "Client": lambda url, **kw: invoke_sync(url, botocore_path=False, **kw),
    "AsyncClient": lambda url, **kw: invoke_async(url, botocore_path=False, **kw),
    "AsyncClient-botocore": lambda url, **kw: invoke_async(url, botocore_path=True, **kw),
    "Client-botocore": lambda url, **kw: invoke_sync(url, botocore_path=True, **kw),
}
#: Where the retries and the error bodies are sagestream's: not the sync client's botocore
#: path, where botocore retries and reads error bodies itself (before any hook could bound them).
OWN_RETRIES = ["Client", "AsyncClient", "AsyncClient-botocore"]


@pytest.fixture(params=OWN_RETRIES)
def runner(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def outcome(
    handler: Callable[[Request], Response],
    runner: str,
    *,
    deadline: float | None = None,
    attempts: int = 3,
    **kw: Any,
) -> Outcome:
    with RawServer(handler) as server:
        try:
            body = RUNNERS[runner](server.url, deadline=deadline, attempts=attempts, **kw)
        except Exception as exc:
            return Outcome(None, exc, len(server.requests))
        return Outcome(body, None, len(server.requests))


def _internal_failure(_: Request) -> Response:
    return json_error(500, "InternalFailure", "the model host is on fire")


# --- the deadline and the retries before it -------------------------------------------------------


def test_giving_up_before_the_deadline_says_why_and_keeps_the_cause(runner: str) -> None:
    """Every answer is a retryable 500: the backoff grows until it would end past the deadline,
    and the call stops there, naming the deadline it was given, caused by the last answer."""
    result = outcome(_internal_failure, runner, deadline=4.0, attempts=40)
    error = result.error
    assert type(error) is sagestream.DeadlineExceededError, repr(error)
    assert "gave up" in str(error), str(error)
    assert "before its 4 s deadline" in str(error), str(error)
    assert isinstance(error.__cause__, sagestream.InternalFailure)
    assert "on fire" in str(error.__cause__)
    assert 1 <= result.requests < 40


def test_a_deadline_reached_in_an_attempt_names_the_deadline_set_and_the_previous_failure(
    runner: str,
) -> None:
    """The first answer is a 500 (its backoff at most 1 s); the second never comes: the error
    names the 5 s the call was given, not what was left of them, and is caused by the 500."""
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        if len(seen) == 1:
            return _internal_failure(request)
        return Response(head_writes=[30.0])

    result = outcome(handler, runner, deadline=5.0, attempts=5)
    error = result.error
    assert type(error) is sagestream.DeadlineExceededError, repr(error)
    assert "within its 5 s deadline" in str(error), str(error)
    assert isinstance(error.__cause__, sagestream.InternalFailure)
    assert result.requests == 2


def test_a_connection_lost_before_giving_up_is_the_cause(runner: str) -> None:
    def handler(_: Request) -> Response:
        return Response(head_writes=[CUT])

    result = outcome(handler, runner, deadline=4.0, attempts=40)
    error = result.error
    assert type(error) is sagestream.DeadlineExceededError, repr(error)
    assert isinstance(error.__cause__, sagestream.ConnectionLostError)


def test_a_call_that_ends_within_its_deadline_is_untouched(runner: str) -> None:
    answers = iter([_internal_failure, lambda _: json_body(b'{"ok": true}')])

    def handler(request: Request) -> Response:
        return next(answers)(request)

    result = outcome(handler, runner, deadline=20.0)
    assert (result.body, result.error, result.requests) == (b'{"ok": true}', None, 2)


def json_body(body: bytes) -> Response:
    return Response(
        headers={"Content-Type": "application/json"}, writes=[body], chunked=False, content_length=len(body)
    )


def test_the_error_pickles_with_its_message() -> None:
    import pickle

    from sagestream._call import gave_up

    error = gave_up(2.0, 0.5, 1.25, 3, sagestream.ConnectionLostError("gone"))
    assert "gave up 0.5 s before its 2 s deadline" in str(error)
    assert "1.25 s backoff" in str(error)
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is sagestream.DeadlineExceededError
    assert str(again) == str(error)


# --- heads that are not HTTP ----------------------------------------------------------------------

_LENGTH_0 = b"Content-Length: 0\r\n\r\n"
#: A hostile server's answer to every request, and what hyper's parser calls it.
MALFORMED_HEADS = {
    "10,000 headers": (
        b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(10_000)) + _LENGTH_0,
        "message head is too large",
    ),
    "a 4 MiB header line": (
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (4 << 20) + b"\r\n" + _LENGTH_0,
        "message head is too large",
    ),
    "NUL in a header value": (
        b"HTTP/1.1 200 OK\r\nX-Nul: a\x00b\r\n" + _LENGTH_0,
        "invalid HTTP header parsed",
    ),
    "invalid status": (b"HTTP/1.1 2x0 OK\r\n" + _LENGTH_0, "invalid HTTP status-code parsed"),
    "two Content-Lengths": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nab",
        "invalid content-length parsed",
    ),
    "an HTTP/0.9 reply": (b'{"not": "an HTTP response"}\n', "invalid HTTP version parsed"),
}


@pytest.mark.parametrize("case", list(MALFORMED_HEADS))
def test_a_head_that_does_not_parse_is_named_and_never_sent_again(case: str, runner: str) -> None:
    head, named = MALFORMED_HEADS[case]

    def handler(_: Request) -> Response:
        return Response(head_writes=[head, 0.05, CUT])

    result = outcome(handler, runner, attempts=3)
    error = result.error
    assert type(error) is sagestream.MalformedResponseError, repr(error)
    assert named in str(error)
    assert "not sent again" in str(error)
    assert result.requests == 1


# --- bodies larger than the service would send ----------------------------------------------------

MiB = 1024 * 1024
#: What the hostile server sends: 512 MiB, one 1 MiB block at a time (the same block each time).
HOSTILE_BYTES = 512 * MiB
_BLOCK = b"x" * MiB


def hostile_body(status: int = 200, *, declared: bool = False) -> Response:
    """An answer whose body is 512 MiB, declared up front (Content-Length) or chunked."""
    headers = {"Content-Type": "application/json"}
    if status >= 300:
        headers["x-amzn-ErrorType"] = "InternalFailure"
    if declared:
        return Response(
            status=status,
            headers=headers,
            writes=[_BLOCK] * (HOSTILE_BYTES // MiB),
            chunked=False,
            content_length=HOSTILE_BYTES,
        )
    return Response(
        status=status, headers=headers, writes=[chunk(_BLOCK)] * (HOSTILE_BYTES // MiB) + [LAST_CHUNK]
    )


@pytest.fixture(params=list(RUNNERS))
def body_runner(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_an_answer_larger_than_invoke_endpoint_allows_is_refused(body_runner: str, declared: bool) -> None:
    result = outcome(lambda _: hostile_body(200, declared=declared), body_runner)
    error = result.error
    assert type(error) is sagestream.ResponseTooLargeError, repr(error)
    assert error.limit == sagestream.ResponseLimits().body == 25 * MiB
    assert "HTTP 200" in str(error)
    assert "ResponseLimits" in str(error)
    assert result.requests == 1


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_an_error_body_past_its_cap_is_refused_and_not_retried(runner: str, declared: bool) -> None:
    result = outcome(lambda _: hostile_body(500, declared=declared), runner)
    error = result.error
    assert type(error) is sagestream.ResponseTooLargeError, repr(error)
    assert error.limit == sagestream.ResponseLimits().error_body == MiB
    assert "HTTP 500" in str(error)
    assert result.requests == 1


@pytest.mark.parametrize("size", [1000, 1001])
def test_the_body_cap_is_configurable_and_exact(body_runner: str, size: int) -> None:
    body = b"y" * size
    limits = sagestream.ResponseLimits(body=1000)
    result = outcome(lambda _: json_body(body), body_runner, response_limits=limits)
    if size <= 1000:
        assert (result.body, result.error) == (body, None)
    else:
        assert type(result.error) is sagestream.ResponseTooLargeError
        assert result.error.limit == 1000
    assert result.requests == 1


def test_the_error_body_cap_is_configurable(runner: str) -> None:
    message = "m" * 5000
    limits = sagestream.ResponseLimits(error_body=4096)
    result = outcome(lambda _: json_error(400, "ValidationError", message), runner, response_limits=limits)
    assert type(result.error) is sagestream.ResponseTooLargeError
    assert result.error.limit == 4096
    limits = sagestream.ResponseLimits(error_body=8192)
    result = outcome(lambda _: json_error(400, "ValidationError", message), runner, response_limits=limits)
    assert type(result.error) is sagestream.ValidationError


@pytest.mark.parametrize("client_class", ["Client", "AsyncClient"])
def test_the_connection_of_an_oversized_answer_is_not_reused(client_class: str) -> None:
    answers = iter([hostile_body(200, declared=True), json_body(b"ok")])

    def handler(_: Request) -> Response:
        return next(answers)

    async def twice_async(url: str) -> tuple[BaseException | None, bytes]:
        async with sagestream.AsyncClient(_session(), endpoint_url=url, config=_config()) as client:
            try:
                await client.invoke("ep", b"{}")
            except sagestream.ResponseTooLargeError as exc:
                first: BaseException | None = exc
            else:
                first = None
            return first, (await client.invoke("ep", b"{}")).body

    with RawServer(handler) as server:
        if client_class == "Client":
            client = sagestream.Client(_session(), endpoint_url=server.url, config=_config())
            with pytest.raises(sagestream.ResponseTooLargeError):
                client.invoke("ep", b"{}")
            assert client.invoke("ep", b"{}").body == b"ok"
            client.close()
        else:
            first, second = asyncio.run(twice_async(server.url))
            assert type(first) is sagestream.ResponseTooLargeError
            assert second == b"ok"
        assert (len(server.requests), server.connections) == (2, 2)


def test_response_limits_are_checked_and_the_error_pickles() -> None:
    import pickle

    with pytest.raises(ValueError, match="error_body"):
        sagestream.ResponseLimits(error_body=-1)
    with pytest.raises(ValueError, match="body"):
        sagestream.ResponseLimits(body=1.5)  # type: ignore[arg-type]
    error = sagestream.ResponseTooLargeError("too much", 42)
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), str(again), again.limit) == (sagestream.ResponseTooLargeError, "too much", 42)


_MEASURE = textwrap.dedent(
    """
    import asyncio, sys
    import boto3, sagestream
    from botocore.config import Config

    url, runner = sys.argv[1], sys.argv[2]
    session = boto3.Session(aws_access_key_id="AKID", aws_secret_access_key="secret", region_name="us-east-1")
    config = Config(retries={"max_attempts": 3, "mode": "standard"}, read_timeout=30)

    def status(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
        raise LookupError(field)

    def measure(call):
        call("warm")  # imports, the connection, the runtime: not what is measured
        before = status("VmRSS:")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # the peak (VmHWM) starts again from now
        try:
            call("ep")
        except sagestream.ResponseTooLargeError:
            pass
        print(status("VmHWM:") - before)

    if runner.startswith("AsyncClient"):
        async def main():
            async with sagestream.AsyncClient(session, endpoint_url=url, config=config) as client:
                if runner.endswith("botocore"):
                    client.runtime_client.meta.events.register("before-send", lambda **_: None)
                loop = asyncio.get_running_loop()
                def call(name):
                    return asyncio.run_coroutine_threadsafe(client.invoke(name, b"{}"), loop).result()
                await asyncio.to_thread(measure, call)
        asyncio.run(main())
    else:
        client = sagestream.Client(session, endpoint_url=url, config=config)
        if runner.endswith("botocore"):
            client.runtime_client.meta.events.register("before-send", lambda **_: None)
        measure(lambda name: client.invoke(name, b"{}"))
    """
)


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's /proc")
@pytest.mark.parametrize(
    ("status", "runner_name"),
    [(200, name) for name in RUNNERS] + [(500, name) for name in OWN_RETRIES],
)
def test_a_hostile_body_leaves_memory_within_a_few_mb_of_the_cap(status: int, runner_name: str) -> None:
    """512 MiB sent chunked (no length to refuse up front): the client's peak memory grows by
    the cap and a few MB of buffers, not by what was sent."""

    def handler(request: Request) -> Response:
        if "/warm/" in request.path:
            return json_body(b"{}")
        return hostile_body(status)

    cap = sagestream.ResponseLimits().body if status == 200 else sagestream.ResponseLimits().error_body
    with RawServer(handler) as server:
        done = subprocess.run(
            [sys.executable, "-c", _MEASURE, server.url, runner_name],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    grown = int(done.stdout.split()[-1])
    assert grown < cap + 4 * MiB, f"peak memory grew by {grown / MiB:.1f} MiB for a {cap / MiB:.0f} MiB cap"
