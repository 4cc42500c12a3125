"""Answers a call must not trust: a deadline that cuts the retries short, heads that do not
parse, bodies larger than the service would ever send. Each case runs on both clients (and on
the asyncio client's botocore path where it applies), against a scripted loopback server that
counts the requests it saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import sagestream
from _raw_server import CUT, RawServer, Request, Response, json_error
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


#: Client, AsyncClient, and AsyncClient on botocore's path (the Rust transport still reads).
RUNNERS: dict[str, Callable[..., Any]] = {
    "Client": lambda url, **kw: invoke_sync(url, botocore_path=False, **kw),
    "AsyncClient": lambda url, **kw: invoke_async(url, botocore_path=False, **kw),
    "AsyncClient-botocore": lambda url, **kw: invoke_async(url, botocore_path=True, **kw),
}


@pytest.fixture(params=list(RUNNERS))
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
