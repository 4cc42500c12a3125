"""SageMakerStream on a real local Ray cluster (2 CPUs, loopback) against the emulator.

One Ray cluster for the module; each test calls its own endpoint name, so the coordinators
(named per endpoint) and the request log's records of one test are its own.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

import sagestream.ray  # noqa: E402
from botocore.config import Config  # noqa: E402
from sagestream.emulator import Emulator  # noqa: E402

pytestmark = [
    # A hang guard, not a speed check: with both cores busy (a CPU hog each) Ray's dozen
    # processes run a pipeline of 1,000 rows about ten times slower than on a quiet machine.
    pytest.mark.timeout(900),
    # Ray's own modules warn about their internals (deprecated APIs they still use).
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

#: The echo model answers a streamed body in parts of this many bytes.
PART = 4096


@pytest.fixture(scope="module")
def ray_emulator() -> Iterator[Emulator]:
    endpoints = {"ray-mixed": "echo", "ray-kill": "echo", "ray-prompt": "echo", "ray-rate": "echo"}
    with Emulator(host="127.0.0.1", port=0, endpoints=endpoints, token_delay=0.0) as emu:
        yield emu


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
    )
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()


def client_kwargs(emu: Emulator) -> dict[str, Any]:
    return {
        "endpoint_url": emu.url,
        "region_name": emu.region,
        "aws_access_key_id": emu.access_key_id,
        "aws_secret_access_key": emu.secret_access_key,
        # Faults are deterministic: a retry would fail the same way.
        "config": Config(retries={"total_max_attempts": 1}),
    }


def body_of(i: int) -> bytes:
    """Row i's body: unique, three echo parts long."""
    head = f"row-{i:05d}|".encode()
    return head + bytes([65 + i % 26]) * (2 * PART + 100 - len(head))


def faults_of(i: int) -> str | None:
    return {
        0: "fault=model-error",
        1: "fault=model-stream-error;after=1",
        2: "fault=cut;after=2",
        3: "fault=throttle",
    }.get(i % 20)


def test_mixed_faults_every_row_accounted_for(ray_cluster: None, ray_emulator: Emulator) -> None:
    rows = 400
    items = [{"id": i, "body": body_of(i), "custom_attributes": faults_of(i) or ""} for i in range(rows)]
    rate, streams = 400, 4
    ds = ray.data.from_items(items).map_batches(
        sagestream.ray.SageMakerStream,
        fn_constructor_kwargs=dict(
            endpoint_name="ray-mixed",
            max_in_flight=4,
            max_requests_per_second=rate,
            max_concurrent_streams=streams,
            **client_kwargs(ray_emulator),
        ),
        batch_size=50,
        concurrency=2,
        num_cpus=0.5,
    )
    out = ds.take_all()

    assert sorted(row["id"] for row in out) == list(range(rows))
    for row in out:
        i, body = row["id"], body_of(row["id"])
        kind = faults_of(i)
        assert set(sagestream.ray.RESULT_COLUMNS) <= set(row)
        assert row["attempts"] == 1
        if kind is None:
            assert row["error"] is None, row["error"]
            assert row["output"] == body
            assert row["parts"] == 3
        elif kind == "fault=model-error":
            assert row["error"].startswith("ModelError: "), row["error"]
            assert row["output"] is None
            assert row["parts"] == 0
        elif kind == "fault=throttle":
            assert row["error"].startswith("ModelNotReadyException: "), row["error"]
            assert row["output"] is None
        elif kind.startswith("fault=model-stream-error"):
            # Every part received before the failure reaches the user, then the typed error.
            assert row["error"].startswith("ModelStreamError: "), row["error"]
            assert row["output"] == body[:PART]
            assert row["parts"] == 1
        else:
            assert row["error"].split(":")[0] in ("TruncatedStreamError", "ConnectionLostError")
            assert row["output"] == body[: 2 * PART]
            assert row["parts"] == 2

    ray_log = _only(ray_emulator, "ray-mixed")
    assert len(ray_log) == rows
    assert ray_log.peak_concurrency() <= streams
    assert ray_log.max_rate(1.0) <= rate

    counters = sagestream.ray.endpoint_counters("ray-mixed")
    failed = sum(1 for i in range(rows) if faults_of(i) is not None)
    assert (counters.rows_done, counters.rows_failed) == (rows - failed, failed)
    assert counters.attempts == rows
    assert counters.throttles >= 1
    assert counters.in_progress == 0
    assert sagestream.ray.close_endpoint("ray-mixed")


def _only(emu: Emulator, endpoint: str) -> Any:
    """A RequestLog holding only ``endpoint``'s records."""
    from sagestream.emulator.requestlog import RequestLog

    log = RequestLog()
    for record in emu.request_log.snapshot():
        if record.endpoint == endpoint:
            log.append(record)
    return log


def test_prompt_rows_keep_their_columns(ray_cluster: None, ray_emulator: Emulator) -> None:
    items = [{"prompt": f"question {i}", "n": i} for i in range(20)]
    ds = ray.data.from_items(items).map_batches(
        sagestream.ray.SageMakerStream,
        fn_constructor_kwargs=dict(
            endpoint_name="ray-prompt", parameters={"max_new_tokens": 8}, **client_kwargs(ray_emulator)
        ),
        batch_size=8,
        concurrency=1,
        num_cpus=0.5,
    )
    out = sorted(ds.take_all(), key=lambda row: row["n"])
    assert [row["n"] for row in out] == list(range(20))
    for row in out:
        # The echo model answers the JSON request SageMakerStream built, as text.
        assert row["error"] is None
        expected = json.dumps({"inputs": f"question {row['n']}", "parameters": {"max_new_tokens": 8}})
        assert row["output"] == expected
        assert row["prompt"] == f"question {row['n']}"
    assert sagestream.ray.close_endpoint("ray-prompt")


def test_killed_actor_is_retried_without_duplicates(ray_cluster: None, ray_emulator: Emulator) -> None:
    rows = 400
    # 3 parts 20 ms apart: the run lasts long enough to kill an actor in the middle of it.
    items = [{"id": i, "body": body_of(i), "custom_attributes": "delay_ms=20"} for i in range(rows)]
    ds = ray.data.from_items(items).map_batches(
        sagestream.ray.SageMakerStream,
        fn_constructor_kwargs=dict(endpoint_name="ray-kill", max_in_flight=4, **client_kwargs(ray_emulator)),
        batch_size=20,
        concurrency=2,
        num_cpus=0.5,
        # Ray restarts a dead actor and runs its tasks again (Ray's fault-tolerance options).
        max_restarts=-1,
        max_task_retries=-1,
    )
    killed: list[Any] = []
    errors: list[BaseException] = []

    def kill_one() -> None:
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    counters = sagestream.ray.endpoint_counters("ray-kill", timeout=5)
                except ValueError:  # the coordinator is not up yet
                    counters = None
                except ray.exceptions.GetTimeoutError:  # a busy machine: ask again
                    counters = None
                if counters is not None and counters.rows >= 40:
                    try:
                        workers = sagestream.ray.endpoint_workers("ray-kill", timeout=5)
                    except ray.exceptions.GetTimeoutError:
                        continue
                    if workers:
                        ray.kill(workers[0], no_restart=False)
                        killed.append(workers[0])
                        return
                time.sleep(0.05)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    killer = threading.Thread(target=kill_one)
    killer.start()
    out = ds.take_all()
    killer.join(30)
    assert not errors, errors
    assert killed, "no actor was killed: the run ended before the killer saw 40 rows"
    ids = [row["id"] for row in out]
    assert len(ids) == rows
    assert sorted(ids) == list(range(rows))
    for row in out:
        assert row["error"] is None, row["error"]
        assert row["output"] == body_of(row["id"])
    assert sagestream.ray.endpoint_counters("ray-kill").rows >= rows
    assert sagestream.ray.close_endpoint("ray-kill")


def test_two_actors_share_one_rate_limit(ray_cluster: None, ray_emulator: Emulator) -> None:
    # 10/s for both actors together: each alone could send its 30 rows in well under a second.
    rows, rate = 60, 10
    items = [{"id": i, "body": body_of(i)} for i in range(rows)]
    ds = ray.data.from_items(items).map_batches(
        sagestream.ray.SageMakerStream,
        fn_constructor_kwargs=dict(
            endpoint_name="ray-rate", max_requests_per_second=rate, **client_kwargs(ray_emulator)
        ),
        batch_size=10,
        concurrency=2,
        num_cpus=0.5,
    )
    out = ds.take_all()
    assert sorted(row["id"] for row in out) == list(range(rows))
    assert all(row["output"] == body_of(row["id"]) for row in out)
    log = _only(ray_emulator, "ray-rate")
    assert len(log) == rows
    assert log.max_rate(1.0) <= rate
    assert sagestream.ray.close_endpoint("ray-rate")
