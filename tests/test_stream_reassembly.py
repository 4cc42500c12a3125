"""ResponseStream.lines() / sse() / json_lines(): reassembly over the stream's own parts."""

from __future__ import annotations

import pytest
from _hypothesis import examples
from _raw_server import RawServer, Request, Response, exception_frame, payload_frame, stream_response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sagestream.exceptions import LineTooLongError, ModelStreamError
from test_stream_raw import make_client

TEXT = "héllo wörld\r\nsecond line ✓\n\nlast line without newline 🚀".encode()


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, prev = [], 0
    for p in [*points, len(data)]:
        pieces.append(data[prev:p])
        prev = p
    return pieces


@pytest.fixture(scope="module")
def server() -> RawServer:
    bodies: dict[str, list[bytes]] = {}

    # What each endpoint's model says it answers with, as a container would.
    content_types = {"sse": "text/event-stream", "jl": "application/jsonlines"}

    def handler(req: Request) -> Response:
        name = req.path.split("/")[2]
        content_type = content_types.get(name, "text/plain")
        return stream_response(
            [payload_frame(p) for p in bodies[name]],
            headers={"X-Amzn-SageMaker-Content-Type": content_type},
        )

    srv = RawServer(handler)
    srv.bodies = bodies  # type: ignore[attr-defined]
    with srv:
        yield srv


@settings(
    max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=12))
def test_lines_any_split(server: RawServer, cuts: list[int]) -> None:
    server.bodies["lines"] = split(TEXT, cuts)  # type: ignore[attr-defined]
    stream = make_client(server.url).invoke_stream("lines", b"")
    assert list(stream.lines()) == [
        "héllo wörld",
        "second line ✓",
        "",
        "last line without newline 🚀",
    ]
    assert stream.metrics.bytes == len(TEXT)
    assert stream.closed


def test_sse_and_json_lines(server: RawServer) -> None:
    sse = b'data: {"token": {"text": "a"}}\n\ndata: {"token": {"text": "b"}}\n\n'
    server.bodies["sse"] = [sse[:7], sse[7:40], sse[40:]]  # type: ignore[attr-defined]
    events = list(make_client(server.url).invoke_stream("sse", b"").sse())
    assert [e.json()["token"]["text"] for e in events] == ["a", "b"]
    jl = b'{"a": 1}\n{"a": 2}\n{"a": 3}'
    server.bodies["jl"] = [jl[:3], jl[3:12], jl[12:]]  # type: ignore[attr-defined]
    assert list(make_client(server.url).invoke_stream("jl", b"").json_lines()) == [
        {"a": i} for i in (1, 2, 3)
    ]


def test_line_bound(server: RawServer) -> None:
    server.bodies["long"] = [b"x" * 1000] * 5  # type: ignore[attr-defined]
    with pytest.raises(LineTooLongError):
        list(make_client(server.url).invoke_stream("long", b"").lines(max_line_bytes=2048))


def test_error_after_lines() -> None:
    frames = [
        payload_frame(b"one\ntw"),
        payload_frame(b"o\n"),
        exception_frame("ModelStreamError", "x", "StreamBroken"),
    ]
    with RawServer(lambda req: stream_response(frames)) as srv:
        lines = make_client(srv.url).invoke_stream("ep", b"").lines()
        assert next(lines) == "one"
        assert next(lines) == "two"
        with pytest.raises(ModelStreamError):
            next(lines)
