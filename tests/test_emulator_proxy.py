"""The proxy model: a SageMaker-compatible container behind the emulator."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from botocore.config import Config
from botocore.exceptions import ClientError
from sagestream.emulator import Emulator


class Container:
    """A tiny container: ``GET /ping``, ``POST /invocations`` streaming chunks on cue."""

    def __init__(self) -> None:
        self.release = threading.Event()  # the second chunk waits for it
        self.seen_headers: dict[str, str] = {}
        self._loop = asyncio.new_event_loop()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None

    async def _ping(self, request: web.Request) -> web.Response:
        return web.Response(text="")

    async def _invocations(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen_headers = dict(request.headers)
        if body == b"fail":
            return web.Response(status=400, text="container says no")
        if body in (b"die", b"garble"):
            # Two good chunks, then the connection reset or a malformed chunk header.
            transport = request.transport
            assert transport is not None
            transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            await asyncio.sleep(0.05)
            transport.write(b"3\r\none\r\n3\r\ntwo\r\n")
            await asyncio.sleep(0.05)
            if body == b"die":
                transport.abort()
            else:
                transport.write(b"zz\r\nthree\r\n0\r\n\r\n")
            await asyncio.sleep(1)
            return web.Response()
        resp = web.StreamResponse(
            headers={
                "Content-Type": "application/x-container",
                "X-Amzn-SageMaker-Custom-Attributes": "from=container",
            }
        )
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b"first:" + body)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.release.wait, 10)
        await resp.write(b"second")
        await resp.write(b"third")
        await resp.write_eof()
        return resp

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/ping", self._ping)
        app.router.add_post("/invocations", self._invocations)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.SockSite(self._runner, self._sock).start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def __enter__(self) -> Container:
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()


@pytest.fixture(scope="module")
def container() -> Iterator[Container]:
    with Container() as c:
        yield c


@pytest.fixture(scope="module")
def proxied(container: Container) -> Iterator[Any]:
    # A port with nothing listening, for the unreachable container.
    with socket.create_server(("127.0.0.1", 0)) as probe:
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with Emulator(endpoints={"proxy": container.url, "dead": dead}) as emu:
        yield emu.boto3_client(config=Config(retries={"total_max_attempts": 1}))


def test_stream_forwards_each_chunk_as_it_arrives(container: Container, proxied: Any) -> None:
    container.release.clear()
    resp = proxied.invoke_endpoint_with_response_stream(
        EndpointName="proxy", Body=b"hello", ContentType="text/plain", CustomAttributes="k=v"
    )
    assert resp["ContentType"] == "application/x-container"
    assert resp["CustomAttributes"] == "from=container"
    events = iter(resp["Body"])
    # The first part arrives while the container is still holding back the rest.
    assert next(events)["PayloadPart"]["Bytes"] == b"first:hello"
    container.release.set()
    assert [e["PayloadPart"]["Bytes"] for e in events] == [b"second", b"third"]
    assert container.seen_headers["X-Amzn-SageMaker-Custom-Attributes"] == "k=v"
    assert container.seen_headers["Content-Type"] == "text/plain"


def test_invoke_joins_the_reply(container: Container, proxied: Any) -> None:
    container.release.set()
    resp = proxied.invoke_endpoint(EndpointName="proxy", Body=b"x", ContentType="text/plain")
    assert resp["Body"].read() == b"first:xsecondthird"
    assert resp["ContentType"] == "application/x-container"


@pytest.mark.parametrize("how", [b"die", b"garble"])
def test_container_breaking_off_is_a_stream_broken_error(proxied: Any, how: bytes) -> None:
    """As the service reports it: the parts so far, then ModelStreamError StreamBroken."""
    from botocore.exceptions import EventStreamError

    resp = proxied.invoke_endpoint_with_response_stream(EndpointName="proxy", Body=how)
    got: list[bytes] = []
    try:
        with pytest.raises(EventStreamError) as info:
            got.extend(event["PayloadPart"]["Bytes"] for event in resp["Body"])
    finally:
        resp["Body"].close()
    assert got == [b"one", b"two"]
    assert info.value.response["Error"]["Code"] == "ModelStreamError"
    assert "broke" in info.value.response["Error"]["Message"]

    with pytest.raises(ClientError) as whole:
        proxied.invoke_endpoint(EndpointName="proxy", Body=how)
    assert whole.value.response["Error"]["Code"] == "ModelError"
    assert whole.value.response["OriginalStatusCode"] == 500


def test_container_error_is_a_model_error(proxied: Any) -> None:
    with pytest.raises(ClientError) as info:
        proxied.invoke_endpoint_with_response_stream(EndpointName="proxy", Body=b"fail")
    response = info.value.response
    assert response["Error"]["Code"] == "ModelError"
    assert response["OriginalStatusCode"] == 400
    assert response["OriginalMessage"] == "container says no"


def test_unreachable_container_is_not_ready(proxied: Any) -> None:
    with pytest.raises(ClientError) as info:
        proxied.invoke_endpoint(EndpointName="dead", Body=b"x")
    assert info.value.response["Error"]["Code"] == "ModelNotReadyException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
