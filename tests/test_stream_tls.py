"""The socket fast path over TLS (the BufferedReader sits on an SSL socket)."""

from __future__ import annotations

import ssl
from pathlib import Path

import boto3
import pytest
from _raw_server import CUT, RawServer, payload_frame, stream_response
from _tls import loopback_tls
from botocore.config import Config
from sagestream import Client
from sagestream.exceptions import TruncatedStreamError


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    return loopback_tls(tmp_path_factory.mktemp("tls"))


def test_tls_fast_path(tls: tuple[ssl.SSLContext, Path]) -> None:
    ctx, ca = tls
    parts = [b"%d" % i * 30 for i in range(500)]
    frames = [payload_frame(p) for p in parts]
    cut = [*frames[:3], frames[3][:9]]
    truncated = stream_response(cut, end=False)
    truncated.writes += [0.05, CUT]
    answers = iter([stream_response(frames), stream_response(frames), truncated])
    with RawServer(lambda req: next(answers), tls=ctx) as srv:
        session = boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="us-east-1")
        client = Client(
            session,
            endpoint_url=srv.url,
            verify=str(ca),
            config=Config(retries={"total_max_attempts": 1}, read_timeout=5),
        )
        stream = client.invoke_stream("ep", b"")
        assert client.fast_path, client.fast_path_reason
        assert list(stream) == parts
        assert list(client.invoke_stream("ep", b"")) == parts
        assert srv.connections == 1
        got = []
        with pytest.raises(TruncatedStreamError):
            got.extend(client.invoke_stream("ep", b""))
        assert got == parts[:3]
