"""``sagestream invoke-async``: start an asynchronous inference and, with ``--wait``, fetch its output.

Without ``--wait`` it prints the invocation (InferenceId, OutputLocation, FailureLocation) as JSON.
With ``--wait`` it polls S3 with a progress bar on stderr (plain lines when stderr is not a
terminal) and writes the output bytes to stdout. Exit codes: 0 done, 1 the inference failed (the
failure document goes to stderr), 2 bad arguments, 124 the wait timed out.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO, Any

from sagestream.exceptions import (
    AsyncInferenceFailed,
    AsyncInferenceTimeout,
    ParamValidationError,
)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 124


def register(subparsers: Any) -> None:
    """Add ``invoke-async`` to the ``sagestream`` parser."""
    parser = subparsers.add_parser(
        "invoke-async",
        help="start an asynchronous inference (InvokeEndpointAsync), optionally wait for its output",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("endpoint", metavar="ENDPOINT", help="the endpoint name")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--input", metavar="FILE", help="a local file to upload as the input (needs --input-prefix)"
    )
    source.add_argument("--input-location", metavar="S3URI", help="the input already in S3 (s3://bucket/key)")
    parser.add_argument(
        "--input-prefix", metavar="S3URI", help="where to upload --input (s3://bucket/prefix)"
    )
    parser.add_argument("--content-type", help="the input's MIME type")
    parser.add_argument("--accept", help="the MIME type wanted for the output")
    parser.add_argument("--custom-attributes", help="CustomAttributes passed to the model")
    parser.add_argument("--inference-id", help="an id of your own for this inference")
    parser.add_argument("--request-ttl", type=int, metavar="SECONDS", help="RequestTTLSeconds (60-21600)")
    parser.add_argument(
        "--invocation-timeout", type=int, metavar="SECONDS", help="InvocationTimeoutSeconds (1-3600)"
    )
    parser.add_argument("--output-path-extension", metavar="PATH", help="S3OutputPathExtension")
    parser.add_argument("--filename", help="the output object's name (at most 32 characters)")
    parser.add_argument("--wait", action="store_true", help="wait for the result and write it to stdout")
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="with --wait: give up after this long (default: RequestTTLSeconds + InvocationTimeoutSeconds)",
    )
    parser.add_argument("--region", help="AWS region")
    parser.add_argument("--profile", help="AWS profile")
    parser.add_argument("--endpoint-url", help="SageMaker Runtime endpoint URL (e.g. the emulator's)")
    parser.add_argument("--s3-endpoint-url", help="S3 endpoint URL")
    parser.set_defaults(func=run)


class Progress:
    """Renders wait progress: a bar redrawn in place on a terminal, else one line per poll."""

    WIDTH = 30

    def __init__(self, stream: IO[str], bound: float, tty: bool | None = None) -> None:
        self.stream = stream
        self.bound = bound
        self.tty = stream.isatty() if tty is None else tty

    def __call__(self, event: Any) -> None:
        state = event.state
        if self.tty:
            fraction = min(1.0, event.elapsed / self.bound) if self.bound > 0 else 0.0
            filled = int(fraction * self.WIDTH)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            self.stream.write(
                f"\r[{bar}] {event.elapsed:7.1f}s / {self.bound:g}s  polls {event.attempts:<4d} {state:<10}"
            )
            if state != "waiting":
                self.stream.write("\n")
        else:
            self.stream.write(
                f"{event.inference_id}: {state} after {event.elapsed:.1f}s ({event.attempts} polls)\n"
            )
        self.stream.flush()


def run(args: argparse.Namespace) -> int:
    """The ``invoke-async`` handler."""
    import boto3

    from sagestream._client import Client

    try:
        session = boto3.Session(profile_name=args.profile, region_name=args.region)
        client = Client(
            session,
            region_name=args.region,
            endpoint_url=args.endpoint_url,
            s3_endpoint_url=args.s3_endpoint_url,
        )
        handle = client.invoke_async(
            args.endpoint,
            input_location=args.input_location,
            input=args.input,
            input_prefix=args.input_prefix,
            content_type=args.content_type,
            accept=args.accept,
            custom_attributes=args.custom_attributes,
            inference_id=args.inference_id,
            request_ttl_seconds=args.request_ttl,
            invocation_timeout_seconds=args.invocation_timeout,
            s3_output_path_extension=args.output_path_extension,
            filename=args.filename,
        )
    except ParamValidationError as exc:
        print(f"sagestream invoke-async: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # botocore and transport errors: reported, not a traceback
        print(f"sagestream invoke-async: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if not args.wait:
        doc = {
            "InferenceId": handle.inference_id,
            "OutputLocation": handle.output_location,
            "FailureLocation": handle.failure_location,
        }
        print(json.dumps(doc, indent=2))
        return 0
    print(
        f"inference {handle.inference_id}: waiting for {handle.output_location}",
        file=sys.stderr,
    )
    bound = args.timeout if args.timeout is not None else handle.lifetime
    try:
        output = handle.wait(timeout=args.timeout, progress=Progress(sys.stderr, bound))
    except AsyncInferenceFailed as exc:
        print(f"sagestream invoke-async: the inference failed ({exc.failure_location}):", file=sys.stderr)
        sys.stderr.write(exc.failure.decode("utf-8", "replace") + "\n")
        return EXIT_FAILED
    except AsyncInferenceTimeout as exc:
        print(f"sagestream invoke-async: {exc}", file=sys.stderr)
        return EXIT_TIMEOUT
    except Exception as exc:  # botocore and transport errors: reported, not a traceback
        print(f"sagestream invoke-async: {exc}", file=sys.stderr)
        return EXIT_FAILED
    sys.stdout.buffer.write(output)
    sys.stdout.buffer.flush()
    return 0
