"""``SageMakerStream``: the callable class Ray Data's ``map_batches`` runs in each actor.

Each actor holds one :class:`~sagestream.AsyncClient` (one connection pool) and one
:func:`~sagestream.batch.invoke_many` run fed by every batch Ray gives it, so ``max_in_flight``
bounds the actor's requests however many batches are in progress. Ray Data calls ``__call__``
(a coroutine) on the actor's event loop; rows are answered in the batch's order.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from typing import Any

import ray

from sagestream.batch import (
    MODES,
    OUTPUTS,
    AttemptCounter,
    Mode,
    Output,
    Request,
    Result,
    SupportsLimit,
    error_text,
    invoke_many,
)
from sagestream.ray._coordinator import IDLE_SECONDS, LEASE_SECONDS, coordinator
from sagestream.ray._metrics import RayMetrics

#: Columns that, when a dataset has them, set a request option of each row (unless the row's
#: own ``build_request`` set it).
_ROW_OPTIONS = ("custom_attributes", "prefix_aware_id")

__all__ = ["RESULT_COLUMNS", "SageMakerStream"]

#: The columns SageMakerStream adds to each row.
RESULT_COLUMNS = ("output", "error", "time_to_first_part", "parts", "duration", "attempts")
#: Seconds between two reports (counters and heartbeat) of an actor to the coordinator.
REPORT_SECONDS = 1.0


#: What the actor's invoke_many run reads: each row's request and the future of its result.
_Queue = asyncio.Queue[tuple[Request, "asyncio.Future[Result]"]]


def _client_parameters() -> set[str]:
    from sagestream import AsyncClient

    names = set(inspect.signature(AsyncClient.__init__).parameters)
    return names - {"self", "session"}


#: The keywords of :func:`~sagestream.batch.invoke_many` an actor's run takes as they are given
#: (its ``output``, ``limiter`` and ``holder`` are the actor's own).
_RUN_OPTIONS = frozenset(
    name
    for name, parameter in inspect.signature(invoke_many).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("output", "limiter", "holder")
)


class _RemoteLimiter:
    """The coordinator's limiter, seen from one actor (a ``SupportsLimit``)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def acquire(self, key: Any, holder: Any = None) -> None:
        await self._handle.acquire.remote(holder, key)

    def answered(self, key: Any) -> None:
        self._handle.answered.remote(key)

    def charge(self, key: Any) -> None:
        self._handle.charge.remote(key)

    def release(self, key: Any) -> None:
        self._handle.release.remote(key)

    def throttled(self) -> None:
        self._handle.throttled.remote()


def _columns(batch: Any) -> dict[str, Any]:
    """The batch as ``{name: column}``, whatever ``batch_format`` Ray was asked for."""
    if hasattr(batch, "column_names") and hasattr(batch, "column"):  # pyarrow.Table
        return {name: batch.column(name).to_pylist() for name in batch.column_names}
    if hasattr(batch, "columns") and hasattr(batch, "to_dict"):  # pandas.DataFrame
        return {str(name): batch[name].to_numpy() for name in batch.columns}
    if isinstance(batch, Mapping):
        return dict(batch)
    raise TypeError(f"SageMakerStream takes dict, pandas or pyarrow batches, got {type(batch).__name__}")


def _value(column: Any, i: int) -> Any:
    value = column[i]
    item = getattr(value, "item", None)  # numpy scalars
    return item() if callable(item) and not isinstance(value, (bytes, str)) else value


class SageMakerStream:
    """Call a SageMaker endpoint for every row: ``Dataset.map_batches(SageMakerStream, ...)``.

    ``fn_constructor_kwargs`` are these keywords: ``endpoint_name``; the
    :class:`~sagestream.AsyncClient`'s keywords (``region_name``, ``endpoint_url``, ``config``,
    ``s3_endpoint_url``, ``aws_access_key_id``...; credentials otherwise resolved on each worker
    as boto3 does); and:

    - rows: the column ``body`` (bytes, sent as they are) or ``prompt`` (text, sent as
      ``{"inputs": prompt, "parameters": parameters}`` JSON), or ``build_request(row)``
      returning bytes or a :class:`sagestream.batch.Request`; a ``custom_attributes`` column,
      when present, sets each row's CustomAttributes, a ``prefix_aware_id`` column its
      PrefixAwareId (rows of one conversation reach the same instance of a PREFIX_AWARE
      endpoint);
    - :func:`~sagestream.batch.invoke_many`'s options, for every row: ``content_type``
      (``application/json`` for prompts), ``accept``, ``custom_attributes``, ``target_variant``,
      ``inference_component_name``, ``deadline`` (seconds per try); ``max_in_flight`` (16):
      requests of one actor at once; ``mode``: ``"stream"`` (InvokeEndpointWithResponseStream),
      ``"invoke"`` or ``"async"`` (InvokeEndpointAsync: each body uploaded under
      ``input_prefix``, its result waited for up to ``wait_timeout`` seconds);
      ``stream_restarts`` (0): restart a request after an in-stream failure, discarding its
      partial output, this many times;
    - ``output``: ``"bytes"``, ``"text"``, ``"lines"``, ``"sse"`` or ``"json_lines"``
      (default: bytes for ``body`` rows, text otherwise);
    - ``fail_on_error`` (False): raise a row's error, failing the job, instead of writing it
      in the ``error`` column;
    - ``max_requests_per_second``, ``max_concurrent_streams``: limits shared by every actor
      calling the endpoint (through its coordinator actor); ``lease_seconds``,
      ``idle_seconds``: the coordinator's (see :mod:`sagestream.ray._coordinator`);
    - ``ray_metrics`` (False): also record each row in Ray's own metrics (``ray.util.metrics``:
      ``sagestream_rows``, ``_attempts``, ``_parts``, ``_time_to_first_part_seconds``,
      ``_row_duration_seconds``, tagged by endpoint; see :mod:`sagestream.ray._metrics`).

    Each row keeps its columns and gets ``output``, ``error`` (``"Class: message"`` or None),
    ``time_to_first_part``, ``parts``, ``duration`` (seconds) and ``attempts``.
    """

    def __init__(
        self,
        endpoint_name: str,
        *,
        output: Output | None = None,
        parameters: Mapping[str, Any] | None = None,
        build_request: Callable[[dict[str, Any]], bytes | Request] | None = None,
        fail_on_error: bool = False,
        max_requests_per_second: float | None = None,
        max_concurrent_streams: int | None = None,
        lease_seconds: float = LEASE_SECONDS,
        idle_seconds: float = IDLE_SECONDS,
        ray_metrics: bool = False,
        **options: Any,
    ) -> None:
        run = {name: options.pop(name) for name in _RUN_OPTIONS & options.keys()}
        client_kwargs = options
        unknown = set(client_kwargs) - _client_parameters()
        if unknown:
            raise TypeError(f"SageMakerStream got unexpected keyword arguments: {', '.join(sorted(unknown))}")
        mode: Mode = run.get("mode", "stream")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        if output is not None and output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}; got {output!r}")
        if not isinstance(endpoint_name, str) or not endpoint_name:
            raise ValueError("endpoint_name must be a non-empty string")
        from sagestream import AsyncClient

        self.endpoint_name = endpoint_name
        self._output = output
        self._parameters = dict(parameters or {})
        self._build_request = build_request
        self._fail_on_error = fail_on_error
        #: Set on each row's request (a ``build_request`` one keeps its own).
        self._content_type = run.pop("content_type", None)
        self._options = run
        client_kwargs["observer"] = AttemptCounter(client_kwargs.get("observer"))
        self._client = AsyncClient(**client_kwargs)
        self._holder = uuid.uuid4().hex
        limited = max_requests_per_second is not None or max_concurrent_streams is not None
        self._coordinator = coordinator(
            endpoint_name,
            requests_per_second=max_requests_per_second,
            concurrency=max_concurrent_streams,
            lease_seconds=lease_seconds,
            idle_seconds=idle_seconds,
        )
        context = ray.get_runtime_context()
        actor = context.current_actor if context.get_actor_id() else None
        ray.get(
            self._coordinator.register.remote(
                self._holder, actor, max_requests_per_second, max_concurrent_streams
            )
        )
        self._limiter: SupportsLimit | None = _RemoteLimiter(self._coordinator) if limited else None
        self._queue: _Queue | None = None
        self._runner: asyncio.Task[None] | None = None
        self._reporter: asyncio.Task[None] | None = None
        self._delta: dict[str, int] = {}
        self._metrics = RayMetrics(endpoint_name) if ray_metrics else None

    # the actor's one invoke_many run ------------------------------------------------------

    def _start(self, output: Output) -> _Queue:
        if self._queue is None or self._runner is None or self._runner.done():
            self._queue = asyncio.Queue()
            self._runner = asyncio.get_running_loop().create_task(self._run(self._queue, output))
        if self._reporter is None:
            self._reporter = asyncio.get_running_loop().create_task(self._report_every())
        return self._queue

    async def _run(self, queue: _Queue, output: Output) -> None:
        futures: dict[int, asyncio.Future[Result]] = {}
        indexes = itertools.count()

        async def bodies() -> AsyncIterator[Request]:
            while True:
                request, future = await queue.get()
                # invoke_many numbers the bodies in the order they are read.
                futures[next(indexes)] = future
                yield request

        try:
            async for result in invoke_many(
                self._client,
                self.endpoint_name,
                bodies(),
                output=output,
                limiter=self._limiter,
                holder=self._holder,
                **self._options,
            ):
                future = futures.pop(result.index)
                if not future.done():
                    future.set_result(result)
        except BaseException as exc:
            failure = exc if isinstance(exc, Exception) else RuntimeError(f"the requests ended: {exc!r}")
            for future in futures.values():
                if not future.done():
                    future.set_exception(failure)
            raise

    async def _report_every(self) -> None:
        while True:
            await asyncio.sleep(REPORT_SECONDS)
            with contextlib.suppress(Exception):
                await self._report()

    async def _report(self) -> None:
        delta, self._delta = self._delta, {}
        await self._coordinator.report.remote(self._holder, delta)

    def _count(self, result: Result) -> None:
        delta = self._delta
        key = "rows_done" if result.error is None else "rows_failed"
        delta[key] = delta.get(key, 0) + 1
        if result.attempts > 1:
            delta["rows_retried"] = delta.get("rows_retried", 0) + 1
        delta["attempts"] = delta.get("attempts", 0) + result.attempts
        delta["parts"] = delta.get("parts", 0) + (result.parts or 0)
        if self._metrics is not None:
            self._metrics.row(result)

    # one batch ------------------------------------------------------------------------------

    def _request(self, columns: dict[str, Any], i: int) -> Request:
        request = self._body(columns, i)
        per_row = {
            name: value
            for name in _ROW_OPTIONS
            if name in columns
            and (value := _value(columns[name], i)) is not None
            and getattr(request, name) is None
        }
        return replace(request, **per_row) if per_row else request

    def _body(self, columns: dict[str, Any], i: int) -> Request:
        if self._build_request is not None:
            built = self._build_request({name: _value(col, i) for name, col in columns.items()})
            if isinstance(built, Request):
                return built
            return Request(bytes(built), content_type=self._content_type)
        if "body" in columns:
            body = _value(columns["body"], i)
            if isinstance(body, str):
                body = body.encode()
            return Request(bytes(body), content_type=self._content_type)
        prompt = _value(columns["prompt"], i)
        payload = json.dumps({"inputs": str(prompt), "parameters": self._parameters}).encode()
        return Request(payload, content_type=self._content_type or "application/json")

    def _output_kind(self, columns: dict[str, Any]) -> Output:
        if self._output is not None:
            return self._output
        return "bytes" if "body" in columns and self._build_request is None else "text"

    async def __call__(self, batch: Any) -> Any:
        """Answer every row of ``batch``; a pyarrow Table with the result columns added."""
        import pyarrow as pa

        columns = _columns(batch)
        clash = [name for name in RESULT_COLUMNS if name in columns]
        if clash:
            raise ValueError(f"the rows already have the column(s) {', '.join(clash)} SageMakerStream adds")
        if self._build_request is None and "body" not in columns and "prompt" not in columns:
            raise ValueError(
                f"SageMakerStream needs a 'body' or 'prompt' column, or build_request=; got {sorted(columns)}"
            )
        rows = len(next(iter(columns.values()))) if columns else 0
        output = self._output_kind(columns)
        queue = self._start(output)
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Result]] = []
        for i in range(rows):
            future: asyncio.Future[Result] = loop.create_future()
            await queue.put((self._request(columns, i), future))
            futures.append(future)
        results = await asyncio.gather(*futures)
        for result in results:
            self._count(result)
        await self._report()
        if self._fail_on_error:
            for result in results:
                if result.error is not None:
                    raise result.error
        table = _table(batch, columns)
        out_type = pa.binary() if output == "bytes" else pa.string()
        added = {
            "output": pa.array([r.output for r in results], type=out_type),
            "error": pa.array([r.error and error_text(r.error) for r in results], pa.string()),
            "time_to_first_part": pa.array([r.time_to_first_part for r in results], pa.float64()),
            "parts": pa.array([r.parts for r in results], pa.int64()),
            "duration": pa.array([r.duration for r in results], pa.float64()),
            "attempts": pa.array([r.attempts for r in results], pa.int64()),
        }
        for name, array in added.items():
            table = table.append_column(name, array)
        return table


def _table(batch: Any, columns: dict[str, Any]) -> Any:
    """The batch's own columns as a pyarrow Table (Ray's conversion, tensors included)."""
    import pyarrow as pa
    from ray.data.block import BlockAccessor, BlockType

    if isinstance(batch, pa.Table):
        return batch
    block = BlockAccessor.batch_to_block(columns, block_type=BlockType.ARROW)
    if not isinstance(block, pa.Table):
        block = BlockAccessor.for_block(block).to_arrow()
    return block
