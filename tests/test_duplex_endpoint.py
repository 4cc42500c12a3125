"""Where a bidirectional session connects: a client given a host of its own (``endpoint_url=``, a
VPC endpoint, a proxy, the emulator) keeps its sessions on that host, never the public endpoint;
``sagestream duplex --endpoint-url`` does the same. And the asyncio session's ``close_input()``
may be awaited, as the AWS SDKs' ``close()`` is."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import sagestream
from _cli_helpers import aws_env, run_cli, use_aws_env
from sagestream import _duplex
from sagestream.emulator import Emulator

HOST = "127.0.0.3"  # a loopback address of its own: the emulator's tests listen on 127.0.0.1


class _Listener:
    """Accepts connections on ``HOST``:8443 and hangs up at once, counting them."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((HOST, _duplex.PORT))
            self.sock.listen(8)
        except OSError:
            self.sock.close()
            raise
        self.accepted = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the thread
        self.sock.close()
        self.thread.join(10)


@pytest.fixture
def listener() -> Iterator[_Listener]:
    try:
        server = _Listener()
    except OSError as exc:
        pytest.skip(f"cannot listen on {HOST}:{_duplex.PORT}: {exc}")
    yield server
    server.close()


def _client(endpoint_url: str | None = None) -> sagestream.Client:
    return sagestream.Client(
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
    )


def _url(client: sagestream.Client, explicit: str | None = None) -> str:
    url, _, _ = _duplex.request_for(
        client._bridge,
        "ep",
        target_variant=None,
        model_invocation_path=None,
        model_query_string=None,
        endpoint_url=explicit,
    )
    return url


def test_a_configured_host_is_the_sessions_host(monkeypatch: pytest.MonkeyPatch) -> None:
    use_aws_env(monkeypatch)
    path = "/endpoints/ep/invocations-bidirectional-stream"
    assert _url(_client()) == "https://runtime.sagemaker.us-east-1.amazonaws.com:8443" + path
    assert _url(_client("https://vpce-1.runtime.sagemaker.us-east-1.vpce.amazonaws.com")) == (
        "https://vpce-1.runtime.sagemaker.us-east-1.vpce.amazonaws.com:8443" + path
    )
    assert _url(_client("http://127.0.0.1:8080/")) == "http://127.0.0.1:8443" + path
    assert _url(_client("http://[::1]:8080")) == "http://[::1]:8443" + path
    # Any way botocore is given the host counts: here the environment.
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "https://proxy.example:9000")
    assert _url(_client()) == "https://proxy.example:8443" + path
    # This operation's own settings come first.
    monkeypatch.setenv(_duplex.ENDPOINT_ENV, "http://127.0.0.1:8081")
    assert _url(_client("http://127.0.0.1:8080")) == "http://127.0.0.1:8081" + path
    assert _url(_client(), "http://h2.example:1") == "http://h2.example:1" + path


def test_a_session_reaches_the_configured_host(monkeypatch: pytest.MonkeyPatch, listener: _Listener) -> None:
    use_aws_env(monkeypatch)
    client = _client(f"http://{HOST}:1")
    # Opening or reading fails (the listener hangs up), whichever comes first.
    with pytest.raises(sagestream.SageStreamError), client.invoke_bidirectional("ep", deadline=10) as session:
        list(session)
    assert listener.accepted >= 1


def test_the_cli_endpoint_url_reaches_duplex(listener: _Listener) -> None:
    env = aws_env(
        AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret", AWS_DEFAULT_REGION="us-east-1"
    )
    done = run_cli(
        "duplex", "ep", "--endpoint-url", f"http://{HOST}:1", "--deadline", "10", input=b"", env=env
    )
    assert done.returncode == 1, done.stderr
    assert listener.accepted >= 1
    assert b"amazonaws.com" not in done.stderr


async def test_the_asyncio_sessions_close_input_may_be_awaited(duplex_emulator: Emulator) -> None:
    client = sagestream.AsyncClient(
        region_name=duplex_emulator.region,
        endpoint_url=duplex_emulator.url,
        aws_access_key_id=duplex_emulator.access_key_id,
        aws_secret_access_key=duplex_emulator.secret_access_key,
        duplex_endpoint_url=duplex_emulator.duplex_url,
    )
    async with client, client.invoke_bidirectional("echo") as session:
        await session.send("one")
        await session.close_input()  # as the AWS SDKs' close()
        assert session.input_closed
        session.close_input()  # and without await, as before: nothing is left pending
        assert [bytes(part) async for part in session] == [b"one"]
