"""``sagestream serve``: run the local SageMaker Runtime endpoint emulator."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import signal
import sys
from typing import Any

from sagestream.cli import _common
from sagestream.emulator.catalog import check_model_spec
from sagestream.emulator.config import (
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_ASYNC_FAILURE_PATH,
    DEFAULT_ASYNC_INPUT_PATH,
    DEFAULT_ASYNC_OUTPUT_PATH,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_DUPLEX_PORT,
    DEFAULT_DUPLEX_TLS_PORT,
    DEFAULT_HOST,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_PORT,
    DEFAULT_REGION,
    DEFAULT_REQUEST_LOG_SIZE,
    DEFAULT_S3_PORT,
    DEFAULT_SECRET_ACCESS_KEY,
    EmulatorConfig,
    client_environment,
)
from sagestream.emulator.s3 import LOOPBACK, moto_available
from sagestream.emulator.server import EmulatorServer

_NO_S3_HINT = "install 'sagestream[serve]' for the embedded S3 or pass --s3-endpoint-url"


def _endpoint(value: str) -> tuple[str, str]:
    name, sep, model = value.partition("=")
    if not sep or not name or not model:
        raise argparse.ArgumentTypeError(
            f"expected NAME=MODEL (MODEL: demo, demo:FORMAT, echo or http://host:port), got {value!r}"
        )
    try:
        check_model_spec(model)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return name, model


HELP = "run a local SageMaker Runtime endpoint emulator"
DESCRIPTION = (
    "Serve InvokeEndpoint, InvokeEndpointWithResponseStream and InvokeEndpointAsync locally, "
    "SigV4-verified, for stock SDKs and the AWS CLI (--endpoint-url http://HOST:PORT), and "
    "InvokeEndpointWithBidirectionalStream over HTTP/2 on ports of its own."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``serve``'s arguments."""
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port",
        type=_common.port,
        default=DEFAULT_PORT,
        help="port, 0 for any free port (default: %(default)s)",
    )
    parser.add_argument(
        "--region", default=DEFAULT_REGION, help="region clients sign for (default: %(default)s)"
    )
    parser.add_argument(
        "--access-key-id", default=DEFAULT_ACCESS_KEY_ID, help="accepted access key id (default: %(default)s)"
    )
    parser.add_argument(
        "--secret-access-key",
        default=DEFAULT_SECRET_ACCESS_KEY,
        help="its secret access key (default: %(default)s)",
    )
    parser.add_argument(
        "--endpoint",
        action="append",
        type=_endpoint,
        default=[],
        metavar="NAME=MODEL",
        help="serve endpoint NAME with MODEL: demo, demo:FORMAT (its default output format: text, sse, "
        "jsonl or json), echo or http://host:port (a container); repeatable. "
        "NAME '*' matches every other name. Without any, every name is served by demo.",
    )
    parser.add_argument(
        "--s3-endpoint-url",
        default=None,
        help="S3-compatible endpoint for async invocations (default: start an embedded one)",
    )
    _common.add_non_negative(
        parser,
        "--token-delay",
        "pause before each token of the demo model (default: %(default)s)",
        metavar="SECONDS",
        default=0.02,
    )
    parser.add_argument(
        "--async-input-path",
        default=DEFAULT_ASYNC_INPUT_PATH,
        help="S3 prefix for async inputs; its bucket is created in the embedded S3 (default: %(default)s)",
    )
    parser.add_argument(
        "--async-output-path",
        default=DEFAULT_ASYNC_OUTPUT_PATH,
        help="S3 prefix of async results (default: %(default)s)",
    )
    parser.add_argument(
        "--async-failure-path",
        default=DEFAULT_ASYNC_FAILURE_PATH,
        help="S3 prefix of async failure documents (default: %(default)s)",
    )
    _common.add_count(
        parser,
        "--async-max-concurrency",
        "async invocations processed at once per emulator; the rest queue (default: %(default)s)",
        metavar=None,
        default=4,
    )
    _common.add_seconds(
        parser,
        "--idle-timeout",
        "close a connection with no request in progress after this long (default: %(default)s)",
        default=DEFAULT_IDLE_TIMEOUT,
    )
    _common.add_seconds(
        parser,
        "--body-timeout",
        "a request body must arrive within this long of its headers (default: %(default)s)",
        default=DEFAULT_BODY_TIMEOUT,
    )
    _common.add_count(
        parser,
        "--max-connections",
        "open client connections at most, all ports together (default: a margin below the open-file limit)",
    )
    _common.add_count(
        parser,
        "--request-log-size",
        "records of requests kept in memory, the oldest dropped first (default: %(default)s)",
        default=DEFAULT_REQUEST_LOG_SIZE,
    )
    # The ports besides the main one: any free one when it is (--port 0), else their default.
    for flag, what, default in (
        (
            "--duplex-port",
            "cleartext HTTP/2 port of InvokeEndpointWithBidirectionalStream",
            DEFAULT_DUPLEX_PORT,
        ),
        ("--duplex-tls-port", "its TLS port, with a certificate made at start-up", DEFAULT_DUPLEX_TLS_PORT),
        ("--s3-port", "the embedded S3's port on 127.0.0.1", DEFAULT_S3_PORT),
    ):
        text = f"{what} (default: {default}; any free one with --port 0)"
        parser.add_argument(flag, type=_common.port, default=None, help=text)
    parser.add_argument("--no-duplex-tls", action="store_true", help="do not serve the TLS port")
    parser.add_argument("--quiet", action="store_true", help="do not log one line per request")
    parser.add_argument(
        "--print-env",
        action="store_true",
        help="print the export lines that point SDKs, the AWS CLI and sagestream at an emulator "
        'started with the same options, and exit: eval "$(sagestream serve --print-env)"',
    )


def _or_default(port: int | None, main_port: int, default: int) -> int:
    """A port as given; else any free one when the main port is, else ``default``."""
    if port is not None:
        return port
    return 0 if main_port == 0 else default


def run(args: argparse.Namespace) -> int:
    """The ``serve`` handler."""
    config = _config(args)
    if args.print_env:
        return _print_env(config)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(message)s",
        stream=sys.stderr,
    )
    # The embedded S3 server (werkzeug) would log every S3 call of the emulator itself.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        server = EmulatorServer(config)
    except ValueError as exc:
        print(f"sagestream serve: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_run(server))


def _config(args: argparse.Namespace) -> EmulatorConfig:
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        region=args.region,
        access_key_id=args.access_key_id,
        secret_access_key=args.secret_access_key,
        endpoints=dict(args.endpoint) if args.endpoint else None,
        s3_endpoint_url=args.s3_endpoint_url,
        embedded_s3=args.s3_endpoint_url is None,
        token_delay=args.token_delay,
        async_input_path=args.async_input_path,
        async_output_path=args.async_output_path,
        async_failure_path=args.async_failure_path,
        async_max_concurrency=args.async_max_concurrency,
        idle_timeout=args.idle_timeout,
        body_timeout=args.body_timeout,
        max_connections=args.max_connections,
        request_log_size=args.request_log_size,
        duplex_port=_or_default(args.duplex_port, args.port, DEFAULT_DUPLEX_PORT),
        duplex_tls=not args.no_duplex_tls,
        duplex_tls_port=_or_default(args.duplex_tls_port, args.port, DEFAULT_DUPLEX_TLS_PORT),
        s3_port=_or_default(args.s3_port, args.port, DEFAULT_S3_PORT),
    )


def _exports(env: dict[str, str]) -> str:
    """``export NAME=value`` lines, quoted for any POSIX shell."""
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in env.items())


def _print_env(config: EmulatorConfig) -> int:
    """``--print-env``: the environment for an emulator started with ``config``, for ``eval``."""
    ports = (config.port, config.duplex_port, config.s3_port if config.embedded_s3 else 1)
    if 0 in ports:
        print(
            "sagestream serve: --print-env needs fixed ports; with --port 0 they are picked at "
            "start, and the banner prints the export lines",
            file=sys.stderr,
        )
        return 2
    s3_url = config.s3_endpoint_url
    if s3_url is None and moto_available():
        s3_url = f"http://{LOOPBACK}:{config.s3_port}"
    env = client_environment(config, port=config.port, duplex_port=config.duplex_port, s3_url=s3_url)
    print(_exports(env))
    if s3_url is None:
        print(f"# no S3, so async inference is refused: {_NO_S3_HINT}")
    return 0


def _quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Log running out of file descriptors once per 10 s, not once per refused accept.

    asyncio reports every failed ``accept()`` of a burst, each with a traceback; the connection
    guard makes room, and accepting resumes a second later.
    """
    last = [-1e9]

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            now = loop.time()
            if now - last[0] >= 10.0:
                last[0] = now
                logging.getLogger("sagestream.emulator").warning(
                    "out of file descriptors: accepting again in a second, idle connections are closed"
                )
            return
        if _resumed_after_close(context):
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def _resumed_after_close(context: dict[str, Any]) -> bool:
    """Whether asyncio's resumption of accepting, scheduled a second after running out of file
    descriptors, fired after shutdown closed the listening socket (nothing left to resume)."""
    callback = getattr(context.get("handle"), "_callback", None)
    return (
        getattr(callback, "__name__", "") == "_start_serving"
        and isinstance(context.get("exception"), ValueError)
        and "Invalid file descriptor: -1" in str(context.get("exception"))
    )


async def _run(server: EmulatorServer) -> int:
    loop = asyncio.get_running_loop()
    _quiet_accept_errors(loop)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
    try:
        await server.start()
    except OSError as exc:
        print(
            f"sagestream serve: cannot listen on {server.config.host} (ports {server.config.port}, "
            f"{server.config.duplex_port}, {server.config.duplex_tls_port}; S3 on {LOOPBACK}:"
            f"{server.config.s3_port}): {exc}",
            file=sys.stderr,
        )
        return 1
    config = server.config
    print(f"sagestream serve: listening on {server.url} (region {config.region})", flush=True)
    if config.endpoints:
        for name, model in config.endpoints.items():
            print(f"  endpoint {name} -> {model}", flush=True)
    else:
        print("  every endpoint name -> demo", flush=True)
    duplex = server.duplex
    print(f"  bidirectional streams (HTTP/2): {duplex.url}", flush=True)
    if duplex.tls_url is not None and duplex.certificate is not None:
        print(
            f"  bidirectional streams (HTTP/2, TLS): {duplex.tls_url} (CA: {duplex.certificate.ca_file})",
            flush=True,
        )
    elif duplex.tls_problem is not None:
        print(f"  bidirectional streams over TLS: none ({duplex.tls_problem})", flush=True)
    s3_url: str | None = None
    try:
        s3_url = await loop.run_in_executor(None, lambda: server.s3_endpoint_url)
    except RuntimeError as exc:
        server.s3_problem = str(exc)
    if s3_url is None:
        print(
            f"  S3: none, so async invocations are refused ({server.s3_problem}); {_NO_S3_HINT}",
            flush=True,
        )
    else:
        print(f"  S3: {s3_url}", flush=True)
        if server.s3_buckets:
            print(
                f"  S3 buckets: {', '.join(server.s3_buckets)} (async inputs under "
                f"{config.async_input_path}/, results under {config.async_output_path}/, "
                f"failures under {config.async_failure_path}/)",
                flush=True,
            )
    env = client_environment(config, port=server.port, duplex_port=duplex.port, s3_url=s3_url)
    print(
        "To point SDKs, the AWS CLI and sagestream at it, paste these lines in another shell (or run "
        'eval "$(sagestream serve --print-env)" there, with the options given here):',
        flush=True,
    )
    print(_exports(env), flush=True)
    try:
        await stop.wait()
    finally:
        print("sagestream serve: stopping", flush=True)
        await server.stop()
    return 0
