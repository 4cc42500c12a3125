"""``sagestream invoke-async``: start an asynchronous inference and, with ``--wait``, fetch its output."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
from typing import Any

from sagestream.cli import _common
from sagestream.service import INVOKE_ASYNC, S3_PREFIX

#: Exit status when ``--wait`` gave up before the output or the failure document appeared.
EXIT_TIMEOUT = 124

HELP = "start an asynchronous inference (InvokeEndpointAsync), optionally wait for its output"
FORMATTER_CLASS = argparse.RawDescriptionHelpFormatter
DESCRIPTION = """\
Start an asynchronous inference (InvokeEndpointAsync) on an input already in S3
(--input-location), on a local file uploaded first (--input with --input-prefix), or on a
local file sent with the request itself (--input with --inline, at most 128,000 bytes).

Without --wait, print the invocation as JSON: InferenceId, OutputLocation, FailureLocation.
With --wait, poll S3 until the output appears and write its bytes to stdout; stderr shows a
spinner and the time waited on a terminal, plain lines otherwise.

Exit status: 0 done, 1 the inference or a request failed (the failure document goes to
stderr), 2 a usage or configuration error (nothing sent), 124 --wait timed out,
130 interrupted.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``invoke-async``'s arguments."""
    _common.add_endpoint(parser, INVOKE_ASYNC)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--input",
        metavar="FILE",
        type=_input_file,
        help="a local file to upload as the input (needs --input-prefix)",
    )
    _common.add_member_options(source, [INVOKE_ASYNC.members["InputLocation"]])
    parser.add_argument(
        "--inline",
        action="store_true",
        help="send --input with the request itself (at most 128,000 bytes) instead of uploading it",
    )
    parser.add_argument(
        "--input-prefix",
        metavar="S3URI",
        type=_common.checked(lambda v: S3_PREFIX.check(v, "input prefix")),
        help="where to upload --input (s3://bucket/prefix)",
    )
    request = parser.add_argument_group("request")
    _common.add_member_options(request, [m for m in INVOKE_ASYNC.options if m.name != "InputLocation"])
    waiting = parser.add_argument_group("waiting")
    waiting.add_argument("--wait", action="store_true", help="wait for the output and write it to stdout")
    _common.add_seconds(
        waiting,
        "--timeout",
        "with --wait: give up after this long (default: the request's TTL plus its invocation timeout)",
    )
    _common.add_aws_options(parser)
    parser.add_argument(
        "--s3-endpoint-url",
        type=_common.endpoint_url,
        metavar="URL",
        help="S3 URL for the upload and the output (e.g. the one 'sagestream serve' prints)",
    )


def _input_file(value: str) -> pathlib.Path:
    if not os.path.isfile(value):
        reason = "is a directory" if os.path.isdir(value) else "no such file"
        raise argparse.ArgumentTypeError(f"cannot read {value!r}: {reason}")
    return pathlib.Path(value)


def _check_combinations(args: argparse.Namespace) -> None:
    parser: argparse.ArgumentParser = args.parser
    if args.inline and args.input is None:
        parser.error("--inline sends the --input file with the request; add --input FILE")
    if args.inline and args.input_prefix is not None:
        parser.error("--input-prefix is where to upload --input; --inline sends it with the request")
    if args.input is not None and args.input_prefix is None and not args.inline:
        parser.error(
            "--input needs --input-prefix s3://bucket/prefix (where to upload the file), "
            "or --inline to send it with the request"
        )
    if args.input_location is not None and args.input_prefix is not None:
        parser.error("--input-prefix goes with --input; --input-location is already in S3")
    if args.timeout is not None and not args.wait:
        parser.error("--timeout bounds --wait; add --wait")


def run(args: argparse.Namespace) -> int:
    """The ``invoke-async`` handler."""
    _check_combinations(args)
    return _common.with_client(
        "invoke-async", args, lambda client: _submit(client, args), s3_endpoint_url=args.s3_endpoint_url
    )


def _submit(client: Any, args: argparse.Namespace) -> int:
    options = _common.member_values(args, INVOKE_ASYNC.options)
    if args.inline:
        options["body"] = args.input.read_bytes()
    else:
        options.update(input=args.input, input_prefix=args.input_prefix)
    handle = client.invoke_async(args.endpoint, **options)
    if not args.wait:
        doc = {
            "InferenceId": handle.inference_id,
            "OutputLocation": handle.output_location,
            "FailureLocation": handle.failure_location,
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        sys.stdout.flush()
        return 0
    return _wait(handle, args.timeout)


def _wait(handle: Any, timeout: float | None) -> int:
    from sagestream.cli._waiting import WaitDisplay  # rich, when installed: only when waiting
    from sagestream.exceptions import AsyncInferenceFailedError, AsyncInferenceTimeoutError

    sys.stderr.write(f"inference {handle.inference_id}: waiting for {handle.output_location}\n")
    bound = timeout if timeout is not None else handle.lifetime
    try:
        with WaitDisplay(sys.stderr, handle.inference_id, bound) as display:
            output = handle.wait(timeout=timeout, progress=display)
    except AsyncInferenceFailedError as exc:
        sys.stderr.write(f"sagestream invoke-async: the inference failed ({exc.failure_location}):\n")
        sys.stderr.write(exc.failure.decode("utf-8", "replace") + "\n")
        return _common.EXIT_FAILED
    except AsyncInferenceTimeoutError as exc:
        sys.stderr.write(f"sagestream invoke-async: {exc}\n")
        return EXIT_TIMEOUT
    except KeyboardInterrupt:
        sys.stderr.write(
            f"sagestream invoke-async: stopped waiting; the inference goes on, its output will be at "
            f"{handle.output_location}\n"
        )
        raise
    sys.stdout.buffer.write(output)
    sys.stdout.buffer.flush()
    return 0
