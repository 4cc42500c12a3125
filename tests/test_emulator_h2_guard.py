"""The emulator's HTTP/2 ports under hostile clients: connections that send half a preface and
wait, more of them than the process has files, and rapid reset (CVE-2023-44487). They share the
HTTP/1.1 port's idle timeout and its budget of connections, so a correct client on either port
is still answered."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest
import sagestream
from _h2_raw import signed_headers
from botocore.config import Config
from sagestream.emulator import Emulator
from sagestream.emulator.h2server import MAX_PENDING_RESETS

#: The first half of the client connection preface (RFC 9113 section 3.4).
HALF_PREFACE = b"PRI * HTTP/2.0\r\n"
_NO_RETRY = Config(retries={"total_max_attempts": 1}, read_timeout=30, connect_timeout=10)


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (it may have written a GOAWAY or its preface first)."""
    sock.settimeout(30)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    except TimeoutError:
        return False
    return True


def _duplex_answered(emu: Any, url: str) -> bool:
    """Whether a correct bidirectional session on ``url`` is answered (``emu``: an Emulator,
    or anything with its ``region``, ``url`` and credentials)."""
    client = sagestream.Client(
        region_name=emu.region,
        endpoint_url=emu.url,
        aws_access_key_id=emu.access_key_id,
        aws_secret_access_key=emu.secret_access_key,
    )
    try:
        with client.invoke_bidirectional("echo", endpoint_url=url, deadline=30) as session:
            session.send(b"still here")
            session.close_input()
            return [bytes(p) for p in session] == [b"still here"]
    finally:
        client.close()


def test_a_half_preface_is_closed_after_the_idle_timeout() -> None:
    with Emulator(endpoints={"echo": "echo"}, idle_timeout=0.5) as emu:
        port = int(emu.duplex_url.rsplit(":", 1)[1])
        with socket.create_connection((emu.host, port), timeout=30) as sock:
            sock.sendall(HALF_PREFACE)
            assert _closed_by_server(sock)
        deadline = time.monotonic() + 20
        while emu.server.guard.open_connections and time.monotonic() < deadline:
            time.sleep(0.02)
        assert emu.server.guard.open_connections == 0
        assert emu.server.guard.closed_idle >= 1


def test_both_ports_share_one_budget() -> None:
    """A cap of 20 connections (the guard's default is the open-file limit less a margin):
    60 half-open HTTP/2 connections and 10 idle HTTP/1.1 ones make room for correct clients on
    both ports, the longest idle going first, and never more than 20 stay open."""
    with Emulator(endpoints={"echo": "echo"}, idle_timeout=600, max_connections=20) as emu:
        port = int(emu.duplex_url.rsplit(":", 1)[1])
        idle: list[socket.socket] = []
        try:
            for _ in range(60):
                sock = socket.create_connection((emu.host, port), timeout=30)
                sock.sendall(HALF_PREFACE)
                idle.append(sock)
            for _ in range(10):
                idle.append(socket.create_connection((emu.host, emu.port), timeout=30))
            client = emu.boto3_client("sagemaker-runtime", config=_NO_RETRY)
            assert client.invoke_endpoint(EndpointName="echo", Body=b"one")["Body"].read() == b"one"
            assert _duplex_answered(emu, emu.duplex_url)
            guard = emu.server.guard
            assert guard.open_connections <= guard.max_connections == 20
            assert guard.evicted >= 50
        finally:
            for sock in idle:
                sock.close()


_SERVE_WITH_1024_FILES = textwrap.dedent(
    """
    import resource, runpy, sys
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    sys.argv = ["sagestream", "serve", *sys.argv[1:]]
    runpy.run_module("sagestream", run_name="__main__")
    """
)


@pytest.fixture
def files_for_the_test() -> Iterator[None]:
    """Room in this process for 1,100 sockets and the suite's own files."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if wanted < 1500:
        pytest.skip(f"the hard open-file limit ({hard}) leaves no room for 1,100 sockets")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_1100_half_open_http2_connections_starve_neither_port(
    tmp_path: Any, files_for_the_test: None
) -> None:
    """`sagestream serve` with 1,024 files, and 1,100 connections to its HTTP/2 port that sent
    half a preface (its idle timeout far longer than the test): correct clients on both ports
    are answered, room being made by closing the connections idle the longest."""
    errors = (tmp_path / "stderr").open("w+")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _SERVE_WITH_1024_FILES,
            "--port",
            "0",
            "--token-delay",
            "0",
            "--idle-timeout",
            "600",
            "--endpoint",
            "echo=echo",
            "--no-duplex-tls",
            "--s3-endpoint-url",
            "http://127.0.0.1:9",
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    idle: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        url = duplex_url = ""
        deadline = time.monotonic() + 60
        while not duplex_url and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if "listening on " in line:
                url = line.split("listening on ", 1)[1].split()[0]
            elif "bidirectional streams (HTTP/2):" in line:
                duplex_url = line.split("):", 1)[1].strip()
        assert url, "no URL in the banner"
        assert duplex_url, "no HTTP/2 URL in the banner"
        host, port = duplex_url.removeprefix("http://").rsplit(":", 1)
        for _ in range(1100):
            sock = socket.create_connection((host, int(port)), timeout=30)
            sock.sendall(HALF_PREFACE)
            idle.append(sock)
        session = boto3.Session(
            aws_access_key_id="sagestream", aws_secret_access_key="sagestream-secret", region_name="us-east-1"
        )
        client = session.client("sagemaker-runtime", endpoint_url=url, config=_NO_RETRY)
        for i in range(3):
            body = f"request {i}".encode()
            assert client.invoke_endpoint(EndpointName="echo", Body=body)["Body"].read() == body

        served = SimpleNamespace(
            region="us-east-1", url=url, access_key_id="sagestream", secret_access_key="sagestream-secret"
        )
        assert _duplex_answered(served, duplex_url)
        assert proc.poll() is None
    finally:
        for sock in idle:
            sock.close()
        proc.terminate()
        proc.communicate(timeout=30)
        errors.seek(0)
        log = errors.read()
        errors.close()
    assert "Traceback" not in log, log[-3000:]


# --- rapid reset ----------------------------------------------------------------------------------


def _h2_client(port: int) -> tuple[socket.socket, h2.connection.H2Connection]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


def _request_headers(port: int) -> list[tuple[str, str]]:
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", f"127.0.0.1:{port}"),
        (":path", "/endpoints/echo/invocations-bidirectional-stream"),
        ("content-type", "application/vnd.amazon.eventstream"),
    ]


def _read_until_closed(sock: socket.socket, conn: h2.connection.H2Connection) -> list[Any]:
    events: list[Any] = []
    try:
        while data := sock.recv(65536):
            events += conn.receive_data(data)
    except (ConnectionResetError, BrokenPipeError):
        pass
    return events


def test_rapid_reset_is_told_to_calm_down_and_others_are_still_served() -> None:
    with Emulator(endpoints={"echo": "echo"}) as emu:
        port = int(emu.duplex_url.rsplit(":", 1)[1])
        sock, conn = _h2_client(port)
        with sock:
            headers = _request_headers(port)
            for _ in range(5000):
                stream_id = conn.get_next_available_stream_id()
                conn.send_headers(stream_id, headers)
                conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
            sock.sendall(conn.data_to_send())
            events = _read_until_closed(sock, conn)
        goaways = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
        assert [g.error_code for g in goaways] == [h2.errors.ErrorCodes.ENHANCE_YOUR_CALM]
        assert emu.server.duplex.calmed == 1
        assert _duplex_answered(emu, emu.duplex_url)


def test_a_client_resetting_its_sessions_at_once_is_not_a_flood() -> None:
    """150 sessions open on one connection (every handler waiting for input), all reset at
    once: below the bound, so the connection stays and serves the next session."""
    count = 150
    assert count < MAX_PENDING_RESETS
    with Emulator(endpoints={"echo": "echo"}) as emu:
        port = int(emu.duplex_url.rsplit(":", 1)[1])
        sock, conn = _h2_client(port)
        with sock:
            streams = []
            for _ in range(count):
                headers, _ = signed_headers(
                    emu.duplex_url,
                    "echo",
                    access_key=emu.access_key_id,
                    secret_key=emu.secret_access_key,
                    region=emu.region,
                )
                stream_id = conn.get_next_available_stream_id()
                conn.send_headers(stream_id, headers)
                streams.append(stream_id)
            sock.sendall(conn.data_to_send())
            answered: set[int] = set()
            while len(answered) < count:  # every handler runs: each answered 200, waits for input
                for event in conn.receive_data(sock.recv(65536)):
                    assert not isinstance(event, h2.events.StreamEnded), event
                    if isinstance(event, h2.events.ResponseReceived):
                        assert dict(event.headers)[":status"] == "200"
                        answered.add(event.stream_id)
                sock.sendall(conn.data_to_send())
            for stream_id in streams:
                conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
            conn.ping(b"12345678")
            sock.sendall(conn.data_to_send())
            pinged = False
            while not pinged:
                for event in conn.receive_data(sock.recv(65536)):
                    assert not isinstance(event, h2.events.ConnectionTerminated), event
                    pinged = pinged or isinstance(event, h2.events.PingAckReceived)
        assert emu.server.duplex.calmed == 0
