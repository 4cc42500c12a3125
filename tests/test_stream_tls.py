"""The socket fast path over TLS (the BufferedReader sits on an SSL socket)."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import boto3
import pytest
from _raw_server import CUT, RawServer, payload_frame, stream_response
from botocore.config import Config
from sagestream import Client
from sagestream.exceptions import TruncatedStreamError


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    crypto = pytest.importorskip("cryptography")
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    d = tmp_path_factory.mktemp("tls")
    cert_path, key_path = d / "cert.pem", d / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_path, key_path)
    return ctx, cert_path


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
        assert stream._owner.fast_path
        assert list(stream) == parts
        assert list(client.invoke_stream("ep", b"")) == parts
        assert srv.connections == 1
        got = []
        with pytest.raises(TruncatedStreamError):
            got.extend(client.invoke_stream("ep", b""))
        assert got == parts[:3]
