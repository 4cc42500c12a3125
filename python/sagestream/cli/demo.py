"""``sagestream demo``: stream from an endpoint emulated in this process, no AWS account needed."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Iterator
from typing import Any

from sagestream.cli import _common, _output

DEMO_PROMPT = "Tell me about rivers"


HELP = "stream from a local emulated endpoint (no AWS account needed)"
DESCRIPTION = (
    "Start the endpoint emulator in this process on a free port and stream a prompt through the "
    "full signed path, as 'invoke' does against SageMaker: the text to stdout token by token, a "
    "timing summary to stderr."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``demo``'s arguments."""
    parser.add_argument("prompt", nargs="?", default=DEMO_PROMPT, help="prompt (default: %(default)r)")
    parser.add_argument(
        "--format",
        choices=("text", "sse", "jsonl"),
        default="text",
        help="the model's output format, decoded back to text (default: %(default)s)",
    )
    _common.add_count(
        parser,
        "--tokens",
        "generate exactly N tokens (default: the model's own answer, which ends on its own)",
    )
    _common.add_non_negative(
        parser,
        "--delay-ms",
        "pause before each token, in milliseconds (default: %(default)s)",
        metavar="MS",
        default=30.0,
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no summary on stderr")


def run(args: argparse.Namespace) -> int:
    """The ``demo`` handler."""
    from sagestream import Client

    try:
        from sagestream.emulator import Emulator
    except ImportError as exc:
        return _common.missing_extra("demo", exc)

    with Emulator(
        host="127.0.0.1", port=0, endpoints={"demo": "demo"}, token_delay=args.delay_ms / 1000
    ) as emu:
        if not args.quiet:
            sys.stderr.write(f"[sagestream] emulated endpoint 'demo' at {emu.url}\n")
        body = json.dumps({"inputs": args.prompt})
        attributes = f"format={args.format}" + ("" if args.tokens is None else f";tokens={args.tokens}")
        with Client(
            region_name=emu.region,
            endpoint_url=emu.url,
            aws_access_key_id=emu.access_key_id,
            aws_secret_access_key=emu.secret_access_key,
        ) as client:
            try:
                stream = client.invoke_stream(
                    "demo", body, content_type="application/json", custom_attributes=attributes
                )
                pieces = itertools.chain(_text(stream, args.format), [b"\n"])
                _output.stream_out(stream, pieces, quiet=args.quiet)
            except _common.failures() as exc:
                return _common.report("demo", exc)
    return 0


def _text(stream: Any, fmt: str) -> Iterator[bytes]:
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
