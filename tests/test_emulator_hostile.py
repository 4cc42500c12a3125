"""The emulator under hostile or careless clients: idle and slow connections, unsigned uploads,
unsigned headers, huge bulk replies, and its embedded S3 left open."""

from __future__ import annotations

import gc
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from sagestream.emulator import Emulator

_NO_RETRY = Config(retries={"total_max_attempts": 1}, read_timeout=30)


def _signed_head(emu: Emulator, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """The request line and headers of a request signed as botocore signs it."""
    url = f"{emu.url}{path}"
    request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers or {}))
    SigV4Auth(Credentials(emu.access_key_id, emu.secret_access_key), "sagemaker", emu.region).add_auth(
        request
    )
    lines = [f"POST {path} HTTP/1.1", f"Host: {emu.host}:{emu.port}"]
    lines += [f"{k}: {v}" for k, v in request.headers.items()]
    return ("\r\n".join(lines) + "\r\n").encode()


def _recv_all(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            break
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture
def bounded() -> Iterator[Emulator]:
    """An emulator with short idle and body bounds."""
    with Emulator(endpoints={"demo": "demo", "echo": "echo"}, idle_timeout=0.5, body_timeout=0.5) as emu:
        yield emu


# --- idle and slow connections --------------------------------------------------------------------


def test_a_connection_that_sends_nothing_is_closed(bounded: Emulator) -> None:
    with socket.create_connection((bounded.host, bounded.port), timeout=30) as sock:
        assert _recv_all(sock) == b""  # closed by the server (a timeout here fails the test)


def test_trickled_headers_are_cut_off(bounded: Emulator) -> None:
    head = _signed_head(bounded, "/endpoints/demo/invocations", b"x") + b"Content-Length: 1\r\n\r\nx"
    with socket.create_connection((bounded.host, bounded.port), timeout=30) as sock:
        sent = 0
        closed = False
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sent += 1
            time.sleep(0.05)  # 20 bytes/s: the headers would take many seconds
            if sent % 10 == 0:
                sock.setblocking(False)
                try:
                    closed = sock.recv(1) == b""
                except BlockingIOError:
                    pass
                except ConnectionResetError:
                    closed = True
                sock.setblocking(True)
                if closed:
                    break
    assert closed
    assert sent < len(head)


def test_a_trickled_body_is_answered_408_and_closed(bounded: Emulator) -> None:
    body = b"x" * 100
    head = _signed_head(bounded, "/endpoints/echo/invocations", body)
    with socket.create_connection((bounded.host, bounded.port), timeout=30) as sock:
        sock.sendall(head + b"Content-Length: 100\r\n\r\n" + body[:10])
        answer = _recv_all(sock)
    assert answer.startswith(b"HTTP/1.1 408")
    assert bounded.request_log[-1].error == "RequestTimeout"


def test_idle_keep_alive_connections_are_closed_and_clients_reconnect(bounded: Emulator) -> None:
    client = bounded.boto3_client(config=_NO_RETRY)
    assert client.invoke_endpoint(EndpointName="echo", Body=b"a")["Body"].read() == b"a"
    deadline = time.monotonic() + 20
    while bounded.server.guard.open_connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert bounded.server.guard.open_connections == 0
    # The pooled connection was closed: urllib3 notices and opens a new one.
    assert client.invoke_endpoint(EndpointName="echo", Body=b"b")["Body"].read() == b"b"


_SERVE_WITH_FEW_FILES = textwrap.dedent(
    """
    import resource, runpy, sys
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
    sys.argv = ["sagestream", "serve", *sys.argv[1:]]
    runpy.run_module("sagestream", run_name="__main__")
    """
)


def test_correct_requests_are_served_while_more_idle_sockets_are_open_than_files_allowed(
    tmp_path: Any,
) -> None:
    """128 open files for the server, 300 idle connections from us: correct requests still pass.

    The idle timeout is far longer than the test: room is made by closing the connection that
    has been idle longest, not by waiting.
    """
    errors = (tmp_path / "stderr").open("w+")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _SERVE_WITH_FEW_FILES,
            "--port",
            "0",
            "--token-delay",
            "0",
            "--idle-timeout",
            "600",
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
        line = proc.stdout.readline()
        assert "listening on " in line, line
        url = line.split("listening on ", 1)[1].split()[0]
        host, port = url.removeprefix("http://").rsplit(":", 1)
        for _ in range(300):
            idle.append(socket.create_connection((host, int(port)), timeout=30))
        client = boto3.session.Session(
            aws_access_key_id="sagestream", aws_secret_access_key="sagestream-secret", region_name="us-east-1"
        ).client("sagemaker-runtime", endpoint_url=url, config=_NO_RETRY)
        for i in range(5):
            body = f"request {i}".encode()
            assert client.invoke_endpoint(EndpointName="any", Body=body, Accept="text/plain")["Body"].read()
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
    assert log.count("out of file descriptors") <= 3


# --- refused on the headers ---------------------------------------------------------------------


@pytest.mark.parametrize("signed", [False, True])
def test_oversized_or_unsigned_uploads_are_refused_before_the_body(emulator: Emulator, signed: bool) -> None:
    """The answer comes while the 24 MiB body has not been sent at all."""
    size = 24 * 1024 * 1024
    path = "/endpoints/echo/invocations"
    head = _signed_head(emulator, path, b"") if signed else f"POST {path} HTTP/1.1\r\nHost: x\r\n".encode()
    with socket.create_connection((emulator.host, emulator.port), timeout=30) as sock:
        sock.sendall(head + f"Content-Length: {size}\r\n\r\n".encode())
        answer = sock.recv(65536)
    status_line, _, rest = answer.partition(b"\r\n")
    if signed:
        assert status_line == b"HTTP/1.1 400 Bad Request"
        assert b"6291456" in rest
    else:
        assert status_line == b"HTTP/1.1 403 Forbidden"
        assert b"MissingAuthenticationTokenException" in rest


def test_memory_stays_flat_under_unsigned_24_mib_uploads(emulator: Emulator) -> None:
    body = b"u" * (24 * 1024 * 1024)
    url = f"{emulator.url}/endpoints/echo/invocations"
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]

        def upload() -> int:
            with urllib3.PoolManager(retries=False) as pool:
                try:
                    return pool.request("POST", url, body=body, timeout=60).status
                except urllib3.exceptions.ProtocolError:
                    return 0  # the server answered and closed before the whole body was sent

        statuses: list[int] = []
        threads = [threading.Thread(target=lambda: statuses.append(upload())) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert set(statuses) <= {403, 0}
    assert 403 in statuses
    # 20 bodies read in full would be 480 MiB; refused on their headers they cost buffers.
    assert peak < 64 * 1024 * 1024, peak


def test_x_amz_headers_added_after_signing_are_refused(emulator: Emulator) -> None:
    client = emulator.boto3_client(config=_NO_RETRY)

    def add_unsigned(request: Any, **_: Any) -> None:
        request.headers["X-Amz-Evil"] = "1"

    client.meta.events.register_first("before-send.sagemaker-runtime.*", add_unsigned)
    with pytest.raises(ClientError) as info:
        client.invoke_endpoint(EndpointName="demo", Body=b"x")
    response = info.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert response["Error"]["Code"] == "InvalidSignatureException"
    assert response["Error"]["Message"].startswith(
        "There were headers present in the request which were not signed"
    )
    assert "x-amz-evil" in response["Error"]["Message"]


def test_other_headers_added_after_signing_reach_the_service(emulator: Emulator) -> None:
    """As with AWS, SigV4 covers only the signed headers: an unsigned X-Amzn-SageMaker-* header
    (here a fault knob in CustomAttributes) is acted on."""
    client = emulator.boto3_client(config=_NO_RETRY)

    def add_unsigned(request: Any, **_: Any) -> None:
        request.headers["X-Amzn-SageMaker-Custom-Attributes"] = "fault=model-error;status=418"

    client.meta.events.register_first("before-send.sagemaker-runtime.*", add_unsigned)
    with pytest.raises(ClientError) as info:
        client.invoke_endpoint(EndpointName="demo", Body=b"x")
    assert info.value.response["Error"]["Code"] == "ModelError"
    assert info.value.response["OriginalStatusCode"] == 418


# --- bulk replies ---------------------------------------------------------------------------------


def test_a_huge_bulk_stream_is_made_as_it_is_read(emulator: Emulator) -> None:
    """64 parts of 16 MiB (1 GiB) read slowly: the emulator holds about one part at a time."""
    head = _signed_head(
        emulator,
        "/endpoints/demo/invocations-response-stream",
        b"",
        {"X-Amzn-SageMaker-Custom-Attributes": "parts=64;part_size=16777216"},
    )
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        with socket.create_connection((emulator.host, emulator.port), timeout=30) as sock:
            sock.sendall(head + b"Content-Length: 0\r\n\r\n")
            received = 0
            while received < 40 * 1024 * 1024:  # two and a half parts, slowly
                data = sock.recv(1024 * 1024)
                assert data
                received += len(data)
                time.sleep(0.01)
            peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert peak < 200 * 1024 * 1024, peak


def test_bulk_invoke_endpoint_over_6_mib_is_a_model_error(runtime_client: Any) -> None:
    with pytest.raises(ClientError) as info:
        runtime_client.invoke_endpoint(
            EndpointName="demo", Body=b"", CustomAttributes="parts=7;part_size=1048576"
        )
    assert info.value.response["Error"]["Code"] == "ModelError"
    assert "InvokeEndpointWithResponseStream" in info.value.response["Error"]["Message"]


# --- S3 and the first hour ------------------------------------------------------------------------


def test_an_s3_client_at_the_runtime_port_is_told_the_s3_url(emulator: Emulator) -> None:
    assert emulator.s3_endpoint_url is not None
    s3 = emulator.boto3_client("s3", endpoint_url=emulator.url, config=_NO_RETRY)
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket="sagestream-async", Key="in/x.json", Body=b"{}")
    message = info.value.response["Error"]["Message"]
    assert emulator.s3_endpoint_url in message
    assert "AWS_ENDPOINT_URL_S3" in message


def test_the_embedded_s3_takes_only_signed_requests(emulator: Emulator, s3_client: Any) -> None:
    url = emulator.s3_endpoint_url
    assert url is not None
    assert url.startswith("http://127.0.0.1:")
    s3_client.put_object(Bucket="sagestream-async", Key="input/kept.json", Body=b"{}")
    with urllib3.PoolManager(retries=False) as pool:
        for method, path in [
            ("PUT", "/sagestream-async/input/evil.json"),
            ("GET", "/sagestream-async/input/kept.json"),
            ("POST", "/moto-api/reset"),
            ("GET", "/moto-api/data.json"),
        ]:
            resp = pool.request(method, url + path, body=b"x" if method == "PUT" else None)
            assert resp.status == 403, (method, path)
            assert b"<Code>AccessDenied</Code>" in resp.data
    wrong = boto3.session.Session(
        aws_access_key_id=emulator.access_key_id, aws_secret_access_key="wrong", region_name=emulator.region
    ).client("s3", endpoint_url=url, config=_NO_RETRY)
    with pytest.raises(ClientError) as info:
        wrong.get_object(Bucket="sagestream-async", Key="input/kept.json")
    assert info.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    # Nothing was reset or written.
    assert s3_client.get_object(Bucket="sagestream-async", Key="input/kept.json")["Body"].read() == b"{}"
    with pytest.raises(ClientError):
        s3_client.head_object(Bucket="sagestream-async", Key="input/evil.json")


def test_the_embedded_s3_stays_on_loopback_when_the_emulator_does_not() -> None:
    with Emulator(host="0.0.0.0", embedded_s3=True, endpoints={"e": "echo"}) as emu:
        assert emu.url.startswith("http://0.0.0.0:")
        url = emu.s3_endpoint_url
        assert url is not None
        assert url.startswith("http://127.0.0.1:")
        assert emu.server.s3_buckets == ["sagestream-examples", "sagestream-async"]


def test_async_without_s3_is_refused_with_how_to_get_one() -> None:
    with Emulator(endpoints={"e": "echo"}) as emu:
        client = emu.boto3_client(config=_NO_RETRY)
        with pytest.raises(ClientError) as info:
            client.invoke_endpoint_async(EndpointName="e", InputLocation="s3://b/k")
    assert info.value.response["Error"]["Code"] == "ValidationError"
    message = info.value.response["Error"]["Message"]
    assert "sagestream[serve]" in message
    assert "--s3-endpoint-url" in message


def test_serve_without_moto_says_so_and_refuses_async() -> None:
    script = textwrap.dedent(
        """
        import runpy, sys
        sys.modules["moto"] = None  # as if the s3 extra were not installed
        sys.argv = ["sagestream", "serve", *sys.argv[1:]]
        runpy.run_module("sagestream", run_name="__main__")
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, "--port", "0", "--endpoint", "e=echo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline()]
        while banner[-1] and not banner[-1].strip().startswith("S3:"):  # or the end of the output
            banner.append(proc.stdout.readline())
        url = banner[0].split("listening on ", 1)[1].split()[0]
        s3_line = banner[-1]
        assert s3_line.strip().startswith("S3:"), banner
        assert "async invocations are refused" in s3_line
        assert "sagestream[serve]" in s3_line
        client = boto3.session.Session(
            aws_access_key_id="sagestream", aws_secret_access_key="sagestream-secret", region_name="us-east-1"
        ).client("sagemaker-runtime", endpoint_url=url, config=_NO_RETRY)
        with pytest.raises(ClientError) as info:
            client.invoke_endpoint_async(EndpointName="e", InputLocation="s3://b/k")
        assert "sagestream[serve]" in info.value.response["Error"]["Message"]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err


def test_the_banner_names_the_s3_url_buckets_and_variables() -> None:
    from _emulator_fixtures import start_serve, stop_serve

    served = start_serve()
    try:
        banner = list(served.banner)
        while not banner[-1].startswith("export AWS_ENDPOINT_URL_S3="):  # the last export line
            banner.append(served.proc.stdout.readline().rstrip("\n"))  # type: ignore[union-attr]
        text = "\n".join(banner)
        assert f"S3: {served.s3_url}" in text
        assert (
            "S3 buckets: sagestream-examples, sagestream-async (async inputs under s3://sagestream-async/input/"
            in text
        )
        assert f"export AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME={served.url}" in text
        assert f"export AWS_ENDPOINT_URL_S3={served.s3_url}" in text
        assert "export AWS_SECRET_ACCESS_KEY=serve-test-secret" in text
        # The input prefix exists: an input can be uploaded without creating a bucket first.
        s3 = served.client("s3")
        s3.put_object(Bucket="sagestream-async", Key="input/req.json", Body=json.dumps({"inputs": "x"}))
    finally:
        stop_serve(served)
