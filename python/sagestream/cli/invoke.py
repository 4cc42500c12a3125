"""``sagestream invoke``: call an endpoint and write its answer to stdout as it arrives."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sagestream.cli import _common, _output
from sagestream.service import INVOKE, INVOKE_STREAM

# Options only InvokeEndpoint has (InvokeEndpointWithResponseStream has no such parameter).
_INVOKE_ONLY = [m for m in INVOKE.options if m.name not in INVOKE_STREAM.members]
_BOTH = [m for m in INVOKE.options if m.name in INVOKE_STREAM.members]

HELP = "invoke an endpoint and stream its answer to stdout"
DESCRIPTION = (
    "Call InvokeEndpointWithResponseStream (or InvokeEndpoint with --no-stream) and write each part "
    "to stdout as it arrives; a timing summary goes to stderr. "
) + _common.exit_statuses(
    "the request or the stream failed (or --lines / --sse / --json found none in the answer)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``invoke``'s arguments."""
    _common.add_endpoint(parser, INVOKE)
    parser.add_argument(
        "--body",
        required=True,
        type=lambda value: _common.read_body(value, INVOKE.members["Body"]),
        metavar="BODY",
        help="request body: TEXT, @FILE to read a file, or - to read stdin",
    )
    _output.add_output_options(parser)
    request = parser.add_argument_group("request")
    _common.add_member_options(request, _BOTH, defaults={"content_type": "application/json"})
    request.add_argument(
        "--no-stream", action="store_true", help="call InvokeEndpoint: the whole answer at once"
    )
    _common.add_member_options(request, _INVOKE_ONLY, note=" (with --no-stream)")
    _common.add_aws_options(parser)
    timing = parser.add_argument_group("timing")
    _common.add_seconds(
        timing, "--read-timeout", "seconds without data before giving up (default: botocore's, 60)"
    )
    _common.add_seconds(timing, "--deadline", "seconds for the whole stream (not with --no-stream)")


def _check_combinations(args: argparse.Namespace) -> None:
    parser: argparse.ArgumentParser = args.parser
    if args.no_stream:
        if args.mode is not None:
            parser.error(f"--{args.mode} reads a response stream; --no-stream writes the answer as it is")
        if args.deadline is not None:
            parser.error("--deadline bounds a response stream; with --no-stream use --read-timeout")
        return
    for member in _INVOKE_ONLY:
        if getattr(args, member.keyword) is not None:
            parser.error(
                f"{member.flag} needs --no-stream: InvokeEndpointWithResponseStream has no such parameter"
            )
    if args.session_id == "NEW_SESSION":
        parser.error("--session-id NEW_SESSION needs --no-stream; a stream takes an existing session id")


def run(args: argparse.Namespace) -> int:
    """The ``invoke`` handler."""
    from botocore.config import Config

    _check_combinations(args)
    config = Config(read_timeout=args.read_timeout) if args.read_timeout else None
    return _common.with_client("invoke", args, lambda client: _invoke(client, args), config=config)


def _invoke(client: Any, args: argparse.Namespace) -> int:
    if args.no_stream:
        result = client.invoke(args.endpoint, args.body, **_common.member_values(args, INVOKE.options))
        _output.write_out([result.body])
        if not args.quiet and result.new_session_id:
            sys.stderr.write(f"\n[sagestream] new session {result.new_session_id}\n")
        return 0
    options = _common.member_values(args, INVOKE_STREAM.options)
    stream = client.invoke_stream(args.endpoint, args.body, deadline=args.deadline, **options)
    return _output.stream_out(stream, _output.render(stream, args.mode), quiet=args.quiet, mode=args.mode)
