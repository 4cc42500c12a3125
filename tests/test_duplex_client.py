"""sagestream.Client.invoke_bidirectional against the emulator's HTTP/2 port: every event
field both ways, the models, each fault, errors, TLS, cancellation and many sessions at once."""

from __future__ import annotations

import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sagestream
from _duplex_fixtures import WsContainer, make_client
from _emulator_fixtures import record_of
from sagestream import _duplex
from sagestream.emulator import Emulator, RequestRecord


def _record_of(emu: Emulator, request_id: str | None) -> RequestRecord:
    """The emulator's record of a session (it logs a session once it ended)."""
    return record_of(emu, request_id, within=30)


def test_echo_every_field_both_ways(duplex_client: sagestream.Client) -> None:
    with duplex_client.invoke_bidirectional("echo") as session:
        session.send("héllo", complete=True)
        session.send(b"\x00\xff", text=False, complete=False)
        session.send(b"raw")
        session.send("typed", text=True)
        session.send(b"")
        session.close_input()
        parts = list(session)
    assert parts == [b"h\xc3\xa9llo", b"\x00\xff", b"raw", b"typed", b""]
    assert [(p.data_type, p.completion_state) for p in parts] == [
        ("UTF8", "COMPLETE"),
        ("BINARY", "PARTIAL"),
        (None, None),
        ("UTF8", None),
        (None, None),
    ]
    assert all(isinstance(p, bytes) and isinstance(p, sagestream.OutputPart) for p in parts)
    assert parts[0].is_text
    assert (parts[0].complete, parts[1].complete) == (True, False)
    assert parts[2].complete is None
    assert session.status == 200
    assert session.invoked_production_variant == "AllTraffic"
    assert session.request_id
    assert (session.sent_parts, session.sent_bytes) == (5, 6 + 2 + 3 + 5)
    assert (session.metrics.parts, session.metrics.bytes) == (5, 16)
    assert session.closed


def test_output_parts_pickle_with_their_fields() -> None:
    part = sagestream.OutputPart(b"x", "UTF8", "COMPLETE")
    again = pickle.loads(pickle.dumps(part))
    assert (again, again.data_type, again.completion_state) == (b"x", "UTF8", "COMPLETE")


def test_output_arrives_while_input_is_still_open(duplex_client: sagestream.Client) -> None:
    with duplex_client.invoke_bidirectional("echo") as session:
        for i in range(5):
            session.send(f"turn {i}")
            assert next(session) == f"turn {i}".encode()
        session.close_input()
        assert list(session) == []


def test_target_variant_is_checked_and_answered(duplex_client: sagestream.Client) -> None:
    with duplex_client.invoke_bidirectional("echo", target_variant="AllTraffic") as session:
        session.close_input()
        assert list(session) == []
        assert session.invoked_production_variant == "AllTraffic"
    with duplex_client.invoke_bidirectional("echo", target_variant="other") as session:
        session.close_input()
        with pytest.raises(sagestream.InputValidationError, match="Variant other does not exist") as caught:
            next(session)
    assert caught.value.status_code == 400
    assert isinstance(caught.value, sagestream.ValidationError)
    assert caught.value.operation_name == "InvokeEndpointWithBidirectionalStream"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model_invocation_path": "x" * 101}, "ModelInvocationPath"),
        ({"model_invocation_path": "has space"}, "ModelInvocationPath"),
        ({"model_query_string": "q" * 2049}, "ModelQueryString"),
        ({"target_variant": "-bad"}, "TargetVariant"),
    ],
)
def test_parameters_are_checked_before_sending(
    duplex_client: sagestream.Client, kwargs: dict[str, str], match: str
) -> None:
    with pytest.raises(sagestream.ParamValidationError, match=match):
        duplex_client.invoke_bidirectional("echo", **kwargs)


def test_a_part_must_be_bytes_or_text(duplex_client: sagestream.Client) -> None:
    with duplex_client.invoke_bidirectional("echo") as session:
        with pytest.raises(sagestream.ParamValidationError, match="bytes or str"):
            session.send(42)  # type: ignore[arg-type]
        with pytest.raises(sagestream.ParamValidationError, match="at most"):
            session.send(bytes(_duplex.MAX_PART_BYTES + 1))


def test_demo_answers_an_incremental_transcript(duplex_client: sagestream.Client) -> None:
    with duplex_client.invoke_bidirectional("demo") as session:
        session.send("the quick", complete=False)
        session.send("fox", complete=True)
        session.send("why?", complete=True)
        session.send("again")
        session.close_input()
        parts = [(bytes(p), p.completion_state) for p in session]
    assert parts == [
        (b"the", "PARTIAL"),
        (b"the quick", "PARTIAL"),
        (b"the quick fox", "PARTIAL"),
        (b"the quick fox.", "COMPLETE"),
        (b"why?", "PARTIAL"),
        (b"why?", "COMPLETE"),  # already ended: no period after the question mark
        (b"again", "PARTIAL"),
        (b"again.", "COMPLETE"),
    ]


def test_lines_across_parts(duplex_client: sagestream.Client) -> None:
    with duplex_client.invoke_bidirectional("echo") as session:
        for piece in ("one\ntw", "o\nthr", "ee"):
            session.send(piece)
        session.close_input()
        assert list(session.lines()) == ["one", "two", "three"]


def test_input_from_an_iterable(duplex_client: sagestream.Client) -> None:
    chunks = (bytes([i]) * 1000 for i in range(200))
    with duplex_client.invoke_bidirectional("echo", input=chunks) as session:
        got = session.read_all()
    assert got == b"".join(bytes([i]) * 1000 for i in range(200))
    assert session.sent_parts == 200
    assert session.input_closed


def test_a_failing_input_iterable_is_raised_after_the_output(duplex_client: sagestream.Client) -> None:
    def chunks() -> object:
        yield b"a"
        raise OSError("microphone unplugged")

    with (
        duplex_client.invoke_bidirectional("echo", input=chunks()) as session,  # type: ignore[arg-type]
        pytest.raises(OSError, match="microphone unplugged"),
    ):
        list(session)


def test_send_after_close_input(duplex_client: sagestream.Client) -> None:
    with duplex_client.invoke_bidirectional("echo") as session:
        session.close_input()
        with pytest.raises(sagestream.InputClosedError):
            session.send(b"late")


@pytest.mark.parametrize(
    ("query", "error", "code"),
    [
        ("fault=model-stream-error&after=2", sagestream.ModelStreamError, "ModelInvocationTimeExceeded"),
        ("fault=model-stream-error&after=2&code=StreamBroken", sagestream.ModelStreamError, "StreamBroken"),
        ("fault=internal-stream-failure&after=2", sagestream.InternalStreamFailure, "InternalStreamFailure"),
        ("fault=error-frame&after=2&code=Throttled", sagestream.StreamError, "Throttled"),
        ("fault=cut&after=2", sagestream.ConnectionLostError, None),
    ],
)
def test_stream_faults_after_the_parts_before_them(
    duplex_client: sagestream.Client, query: str, error: type[Exception], code: str | None
) -> None:
    with duplex_client.invoke_bidirectional("echo", model_query_string=query) as session:
        for i in range(4):
            session.send(f"p{i}")
        got = [bytes(next(session)), bytes(next(session))]
        with pytest.raises(error) as caught:
            next(session)
        assert got == [b"p0", b"p1"]
        if code is not None:
            assert caught.value.error_code == code  # type: ignore[attr-defined]
        with pytest.raises(error):  # the error sticks
            next(session)


def test_stall_delays_but_loses_nothing(duplex_client: sagestream.Client) -> None:
    with duplex_client.invoke_bidirectional(
        "echo", model_query_string="fault=stall&after=1&seconds=0.2"
    ) as session:
        session.send("a")
        session.send("b")
        session.close_input()
        assert list(session) == [b"a", b"b"]


@pytest.mark.parametrize(
    ("query", "error", "status"),
    [
        ("fault=model-error&status=503&message=boom", sagestream.ModelError, 424),
        ("fault=unavailable", sagestream.ServiceUnavailableError, 503),
        ("fault=internal-failure", sagestream.InternalServerError, 500),
    ],
)
def test_http_faults_are_typed_errors(
    duplex_client: sagestream.Client, query: str, error: type[sagestream.ServiceError], status: int
) -> None:
    with (
        duplex_client.invoke_bidirectional("echo", model_query_string=query) as session,
        pytest.raises(error) as caught,
    ):
        next(session)
    assert caught.value.status_code == status
    if error is sagestream.ModelError:
        assert caught.value.original_status_code == 503  # type: ignore[attr-defined]
        assert caught.value.original_message == "boom"  # type: ignore[attr-defined]
        assert caught.value.log_stream_arn  # type: ignore[attr-defined]


def test_unknown_endpoint_and_bad_credentials(
    duplex_emulator: Emulator, duplex_client: sagestream.Client
) -> None:
    with (
        duplex_client.invoke_bidirectional("nowhere") as session,
        pytest.raises(sagestream.InputValidationError, match="nowhere"),
    ):
        next(session)
    wrong = sagestream.Client(
        region_name=duplex_emulator.region,
        endpoint_url=duplex_emulator.url,
        aws_access_key_id=duplex_emulator.access_key_id,
        aws_secret_access_key="wrong",
        duplex_endpoint_url=duplex_emulator.duplex_url,
    )
    with wrong.invoke_bidirectional("echo") as session, pytest.raises(sagestream.ServiceError) as caught:
        next(session)
    assert caught.value.error_code == "InvalidSignatureException"
    assert caught.value.status_code == 403


def test_over_tls_with_the_generated_certificate(duplex_emulator: Emulator) -> None:
    assert duplex_emulator.duplex_tls_url
    assert duplex_emulator.duplex_ca_file
    client = make_client(
        duplex_emulator,
        duplex_endpoint_url=duplex_emulator.duplex_tls_url,
        verify=duplex_emulator.duplex_ca_file,
    )
    with client.invoke_bidirectional("echo") as session:
        session.send("over tls")
        session.close_input()
        assert list(session) == [b"over tls"]
    untrusted = make_client(duplex_emulator, duplex_endpoint_url=duplex_emulator.duplex_tls_url)
    with pytest.raises(sagestream.ConnectError) as caught:
        untrusted.invoke_bidirectional("echo")
    assert caught.value.kind == "tls"


def test_nothing_listening(duplex_emulator: Emulator) -> None:
    client = make_client(duplex_emulator, duplex_endpoint_url="http://127.0.0.1:9")
    with pytest.raises(sagestream.ConnectError):
        client.invoke_bidirectional("echo")


def test_the_websocket_container_as_the_sidecar_proxies_it(
    duplex_client: sagestream.Client, ws_container: WsContainer
) -> None:
    with duplex_client.invoke_bidirectional("ws", model_query_string="lang=en") as session:
        session.send("hello")
        assert next(session) == b"HELLO"
        session.send(b"\x01\x02\x03")
        part = next(session)
        assert (part, part.data_type) == (b"\x03\x02\x01", "BINARY")
        session.send("ping?")
        part = next(session)
        assert (part, part.data_type) == (b"pong:ok", "UTF8")
        session.send("bye")
        session.close_input()
        assert list(session) == []
    assert ("text", "hello") in ws_container.received
    assert ("binary", b"\x01\x02\x03") in ws_container.received
    assert ("pong", b"are you there") in ws_container.received
    assert "/invocations-bidirectional-stream?lang=en" in ws_container.paths
    with duplex_client.invoke_bidirectional("ws", model_invocation_path="custom/path") as session:
        session.send("bye")
        assert list(session) == []
    assert "/custom/path" in ws_container.paths


def test_closing_mid_stream_resets_it(duplex_emulator: Emulator, duplex_client: sagestream.Client) -> None:
    session = duplex_client.invoke_bidirectional("echo")
    session.send("a")
    assert next(session) == b"a"
    session.close()
    assert session.closed
    assert list(session) == []
    with pytest.raises((sagestream.InputClosedError, sagestream.ConnectionLostError)):
        session.send("after close")
    assert _record_of(duplex_emulator, session.request_id).error == "client-gone"


def test_a_reader_thread_and_a_sender_thread(duplex_client: sagestream.Client) -> None:
    received: list[bytes] = []
    with duplex_client.invoke_bidirectional("echo") as session:
        reader = threading.Thread(target=lambda: received.extend(bytes(p) for p in session))
        reader.start()
        for i in range(300):
            session.send(b"%d" % i)
        session.close_input()
        reader.join(30)
    assert received == [b"%d" % i for i in range(300)]


def test_deadline_bounds_the_session(duplex_client: sagestream.Client) -> None:
    with duplex_client.invoke_bidirectional("echo", deadline=0.3) as session:
        session.send("a")
        assert next(session) == b"a"
        with pytest.raises(sagestream.DeadlineExceededError):
            next(session)


def test_200_concurrent_sessions(duplex_client: sagestream.Client) -> None:
    def one(i: int) -> list[bytes]:
        with duplex_client.invoke_bidirectional("echo") as session:
            for j in range(5):
                session.send(f"{i}:{j}")
            session.close_input()
            return [bytes(p) for p in session]

    with ThreadPoolExecutor(max_workers=200) as pool:
        results = list(pool.map(one, range(200)))
    assert results == [[f"{i}:{j}".encode() for j in range(5)] for i in range(200)]


def test_sessions_share_a_connection_up_to_100_streams(duplex_emulator: Emulator) -> None:
    client = make_client(duplex_emulator)
    before = duplex_emulator.server.duplex.connections
    sessions = [client.invoke_bidirectional("echo") for _ in range(150)]
    for session in sessions:
        session.send("x")
    assert all(next(session) == b"x" for session in sessions)
    # Counted once every session had its answer: the server accepted what the client made.
    assert duplex_emulator.server.duplex.connections - before == 2
    for session in sessions:
        session.close()
    # The streams given back: the next sessions take the open connections again.
    more = [client.invoke_bidirectional("echo") for _ in range(100)]
    for session in more:
        session.send("y")
    assert all(next(session) == b"y" for session in more)
    assert duplex_emulator.server.duplex.connections - before == 2
    for session in more:
        session.close()
    client.close()


def test_the_service_endpoint_rules() -> None:
    # The endpoint tests generated into aws-sdk-sagemakerruntimehttp2 1.30.0 (src/config/endpoint.rs).
    assert _duplex.duplex_endpoint("us-east-1") == "https://runtime.sagemaker.us-east-1.amazonaws.com:8443"
    assert (
        _duplex.duplex_endpoint("us-east-1", fips=True)
        == "https://runtime-fips.sagemaker.us-east-1.amazonaws.com:8443"
    )
    assert (
        _duplex.duplex_endpoint("us-east-1", dualstack=True)
        == "https://runtime.sagemaker.us-east-1.api.aws:8443"
    )
    assert (
        _duplex.duplex_endpoint("cn-northwest-1", fips=True, dualstack=True)
        == "https://runtime-fips.sagemaker.cn-northwest-1.api.amazonwebservices.com.cn:8443"
    )
    assert (
        _duplex.duplex_endpoint("cn-northwest-1")
        == "https://runtime.sagemaker.cn-northwest-1.amazonaws.com.cn:8443"
    )
    assert (
        _duplex.duplex_endpoint("eusc-de-east-1")
        == "https://runtime.sagemaker.eusc-de-east-1.amazonaws.eu:8443"
    )
    assert (
        _duplex.duplex_endpoint("us-iso-east-1") == "https://runtime.sagemaker.us-iso-east-1.c2s.ic.gov:8443"
    )
    assert (
        _duplex.duplex_endpoint("us-isob-east-1", fips=True)
        == "https://runtime-fips.sagemaker.us-isob-east-1.sc2s.sgov.gov:8443"
    )
    assert (
        _duplex.duplex_endpoint("us-isof-south-1")
        == "https://runtime.sagemaker.us-isof-south-1.csp.hci.ic.gov:8443"
    )
