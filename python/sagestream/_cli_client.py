"""``sagestream invoke`` and ``sagestream demo``: stream an endpoint's answer to stdout."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

from sagestream.exceptions import ParamValidationError, SageStreamError

DEMO_PROMPT = "Tell me about rivers"


def register(subparsers: Any) -> None:
    """Add ``invoke`` and ``demo`` to the ``sagestream`` parser."""
    invoke = subparsers.add_parser(
        "invoke",
        help="invoke an endpoint and stream its answer to stdout",
        description=(
            "Call InvokeEndpointWithResponseStream (or InvokeEndpoint with --no-stream) and write "
            "each part to stdout as it arrives; a timing summary goes to stderr."
        ),
    )
    invoke.add_argument("endpoint", metavar="ENDPOINT", help="endpoint name")
    invoke.add_argument(
        "--body", required=True, help="request body: TEXT, @FILE to read a file, or - for stdin"
    )
    _output_options(invoke)
    invoke.add_argument("--content-type", help="request content type (default: application/json)")
    invoke.add_argument("--accept", help="accepted response content type")
    invoke.add_argument("--custom-attributes", help="CustomAttributes forwarded to the model")
    invoke.add_argument("--target-variant", help="production variant to invoke")
    invoke.add_argument("--target-container-hostname", help="container of a multi-container endpoint")
    invoke.add_argument("--inference-component", dest="inference_component_name", help="inference component")
    invoke.add_argument("--inference-id", help="id recorded with the request")
    invoke.add_argument("--session-id", help="stateful session id (NEW_SESSION with --no-stream)")
    invoke.add_argument("--no-stream", action="store_true", help="use InvokeEndpoint (no response stream)")
    invoke.add_argument("--region", help="AWS region")
    invoke.add_argument("--profile", help="AWS profile")
    invoke.add_argument("--endpoint-url", help="SageMaker Runtime URL (e.g. a local emulator)")
    invoke.add_argument("--read-timeout", type=float, help="seconds without data before giving up")
    invoke.add_argument("--deadline", type=float, help="seconds for the whole stream")
    invoke.set_defaults(func=_invoke)

    demo = subparsers.add_parser(
        "demo",
        help="stream from a local emulated endpoint (no AWS account needed)",
        description=(
            "Start the endpoint emulator in this process on a free port and stream a prompt "
            "through the full signed path, as 'invoke' does against SageMaker."
        ),
    )
    demo.add_argument("prompt", nargs="?", default=DEMO_PROMPT, help="prompt (default: %(default)r)")
    demo.add_argument(
        "--format", choices=("text", "sse", "jsonl"), default="text", help="model output format"
    )
    demo.add_argument("--tokens", type=int, default=40, help="tokens to generate (default: %(default)s)")
    demo.add_argument(
        "--delay-ms", type=float, default=30.0, help="pause between tokens (default: %(default)s)"
    )
    demo.add_argument("--quiet", "-q", action="store_true", help="no summary on stderr")
    demo.set_defaults(func=_demo)


def _output_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--lines", action="store_const", dest="mode", const="lines", help="print text lines")
    group.add_argument(
        "--sse",
        action="store_const",
        dest="mode",
        const="sse",
        help="print the data of each server-sent event",
    )
    group.add_argument(
        "--json", action="store_const", dest="mode", const="json", help="print each JSON line, compact"
    )
    parser.set_defaults(mode="raw")
    parser.add_argument("--quiet", "-q", action="store_true", help="no summary on stderr")


def _read_body(value: str) -> bytes:
    if value == "-":
        return sys.stdin.buffer.read()
    if value.startswith("@"):
        with open(value[1:], "rb") as f:
            return f.read()
    return value.encode("utf-8")


def _render(stream: Any, mode: str) -> Iterator[bytes]:
    """What to write for each unit of output, in the chosen mode."""
    if mode == "lines":
        for line in stream.lines(errors="replace"):
            yield line.encode("utf-8") + b"\n"
    elif mode == "sse":
        for event in stream.sse():
            yield event.data.encode("utf-8") + b"\n"
    elif mode == "json":
        for value in stream.json_lines():
            yield json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
    else:
        yield from stream


def _summary(stream: Any, err: IO[str]) -> None:
    m = stream.metrics
    first = "-" if m.time_to_first_part is None else f"{m.time_to_first_part * 1000:.1f} ms"
    total = m.duration if m.duration is not None else (time.monotonic() - m.started)
    rate = m.parts / total if total > 0 else 0.0
    err.write(
        f"\n[sagestream] {m.parts} parts, {m.bytes} bytes in {total:.3f} s; "
        f"first part after {first}; {rate:,.0f} parts/s; longest gap {m.max_gap * 1000:.1f} ms\n"
    )


_UNITS = {"lines": "lines", "sse": "server-sent events", "json": "JSON lines"}


def _stream_out(stream: Any, mode: str, quiet: bool) -> int:
    out = sys.stdout.buffer
    written = 0
    try:
        with stream:
            for piece in _render(stream, mode):
                out.write(piece)
                out.flush()
                written += 1
    finally:
        if not quiet:
            _summary(stream, sys.stderr)
    if mode in _UNITS and written == 0 and stream.metrics.bytes:
        # Not silent: the bytes arrived but held nothing of the chosen kind.
        sys.stderr.write(
            f"[sagestream] --{mode}: {stream.metrics.bytes} bytes received but no {_UNITS[mode]} in "
            f"them (the endpoint answered {stream.content_type or 'no content type'}); "
            f"run without --{mode} to see them as they came\n"
        )
    return 0


def _fail(exc: BaseException) -> int:
    sys.stderr.write(f"sagestream: {type(exc).__name__}: {exc}\n")
    return 2 if isinstance(exc, ParamValidationError) else 1


def _invoke(args: argparse.Namespace) -> int:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    from sagestream._client import Client

    try:
        body = _read_body(args.body)
        session = boto3.Session(profile_name=args.profile, region_name=args.region)
        config = Config(read_timeout=args.read_timeout) if args.read_timeout else None
        client = Client(session, endpoint_url=args.endpoint_url, config=config)
        common: dict[str, Any] = {
            "content_type": args.content_type or "application/json",
            "accept": args.accept,
            "custom_attributes": args.custom_attributes,
            "target_variant": args.target_variant,
            "target_container_hostname": args.target_container_hostname,
            "inference_id": args.inference_id,
            "inference_component_name": args.inference_component_name,
            "session_id": args.session_id,
        }
        if args.no_stream:
            result = client.invoke(args.endpoint, body, **common)
            sys.stdout.buffer.write(result.body)
            sys.stdout.buffer.flush()
            if not args.quiet and result.new_session_id:
                sys.stderr.write(f"\n[sagestream] new session {result.new_session_id}\n")
            return 0
        stream = client.invoke_stream(args.endpoint, body, deadline=args.deadline, **common)
        return _stream_out(stream, args.mode, args.quiet)
    except (SageStreamError, ClientError, BotoCoreError, OSError) as exc:
        return _fail(exc)


def _demo(args: argparse.Namespace) -> int:
    from sagestream._client import Client
    from sagestream.emulator import Emulator

    fmt = args.format
    with Emulator(
        host="127.0.0.1", port=0, endpoints={"demo": "demo"}, token_delay=args.delay_ms / 1000
    ) as emu:
        if not args.quiet:
            sys.stderr.write(f"[sagestream] emulated endpoint 'demo' at {emu.url}\n")
        client = Client(
            region_name=emu.region,
            endpoint_url=emu.url,
            aws_access_key_id=emu.access_key_id,
            aws_secret_access_key=emu.secret_access_key,
        )
        body = json.dumps({"inputs": args.prompt, "parameters": {"max_new_tokens": args.tokens}})
        try:
            stream = client.invoke_stream(
                "demo", body, content_type="application/json", custom_attributes=f"format={fmt}"
            )
            out = sys.stdout.buffer
            try:
                with stream:
                    for piece in _demo_text(stream, fmt):
                        out.write(piece)
                        out.flush()
                out.write(b"\n")
                out.flush()
            finally:
                if not args.quiet:
                    _summary(stream, sys.stderr)
        except SageStreamError as exc:
            return _fail(exc)
        finally:
            client.close()
    return 0


def _demo_text(stream: Any, fmt: str) -> Iterator[bytes]:
    """The generated text, token by token, whatever the output format."""
    if fmt == "sse":
        for event in stream.sse():
            if event.data:
                yield str(event.json()["token"]["text"]).encode("utf-8")
    elif fmt == "jsonl":
        for doc in stream.json_lines():
            yield str(doc["token"]["text"]).encode("utf-8")
    else:
        yield from stream
