"""Batch inference on one machine: ``SageMakerStream`` on Ray Data against a boto3 thread pool.

N prompts, each answered by a stream of T tokens (PayloadPart frames of 20 bytes) from the
loopback server of ``_pacer.py`` in a process of its own, side by side in one run:

- ``SageMakerStream`` on Ray Data with 2 actors (``max_in_flight`` each), the ``prompt`` column
  in, the ``output`` text column out, read back by the driver with ``iter_batches``;
- what users write today: a ``concurrent.futures.ThreadPoolExecutor`` of the same total
  concurrency around one boto3 client (thread-safe, its pool as big as the thread pool), each
  thread building the JSON body, calling ``invoke_endpoint_with_response_stream`` and joining the
  ``PayloadPart`` bytes of the Body into text;
- the same pipeline with 1 actor (scaling from 1 to 2 actors, ``max_in_flight`` per actor the
  same);
- for reference, the building block without Ray: ``sagestream.batch.invoke_many`` in this
  process with the same total concurrency (what Ray Data adds is the difference).

Rows/s is rows over the wall time of the whole run (for Ray: from building the dataset to the
last row read back, so starting the actors is in it). Client CPU is every process but the
server's:

- the thread pool and ``invoke_many`` run in this process: ``time.process_time()`` (all its
  threads);
- a Ray run is spread over the driver, the actors' worker processes, Ray's own (raylet, GCS,
  agents) and any worker Ray starts on the way. They are all descendants of this process (a
  local ``ray.init()`` starts GCS and the raylet, the raylet starts the workers), so the CPU is
  summed over this process tree, the server's subtree left out, from ``/proc/<pid>/stat``
  (user + system). The raylet does not wait for its workers' exit status in a way that adds
  their time to its own children's (``cutime`` stays 0), so the tree is sampled every 0.1 s
  and a process counts from its CPU at the start of the run (0 if it started during it) to its
  last sample: of a worker ending during the run, at most its last 0.1 s is missed (a run
  starts once the last run's actors are gone, so the ones ending are this run's, idle then).
  The sampler's own CPU (``thread_time``) is left out. Reporting from inside each actor (its
  own ``process_time`` delta) would miss Ray's processes and the driver's share, which the user
  pays for as well; Ray's state API reports no CPU time. ``/proc`` is read directly rather than
  through psutil, which this project does not depend on (Ray only vendors a copy); so the
  benchmark runs on Linux.
- Of the total, the CPU of the processes hosting the ``SageMakerStream`` actors (by their Ray
  process title) is shown apart. It includes starting the actor: a Python process importing
  Ray Data, boto3 and sagestream (or a worker Ray had started before, then only the imports).
- That start is a fixed cost per run, which a long job amortizes: it is read off a second, small
  run of each client in each round (one batch of 64 rows for each of 2 actors), and the CPU
  per row beyond it is (CPU(N) - CPU(n)) / (N - n), paired by round.

Each round runs every client once, rounds alternating; medians are printed as markdown tables.
Tokens come back to back by default (``--interval 0``): rows/s is then what the client's CPU
allows; ``--interval 0.02`` paces them like an LLM (50 tokens/s), where rows/s is bounded by the
concurrency and the CPU per row is the figure to read.

    python benches/bench_ray.py [--rows 10000] [--tokens 200] [--rounds 3] [--in-flight 16]
                                [--interval 0] [--quick]

Build the extension in release mode first (``maturin develop -r``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import _pacer
from bench_requests import CREDS, boto3_client, sagestream_async

ENDPOINT = "bench"
PARAMETERS = {"max_new_tokens": 200}
_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_SAMPLE_SECONDS = 0.1
BATCH_SIZE = 64
#: In the Ray process title of the actors: ``ray::MapWorker(MapBatches(SageMakerStream))``.
_MARKER = "SageMakerStream"


# --- the CPU of a process tree ---------------------------------------------------------------


@dataclass(frozen=True)
class _Proc:
    ppid: int
    cpu: float  # user + system seconds
    rss: int  # resident bytes
    title: str


def _read(pid: int) -> _Proc | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            title = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:  # ended meanwhile
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rindex(b")") + 2 :].split()
    utime, stime, rss = int(fields[11]), int(fields[12]), int(fields[21])
    return _Proc(int(fields[1]), (utime + stime) / _TICK, rss * _PAGE, title)


def _tree(root: int, exclude: int) -> dict[int, _Proc]:
    """``root`` and its descendants, ``exclude`` and its descendants left out."""
    procs: dict[int, _Proc] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            proc = _read(int(name))
            if proc is not None:
                procs[int(name)] = proc
    children: dict[int, list[int]] = {}
    for pid, proc in procs.items():
        children.setdefault(proc.ppid, []).append(pid)
    kept: dict[int, _Proc] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        if pid == exclude or pid not in procs:
            continue
        kept[pid] = procs[pid]
        frontier.extend(children.get(pid, []))
    return kept


def _wait_gone(marker: str, root: int, exclude: int, timeout: float = 60.0) -> None:
    """Wait until no process of the tree has ``marker`` in its title (the last run's actors)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not any(marker in p.title for p in _tree(root, exclude).values()):
            return
        time.sleep(0.1)


class TreeCPU:
    """CPU seconds of this process tree (the server's subtree left out) over a run, and the
    share of the processes whose title holds ``marker``.

    The tree is sampled every 0.1 s; each process counts from its CPU at the start (0 if it
    started later) to its last sample. The sampler's own CPU is left out.
    """

    def __init__(self, exclude: int, marker: str) -> None:
        self.exclude = exclude
        self.marker = marker
        self.root = os.getpid()
        self._stop = threading.Event()
        self._last: dict[int, float] = {}
        self._marked: set[int] = set()
        self._sampler_cpu = 0.0
        #: The most resident memory the tree held at once (bytes; shared pages counted in each).
        self.peak_rss = 0
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        started = time.thread_time()
        while not self._stop.wait(_SAMPLE_SECONDS):
            self._read()
        self._sampler_cpu = time.thread_time() - started

    def _read(self) -> None:
        tree = _tree(self.root, self.exclude)
        self.peak_rss = max(self.peak_rss, sum(p.rss for p in tree.values()))
        for pid, proc in tree.items():
            self._last[pid] = proc.cpu
            if self.marker in proc.title:
                self._marked.add(pid)

    def __enter__(self) -> TreeCPU:
        self._before = {pid: p.cpu for pid, p in _tree(self.root, self.exclude).items()}
        self._sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._sampler.join()
        self._read()
        used = {pid: cpu - self._before.get(pid, 0.0) for pid, cpu in self._last.items()}
        self.total = sum(used.values()) - self._sampler_cpu
        self.marked = sum(used[pid] for pid in self._marked)


# --- the runs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    cpu: float  # client CPU seconds, all client processes
    actors: float | None  # of which in the SageMakerStream actors' processes
    peak_rss: int | None  # bytes, all Ray processes and the driver (Ray runs)
    wall: float
    rows: int


def prompts(rows: int) -> list[str]:
    return [f"Question {i}: what is the answer?" for i in range(rows)]


def check(rows: int, answered: int, failed: int, parts: int, tokens: int, name: str) -> None:
    """Every row answered in full, or the figures mean nothing."""
    if answered != rows or failed or parts != rows * tokens:
        raise RuntimeError(
            f"{name}: {answered} of {rows} rows back, {failed} failed, {parts} of {rows * tokens} parts"
        )


def ray_run(
    url: str, server_pid: int, rows: int, tokens: int, attributes: str, actors: int, in_flight: int
) -> Run:
    import ray
    import sagestream.ray
    from botocore.config import Config

    items = [{"id": i, "prompt": p} for i, p in enumerate(prompts(rows))]
    answered = failed = parts = 0
    _wait_gone(_MARKER, os.getpid(), server_pid)
    with TreeCPU(exclude=server_pid, marker=_MARKER) as cpu:
        started = time.perf_counter()
        ds = ray.data.from_items(items).map_batches(
            sagestream.ray.SageMakerStream,
            batch_size=BATCH_SIZE,
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=0.5,
            fn_constructor_kwargs=dict(
                endpoint_name=ENDPOINT,
                endpoint_url=url,
                custom_attributes=attributes,
                parameters=PARAMETERS,
                max_in_flight=in_flight,
                config=Config(max_pool_connections=in_flight, retries={"max_attempts": 0}),
                **CREDS,
            ),
        )
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            answered += batch.num_rows
            failed += batch.num_rows - batch.column("error").null_count
            parts += sum(batch.column("parts").to_pylist())
        wall = time.perf_counter() - started
    check(rows, answered, failed, parts, tokens, f"SageMakerStream, {actors} actor(s)")
    return Run(cpu.total, cpu.marked, cpu.peak_rss, wall, rows)


def threads_run(url: str, rows: int, tokens: int, attributes: str, concurrency: int) -> Run:
    def one(prompt: str) -> tuple[str | None, int]:
        body = json.dumps({"inputs": prompt, "parameters": PARAMETERS}).encode()
        try:
            response = client.invoke_endpoint_with_response_stream(
                EndpointName=ENDPOINT, Body=body, ContentType="application/json", CustomAttributes=attributes
            )
            chunks = [event["PayloadPart"]["Bytes"] for event in response["Body"] if "PayloadPart" in event]
        except Exception:
            return None, 0
        return b"".join(chunks).decode(), len(chunks)

    items = prompts(rows)
    cpu, started = time.process_time(), time.perf_counter()
    client = boto3_client(url, pool=concurrency)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, items))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    failed = sum(1 for text, _ in results if text is None)
    check(rows, len(results), failed, sum(n for _, n in results), tokens, "boto3 threads")
    return Run(cpu, None, None, wall, rows)


def invoke_many_run(url: str, rows: int, tokens: int, attributes: str, concurrency: int) -> Run:
    import asyncio

    from sagestream.batch import invoke_many

    bodies = [json.dumps({"inputs": p, "parameters": PARAMETERS}).encode() for p in prompts(rows)]

    async def run() -> tuple[int, int, int]:
        answered = failed = parts = 0
        async with sagestream_async(url, pool=concurrency) as client:
            async for result in invoke_many(
                client,
                ENDPOINT,
                bodies,
                max_in_flight=concurrency,
                output="text",
                content_type="application/json",
                custom_attributes=attributes,
            ):
                answered += 1
                failed += result.error is not None
                parts += result.parts or 0
        return answered, failed, parts

    cpu, started = time.process_time(), time.perf_counter()
    answered, failed, parts = asyncio.run(run())
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    check(rows, answered, failed, parts, tokens, "invoke_many")
    return Run(cpu, None, None, wall, rows)


# --- tables ----------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _marginal(runs: list[Run], small: list[Run]) -> float:
    """CPU seconds per row beyond a run's fixed cost: (CPU(N) - CPU(n)) / (N - n), paired by round."""
    return _median([(r.cpu - s.cpu) / (r.rows - s.rows) for r, s in zip(runs, small, strict=True)])


def table(title: str, rows: dict[str, list[Run]], small: dict[str, list[Run]], baseline: str) -> None:
    print(f"\n{title}")
    print(
        "| client | rows/s | CPU ms / row | of which in the actors | fixed CPU s / run "
        f"| CPU ms / row beyond it | wall s | CPU / row vs {baseline} (all / beyond fixed) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    base = _median([r.cpu / r.rows for r in rows[baseline]])
    base_marginal = _marginal(rows[baseline], small[baseline])
    for name, runs in rows.items():
        per = _median([r.cpu / r.rows for r in runs])
        marginal = _marginal(runs, small[name])
        fixed = _median([s.cpu - marginal * s.rows for s in small[name]])
        rate = _median([r.rows / r.wall for r in runs])
        wall = _median([r.wall for r in runs])
        marked = [r.actors / r.rows for r in runs if r.actors is not None]
        in_actors = f"{_median(marked) * 1e3:.3f}" if marked else "-"
        ratio = "baseline" if name == baseline else f"{per / base:.2f}x / {marginal / base_marginal:.2f}x"
        print(
            f"| {name} | {rate:.0f} | {per * 1e3:.3f} | {in_actors} | {fixed:.2f} "
            f"| {marginal * 1e3:.3f} | {wall:.2f} | {ratio} |"
        )


def scaling(rows: dict[str, list[Run]], small: dict[str, list[Run]], one: str, two: str) -> None:
    print("\nscaling of the same pipeline from 1 to 2 actors")
    print("| actors | rows/s | CPU ms / row | CPU ms / row beyond the fixed cost | rows/s vs 1 actor |")
    print("|---|---:|---:|---:|---:|")
    base = _median([r.rows / r.wall for r in rows[one]])
    for actors, name in ((1, one), (2, two)):
        rate = _median([r.rows / r.wall for r in rows[name]])
        per = _median([r.cpu / r.rows for r in rows[name]])
        marginal = _marginal(rows[name], small[name])
        print(f"| {actors} | {rate:.0f} | {per * 1e3:.3f} | {marginal * 1e3:.3f} | {rate / base:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=16, help="requests at once per actor")
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between tokens")
    parser.add_argument("--quick", action="store_true", help="500 rows, 1 round: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.rounds = 500, 1
    if args.rows <= 2 * BATCH_SIZE:
        parser.error(f"--rows must be more than {2 * BATCH_SIZE}")
    attributes = f"tokens={args.tokens};size=20;interval={args.interval}"

    import ray

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    url, server = _pacer.start()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    two, one, pool, single = (
        "SageMakerStream, 2 actors (Ray Data)",
        "SageMakerStream, 1 actor (Ray Data)",
        f"boto3, ThreadPoolExecutor({2 * args.in_flight})",
        "sagestream.batch.invoke_many, 1 process, no Ray",
    )
    runs: dict[str, Callable[[int], Run]] = {
        two: lambda n: ray_run(url, server.pid, n, args.tokens, attributes, 2, args.in_flight),
        pool: lambda n: threads_run(url, n, args.tokens, attributes, 2 * args.in_flight),
        one: lambda n: ray_run(url, server.pid, n, args.tokens, attributes, 1, args.in_flight),
        single: lambda n: invoke_many_run(url, n, args.tokens, attributes, 2 * args.in_flight),
    }
    # The fixed cost of a run (Ray: starting the actors) is read off a run of one batch for
    # each of 2 actors: beyond it, CPU per row is (CPU(N) - CPU(n)) / (N - n).
    small_rows = 2 * BATCH_SIZE
    try:
        for run in runs.values():  # warm-up: Ray's worker pool, imports, the server's frames
            run(small_rows)
        results: dict[str, list[Run]] = {name: [] for name in runs}
        small: dict[str, list[Run]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, run in runs.items():
                results[name].append(run(args.rows))
                small[name].append(run(small_rows))
        print(
            f"\n{args.rows} prompts x {args.tokens} tokens x 20 B ({args.interval} s apart), "
            f"{2 * args.in_flight} requests at once in all, {args.rounds} round(s), medians"
        )
        table(
            "side by side, the same total concurrency",
            {two: results[two], pool: results[pool], single: results[single]},
            small,
            pool,
        )
        scaling(results, small, one, two)
        peak = max(r.peak_rss or 0 for r in results[two] + results[one])
        print(f"\npeak resident memory of the driver and the Ray processes: {peak / 2**20:.0f} MiB")
    finally:
        ray.shutdown()
        server.terminate()


if __name__ == "__main__":
    main()
