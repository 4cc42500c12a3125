"""The emulator's bidirectional port under what no SDK sends: event signatures that break the
chain, events after the end, a body that is not an event stream, the Java/JavaScript SDKs'
``STREAMING-AWS4-HMAC-SHA256-EVENTS`` request signing, requests on other routes."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from _h2_raw import Answer, Chain, exchange, payload_part, signed_headers
from sagestream.emulator import Emulator


def _session(emu: Emulator, frames_of: object, *, streaming: bool = False, endpoint: str = "echo") -> Answer:
    headers, seed = signed_headers(
        emu.duplex_url,
        endpoint,
        access_key=emu.access_key_id,
        secret_key=emu.secret_access_key,
        region=emu.region,
        streaming=streaming,
    )
    chain = Chain(seed, emu.secret_access_key, emu.region)
    frames = frames_of(chain)  # type: ignore[operator]
    return asyncio.run(exchange(emu.duplex_url, headers, frames))


def _payloads(answer: Answer) -> list[bytes]:
    return [m.payload for m in answer.messages() if m.headers.get(":event-type") == "PayloadPart"]


def _error(answer: Answer) -> tuple[str, str]:
    last = answer.messages()[-1]
    return str(last.headers.get(":error-code")), str(last.headers.get(":error-message"))


@pytest.mark.parametrize("streaming", [False, True])
def test_a_good_chain_either_way_the_request_is_signed(duplex_emulator: Emulator, streaming: bool) -> None:
    answer = _session(
        duplex_emulator,
        lambda c: [c.sign(payload_part(b"one", "UTF8")), c.sign(payload_part(b"two")), c.sign(b"")],
        streaming=streaming,
    )
    assert answer.status == 200
    assert _payloads(answer) == [b"one", b"two"]
    first = answer.messages()[0].headers
    assert (first["DataType"], first[":content-type"], first[":message-type"]) == (
        "UTF8",
        "application/octet-stream",
        "event",
    )


def test_a_wrong_key_for_an_event(duplex_emulator: Emulator) -> None:
    answer = _session(
        duplex_emulator,
        lambda c: [
            c.sign(payload_part(b"one")),
            c.sign(payload_part(b"two"), secret="not-the-secret"),
            c.sign(b""),
        ],
    )
    assert answer.status == 200
    assert _payloads(answer) == [b"one"]
    code, message = _error(answer)
    assert code == "InvalidSignatureException"
    assert "event 2" in message


def test_events_out_of_order_break_the_chain(duplex_emulator: Emulator) -> None:
    def frames(chain: Chain) -> list[bytes]:
        a = chain.sign(payload_part(b"a"))
        b = chain.sign(payload_part(b"b"))
        return [b, a, chain.sign(b"")]

    answer = _session(duplex_emulator, frames)
    assert _payloads(answer) == []
    assert _error(answer)[0] == "InvalidSignatureException"


def test_a_tampered_event(duplex_emulator: Emulator) -> None:
    def frames(chain: Chain) -> list[bytes]:
        good = chain.sign(payload_part(b"amount=1"))
        return [good.replace(b"amount=1", b"amount=9"), chain.sign(b"")]

    answer = _session(duplex_emulator, frames)
    assert answer.status == 200
    # The outer frame's checksum no longer matches either: refused before its signature.
    assert _error(answer)[0] == "InputValidationError"
    assert _payloads(answer) == []


def test_a_stale_event_date(duplex_emulator: Emulator) -> None:
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
    answer = _session(duplex_emulator, lambda c: [c.sign(payload_part(b"a"), old), c.sign(b"")])
    code, message = _error(answer)
    assert code == "InvalidSignatureException"
    assert "Signature expired" in message


def test_an_event_without_its_signature_headers(duplex_emulator: Emulator) -> None:
    from sagestream.eventstream import encode

    answer = _session(duplex_emulator, lambda c: [encode({}, payload_part(b"a"))])
    assert _error(answer)[0] == "InvalidSignatureException"


def test_an_event_after_the_end(duplex_emulator: Emulator) -> None:
    # In one DATA frame: the model must not see the end before the event after it is refused.
    answer = _session(
        duplex_emulator, lambda c: [c.sign(payload_part(b"a")) + c.sign(b"") + c.sign(payload_part(b"b"))]
    )
    assert _payloads(answer) == [b"a"]
    assert _error(answer)[0] == "InvalidSignatureException"


def test_an_input_that_ends_without_the_signed_end(duplex_emulator: Emulator) -> None:
    answer = _session(duplex_emulator, lambda c: [c.sign(payload_part(b"a"))])
    assert _payloads(answer) == [b"a"]
    code, message = _error(answer)
    assert code == "InvalidSignatureException"
    assert "without the signed empty event" in message


def test_a_body_that_is_not_an_event_stream(duplex_emulator: Emulator) -> None:
    answer = _session(duplex_emulator, lambda c: [b"hello, this is not a frame at all"])
    assert _error(answer)[0] == "InputValidationError"


def test_a_bad_request_signature_is_a_403_before_any_event(duplex_emulator: Emulator) -> None:
    headers, _ = signed_headers(
        duplex_emulator.duplex_url,
        "echo",
        access_key=duplex_emulator.access_key_id,
        secret_key="wrong",
        region=duplex_emulator.region,
    )
    answer = asyncio.run(exchange(duplex_emulator.duplex_url, headers, []))
    assert answer.status == 403
    assert answer.headers["x-amzn-errortype"] == "InvalidSignatureException"


def test_other_routes_are_unknown_operations(duplex_emulator: Emulator) -> None:
    headers, _ = signed_headers(
        duplex_emulator.duplex_url,
        "echo",
        access_key=duplex_emulator.access_key_id,
        secret_key=duplex_emulator.secret_access_key,
        region=duplex_emulator.region,
    )
    headers = [(k, "/endpoints/echo/invocations" if k == ":path" else v) for k, v in headers]
    answer = asyncio.run(exchange(duplex_emulator.duplex_url, headers, []))
    assert answer.status == 404
    assert answer.headers["x-amzn-errortype"] == "UnknownOperationException"
