"""``sagestream duplex``: a bidirectional session — stdin lines (or a file in chunks) in, the
endpoint's output parts out as they arrive, both at once."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import IO, Any

from sagestream.cli import _common, _output
from sagestream.service import INVOKE_DUPLEX

HELP = "a bidirectional stream: stdin lines in, output parts out as they arrive"
DESCRIPTION = (
    "Call InvokeEndpointWithBidirectionalStream over HTTP/2: each line of stdin is sent as a UTF-8 "
    "part (CompletionState COMPLETE), or --file in binary chunks; the endpoint's output parts are "
    "written to stdout as they arrive, while the input is still being sent. A summary goes to "
    "stderr. "
) + _common.exit_statuses("the session failed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``duplex``'s arguments."""
    _common.add_endpoint(parser, INVOKE_DUPLEX)
    source = parser.add_argument_group("input")
    source.add_argument(
        "--file", metavar="PATH", help="send this file in binary chunks instead of stdin lines"
    )
    _common.add_count(
        source,
        "--chunk-size",
        "bytes per part with --file (default: %(default)s, 100 ms of 16 kHz 16-bit audio)",
        metavar="BYTES",
        default=3200,
    )
    _output.add_output_options(parser)
    parser.add_argument(
        "--parts",
        action="store_const",
        dest="mode",
        const="parts",
        help="print one line per part: DataType, CompletionState and the part",
    )
    request = parser.add_argument_group("request")
    _common.add_member_options(request, INVOKE_DUPLEX.options)
    _common.add_aws_options(parser)
    parser.add_argument(
        "--duplex-endpoint-url",
        type=_common.endpoint_url,
        metavar="URL",
        help=(
            "URL of this operation (default: AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME_HTTP2, else port "
            "8443 of --endpoint-url's host, else https://runtime.sagemaker.REGION.amazonaws.com:8443); "
            "'sagestream serve' prints its own"
        ),
    )
    parser.add_argument("--ca-bundle", metavar="PEM", help="trust this CA bundle (the emulator's TLS port)")
    _common.add_seconds(parser, "--deadline", "seconds for the whole session")


def _lines(stream: IO[str]) -> Iterator[str]:
    for line in stream:
        yield line.rstrip("\r\n")


def _chunks(path: str, size: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk


def _render(session: Any, mode: str | None) -> Iterator[bytes]:
    if mode != "parts":
        yield from _output.render(session, mode)
        return
    for part in session:
        text = bytes(part).decode("utf-8", "replace") if part.is_text else bytes(part).hex()
        yield f"{part.data_type or '-'} {part.completion_state or '-'} {text}\n".encode()


def run(args: argparse.Namespace) -> int:
    """The ``duplex`` handler."""
    if args.file is not None:
        try:
            open(args.file, "rb").close()
        except OSError as exc:
            sys.stderr.write(f"sagestream duplex: cannot read {args.file!r}: {exc.strerror or exc}\n")
            return _common.EXIT_USAGE
    options: dict[str, Any] = {"duplex_endpoint_url": args.duplex_endpoint_url}
    if args.ca_bundle:
        options["verify"] = args.ca_bundle
    return _common.with_client("duplex", args, lambda client: _session(client, args), **options)


def _session(client: Any, args: argparse.Namespace) -> int:
    options = _common.member_values(args, INVOKE_DUPLEX.options)
    session = client.invoke_bidirectional(args.endpoint, deadline=args.deadline, **options)
    if args.file is not None:
        session.feed_in_background(_chunks(args.file, args.chunk_size), text=False)
    else:
        session.feed_in_background(_lines(sys.stdin), text=True, complete=True)
    return _output.stream_out(session, _render(session, args.mode), quiet=args.quiet, mode=args.mode)
