"""``sagestream invoke``: call an endpoint and write its answer to stdout as it arrives."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sagestream import _params
from sagestream.cli import _common, _output
from sagestream.exceptions import ParamValidationError

# Options only InvokeEndpoint has (InvokeEndpointWithResponseStream has no such parameter).
_INVOKE_ONLY = (("target_model", "--target-model"), ("enable_explanations", "--enable-explanations"))


def register(subparsers: Any) -> None:
    """Add ``invoke`` to the ``sagestream`` parser."""
    parser = subparsers.add_parser(
        "invoke",
        help="invoke an endpoint and stream its answer to stdout",
        description=(
            "Call InvokeEndpointWithResponseStream (or InvokeEndpoint with --no-stream) and write "
            "each part to stdout as it arrives; a timing summary goes to stderr. Exit status: 0 "
            "done, 1 the request or the stream failed (or --lines / --sse / --json found none in "
            "the answer), 2 a usage or configuration error (nothing sent), 130 interrupted."
        ),
    )
    parser.add_argument(
        "endpoint",
        metavar="ENDPOINT",
        type=_common.checked(_params.check_endpoint_name),
        help="endpoint name",
    )
    parser.add_argument(
        "--body",
        required=True,
        type=_body,
        metavar="BODY",
        help="request body: TEXT, @FILE to read a file, or - to read stdin",
    )
    _output.add_output_options(parser)
    request = parser.add_argument_group("request")
    request.add_argument(
        "--content-type",
        metavar="MIME",
        default="application/json",
        type=_common.checked(_params.check_content_type),
        help="request content type (default: %(default)s)",
    )
    request.add_argument(
        "--accept",
        metavar="MIME",
        type=_common.checked(lambda v: _params.check_content_type(v, "Accept")),
        help="accepted response content type",
    )
    request.add_argument(
        "--custom-attributes",
        metavar="TEXT",
        type=_common.checked(_params.check_custom_attributes),
        help="CustomAttributes forwarded to the model",
    )
    request.add_argument(
        "--target-variant",
        metavar="NAME",
        type=_common.checked(_params.check_target_variant),
        help="production variant",
    )
    request.add_argument(
        "--target-container-hostname",
        metavar="NAME",
        type=_common.checked(_params.check_target_container_hostname),
        help="container of a multi-container endpoint",
    )
    request.add_argument(
        "--inference-component",
        metavar="NAME",
        dest="inference_component_name",
        type=_common.checked(_params.check_inference_component_name),
        help="inference component",
    )
    request.add_argument(
        "--inference-id",
        metavar="ID",
        type=_common.checked(_params.check_inference_id),
        help="id recorded with the request",
    )
    request.add_argument(
        "--session-id",
        metavar="ID",
        type=_common.checked(_params.check_session_id),
        help="stateful session id (NEW_SESSION opens one, with --no-stream)",
    )
    request.add_argument(
        "--no-stream", action="store_true", help="call InvokeEndpoint: the whole answer at once"
    )
    request.add_argument(
        "--target-model",
        metavar="PATH",
        type=_common.checked(_params.check_target_model),
        help="model of a multi-model endpoint (with --no-stream)",
    )
    request.add_argument(
        "--enable-explanations",
        type=_common.checked(_params.check_enable_explanations),
        metavar="EXPRESSION",
        help="SageMaker Clarify explanations (with --no-stream)",
    )
    _common.add_aws_options(parser)
    timing = parser.add_argument_group("timing")
    timing.add_argument(
        "--read-timeout",
        type=_common.positive_seconds,
        metavar="SECONDS",
        help="seconds without data before giving up (default: botocore's, 60)",
    )
    timing.add_argument(
        "--deadline",
        type=_common.positive_seconds,
        metavar="SECONDS",
        help="seconds for the whole stream (not with --no-stream)",
    )
    parser.set_defaults(func=run, parser=parser)


def _body(value: str) -> bytes:
    """``--body``: the text itself, ``@FILE``'s bytes, or stdin's for ``-`` (at most 6 MiB)."""
    if value == "-":
        data = sys.stdin.buffer.read()
    elif value.startswith("@"):
        try:
            with open(value[1:], "rb") as f:
                data = f.read()
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read {value[1:]!r}: {exc.strerror or exc}") from None
    else:
        data = value.encode("utf-8")
    try:
        _params.check_body(data)
    except ParamValidationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return data


def _check_combinations(args: argparse.Namespace) -> None:
    parser: argparse.ArgumentParser = args.parser
    if args.no_stream:
        if args.mode is not None:
            parser.error(f"--{args.mode} reads a response stream; --no-stream writes the answer as it is")
        if args.deadline is not None:
            parser.error("--deadline bounds a response stream; with --no-stream use --read-timeout")
        return
    for attr, flag in _INVOKE_ONLY:
        if getattr(args, attr) is not None:
            parser.error(f"{flag} needs --no-stream: InvokeEndpointWithResponseStream has no such parameter")
    if args.session_id == "NEW_SESSION":
        parser.error("--session-id NEW_SESSION needs --no-stream; a stream takes an existing session id")


def run(args: argparse.Namespace) -> int:
    """The ``invoke`` handler."""
    _check_combinations(args)
    with _common.ConnectionNotices() as notices:
        return _run(args, notices)


def _run(args: argparse.Namespace, notices: _common.ConnectionNotices) -> int:
    try:
        from botocore.config import Config

        config = Config(read_timeout=args.read_timeout) if args.read_timeout else None
        client = _common.make_client(args, notices, config)
    except _common.failures() as exc:
        return _common.report("invoke", exc)
    with client:
        try:
            return _invoke(client, args)
        except _common.failures() as exc:
            return _common.report("invoke", exc)


def _invoke(client: Any, args: argparse.Namespace) -> int:
    common: dict[str, Any] = {
        "content_type": args.content_type,
        "accept": args.accept,
        "custom_attributes": args.custom_attributes,
        "target_variant": args.target_variant,
        "target_container_hostname": args.target_container_hostname,
        "inference_id": args.inference_id,
        "inference_component_name": args.inference_component_name,
        "session_id": args.session_id,
    }
    if args.no_stream:
        result = client.invoke(
            args.endpoint,
            args.body,
            target_model=args.target_model,
            enable_explanations=args.enable_explanations,
            **common,
        )
        _output.write_out([result.body])
        if not args.quiet and result.new_session_id:
            sys.stderr.write(f"\n[sagestream] new session {result.new_session_id}\n")
        return 0
    stream = client.invoke_stream(args.endpoint, args.body, deadline=args.deadline, **common)
    return _output.stream_out(stream, _output.render(stream, args.mode), quiet=args.quiet, mode=args.mode)
