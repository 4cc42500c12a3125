"""A raw HTTP/2 client for the emulator's bidirectional port, to send what no SDK sends: event
signatures that break the chain, a request signed the Java/JavaScript SDKs' way
(``x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-EVENTS``), a body that is not an event
stream. The request is signed by botocore's ``SigV4Auth``; the events are signed here, as the
AWS SigV4 documentation for event streams describes."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from sagestream.eventstream import decode, encode

STREAMING = "STREAMING-AWS4-HMAC-SHA256-EVENTS"


class _StreamingSigV4(SigV4Auth):
    def payload(self, request: Any) -> str:
        return STREAMING


def signed_headers(
    url: str,
    endpoint: str,
    *,
    access_key: str,
    secret_key: str,
    region: str,
    streaming: bool = False,
    extra: dict[str, str] | None = None,
) -> tuple[list[tuple[str, str]], str]:
    """The request headers (pseudo-headers first) and the seed signature."""
    parts = urlsplit(url)
    path = f"/endpoints/{endpoint}/invocations-bidirectional-stream"
    request = AWSRequest(method="POST", url=f"{url}{path}", data=b"")
    request.headers["Content-Type"] = "application/vnd.amazon.eventstream"
    for name, value in (extra or {}).items():
        request.headers[name] = value
    if streaming:
        request.headers["X-Amz-Content-SHA256"] = STREAMING
    auth = (_StreamingSigV4 if streaming else SigV4Auth)(
        Credentials(access_key, secret_key), "sagemaker", region
    )
    auth.add_auth(request)
    seed = re.search(r"Signature=([0-9a-f]+)", request.headers["Authorization"]).group(1)  # type: ignore[union-attr]
    headers = [(":method", "POST"), (":scheme", parts.scheme), (":authority", parts.netloc), (":path", path)]
    headers += [(k.lower(), v) for k, v in request.headers.items() if k.lower() != "host"]
    return headers, seed


def _key(secret: str, day: str, region: str) -> bytes:
    key = hmac.new(("AWS4" + secret).encode(), day.encode(), hashlib.sha256).digest()
    for part in (region, "sagemaker", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


@dataclass
class Chain:
    """Signs events one after another, from ``seed``."""

    seed: str
    secret_key: str
    region: str
    last: str = field(init=False)

    def __post_init__(self) -> None:
        self.last = self.seed

    def sign(self, inner: bytes, when: dt.datetime | None = None, *, secret: str | None = None) -> bytes:
        when = (when or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
        millis = int(when.timestamp()) * 1000
        date_header = b"\x05:date\x08" + struct.pack(">q", millis)
        stamp = when.strftime("%Y%m%dT%H%M%SZ")
        sts = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                stamp,
                f"{stamp[:8]}/{self.region}/sagemaker/aws4_request",
                self.last,
                hashlib.sha256(date_header).hexdigest(),
                hashlib.sha256(inner).hexdigest(),
            ]
        )
        signature = hmac.new(
            _key(secret or self.secret_key, stamp[:8], self.region), sts.encode(), hashlib.sha256
        )
        self.last = signature.hexdigest()
        return encode([(":date", when), (":chunk-signature", signature.digest())], inner)


def payload_part(data: bytes, data_type: str | None = None, state: str | None = None) -> bytes:
    """An inner PayloadPart message."""
    headers: list[tuple[str, Any]] = [(":message-type", "event"), (":event-type", "PayloadPart")]
    if data_type:
        headers.append(("DataType", data_type))
    if state:
        headers.append(("CompletionState", state))
    headers.append((":content-type", "application/octet-stream"))
    return encode(headers, data)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def messages(self) -> list[Any]:
        return decode(self.body) if self.status == 200 else []


async def exchange(
    url: str, headers: list[tuple[str, str]], frames: list[bytes], *, timeout: float = 20
) -> Answer:
    """Send the request and ``frames`` (then end the stream); the whole answer."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    stream_id = conn.get_next_available_stream_id()
    conn.send_headers(stream_id, headers)
    for frame in frames:
        conn.send_data(stream_id, frame)
    conn.end_stream(stream_id)
    writer.write(conn.data_to_send())
    status, answer_headers, body = 0, {}, bytearray()

    async def read() -> None:
        nonlocal status
        while True:
            data = await reader.read(65536)
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    answer_headers.update({str(k): str(v) for k, v in event.headers})
                    status = int(answer_headers[":status"])
                elif isinstance(event, h2.events.DataReceived):
                    body.extend(event.data)
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    writer.write(conn.data_to_send())
                    return
            writer.write(conn.data_to_send())

    try:
        await asyncio.wait_for(read(), timeout)
    finally:
        writer.close()
    return Answer(status, answer_headers, bytes(body))
