"""``Emulator.request_log``: what the emulator received, and the load it adds up to."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sagestream.emulator import Emulator, EmulatorConfig, RequestLog, RequestRecord


def _record(started: float, ended: float, operation: str = "InvokeEndpoint") -> RequestRecord:
    return RequestRecord(operation, "e", started, ended, 200, None, "id")


def test_peak_concurrency_and_max_rate_on_known_records() -> None:
    log = RequestLog()
    for started, ended in [(0.0, 1.0), (0.5, 2.0), (0.9, 1.1), (1.0, 3.0), (5.0, 5.1)]:
        log.append(_record(started, ended))
    log.append(_record(0.2, 0.3, operation="InvokeEndpointWithResponseStream"))
    # 0.9-1.0: the first three overlap; the one ending at 1.0 does not overlap the one starting.
    assert log.peak_concurrency("InvokeEndpoint") == 3
    assert log.peak_concurrency() == 3
    assert log.peak_concurrency("InvokeEndpointWithResponseStream") == 1
    assert log.max_rate(1.0, "InvokeEndpoint") == 3  # 0.0, 0.5, 0.9 within one second
    assert log.max_rate(1.0) == 4  # and 0.2
    assert log.max_rate(10.0) == 6
    assert log.max_rate(0.05) == 1
    assert len(log) == 6
    assert log[0].duration == 1.0
    with pytest.raises(ValueError, match="window"):
        log.max_rate(0)
    log.clear()
    assert list(log) == []
    assert log.peak_concurrency() == 0
    assert log.max_rate() == 0


def _wait_for(log: RequestLog, count: int) -> list[RequestRecord]:
    deadline = time.monotonic() + 20
    while len(log) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return log.snapshot()


def test_records_each_request(emulator: Emulator, runtime_client: Any) -> None:
    emulator.request_log.clear()
    runtime_client.invoke_endpoint(EndpointName="demo", Body=b"x", CustomAttributes="trace=1")["Body"].read()
    resp = runtime_client.invoke_endpoint_with_response_stream(
        EndpointName="echo", Body=b"y", CustomAttributes="trace=2"
    )
    assert [e["PayloadPart"]["Bytes"] for e in resp["Body"]] == [b"y"]
    with pytest.raises(runtime_client.exceptions.ModelError):
        runtime_client.invoke_endpoint(EndpointName="demo", Body=b"x", CustomAttributes="fault=model-error")
    with pytest.raises(runtime_client.exceptions.ValidationError):
        runtime_client.invoke_endpoint(EndpointName="nope", Body=b"x")
    records = _wait_for(emulator.request_log, 4)
    assert [(r.operation, r.endpoint, r.status, r.custom_attributes, r.error) for r in records] == [
        ("InvokeEndpoint", "demo", 200, "trace=1", None),
        ("InvokeEndpointWithResponseStream", "echo", 200, "trace=2", None),
        ("InvokeEndpoint", "demo", 424, "fault=model-error", "ModelError"),
        ("InvokeEndpoint", "nope", 400, None, "ValidationError"),
    ]
    assert all(r.started <= r.ended <= time.monotonic() for r in records)
    assert records[0].ended <= records[1].started
    assert len({r.request_id for r in records}) == 4


def test_peak_concurrency_of_streams_held_open(emulator: Emulator, runtime_client: Any) -> None:
    """Three streams, each read to its first part before any is closed: all three overlap."""
    emulator.request_log.clear()
    streams = []
    for _ in range(3):
        resp = runtime_client.invoke_endpoint_with_response_stream(
            EndpointName="demo", Body=b"x", CustomAttributes="tokens=100000;delay_ms=20"
        )
        events = iter(resp["Body"])
        next(events)
        streams.append(resp)
    for resp in streams:
        resp["Body"].close()
    records = _wait_for(emulator.request_log, 3)
    assert len(records) == 3
    assert emulator.request_log.peak_concurrency("InvokeEndpointWithResponseStream") == 3
    assert {r.error for r in records} == {"client-gone"}


def test_max_rate_counts_requests_started_in_the_window(emulator: Emulator, runtime_client: Any) -> None:
    emulator.request_log.clear()
    for _ in range(5):
        runtime_client.invoke_endpoint(EndpointName="echo", Body=b"z")["Body"].read()
    _wait_for(emulator.request_log, 5)
    assert emulator.request_log.max_rate(window=3600.0) == 5
    assert emulator.request_log.max_rate(window=1e-9) == 1
    assert emulator.request_log.peak_concurrency() == 1  # one after the other


def test_reading_while_the_server_appends() -> None:
    log = RequestLog()
    stop = threading.Event()

    def writer() -> None:
        for i in range(20_000):
            if stop.is_set():
                return
            log.append(_record(float(i), float(i) + 0.5))

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while thread.is_alive():
            records = list(log)
            assert all(r.started + 0.5 == r.ended for r in records)
            log.peak_concurrency()
    finally:
        stop.set()
        thread.join()
    assert log.peak_concurrency() == 1


def test_emulator_takes_a_config_and_overrides() -> None:
    config = EmulatorConfig(region="eu-west-1", endpoints={"a": "echo"}, port=0)
    emu = Emulator(config, token_delay=0.5, endpoints={"b": "demo:sse"})
    assert emu.config.region == "eu-west-1"
    assert emu.config.token_delay == 0.5
    assert emu.config.endpoints == {"b": "demo:sse"}
    assert config.token_delay == 0.0  # the given config is not changed
    assert Emulator().config.port == 0
    with pytest.raises(TypeError):
        Emulator(no_such_field=1)


def test_the_log_keeps_the_last_records_only() -> None:
    """A ring buffer: a long load test does not grow it without bound."""
    log = RequestLog(size=3)
    for i in range(10):
        log.append(_record(float(i), float(i) + 0.5))
    assert len(log) == 3
    assert [r.started for r in log] == [7.0, 8.0, 9.0]
    assert (log[0].started, log[-1].started) == (7.0, 9.0)
    assert (log.size, log.dropped) == (3, 7)
    assert log.max_rate(100.0) == 3
    log.clear()
    assert (len(log), log.dropped) == (0, 0)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="at least one record"):
            RequestLog(size=bad)  # type: ignore[arg-type]


def test_the_default_bound_holds_what_a_soak_sends() -> None:
    log = RequestLog()
    for i in range(log.size + 2_500):
        log.append(_record(float(i), float(i)))
    assert len(log) == log.size == 10_000
    assert log.dropped == 2_500


def test_the_emulator_log_is_bounded_as_configured() -> None:
    with Emulator(endpoints={"echo": "echo"}, request_log_size=2) as emu:
        client = emu.boto3_client("sagemaker-runtime")
        for i in range(5):
            body = str(i).encode()
            assert client.invoke_endpoint(EndpointName="echo", Body=body)["Body"].read() == body
        records = _wait_for_dropped(emu.request_log, 3)
    assert len(records) == 2
    assert emu.request_log.size == 2
    assert EmulatorConfig().request_log_size == 10_000


def _wait_for_dropped(log: RequestLog, dropped: int) -> list[RequestRecord]:
    deadline = time.monotonic() + 20
    while log.dropped < dropped and time.monotonic() < deadline:
        time.sleep(0.01)
    return log.snapshot()


def test_serve_takes_the_bound(capsys: pytest.CaptureFixture[str]) -> None:
    from sagestream.cli import build_parser
    from sagestream.cli.serve import _config

    parser = build_parser(serve=True)
    assert _config(parser.parse_args(["serve", "--request-log-size", "500"])).request_log_size == 500
    assert _config(parser.parse_args(["serve"])).request_log_size == 10_000
    with pytest.raises(SystemExit) as exc:  # a usage error, before anything starts
        parser.parse_args(["serve", "--request-log-size", "0"])
    assert exc.value.code == 2
    assert "--request-log-size" in capsys.readouterr().err
