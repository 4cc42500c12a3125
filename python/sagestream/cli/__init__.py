"""The ``sagestream`` command: ``demo``, ``invoke``, ``invoke-async``, ``duplex`` and ``serve``.

One module per command, each with its ``HELP`` and ``DESCRIPTION`` (and, where the description
is laid out by hand, ``FORMATTER_CLASS``), an ``add_arguments(parser)`` and a ``run(args)``
(taking the parsed namespace, returning the exit status); :func:`build_parser` adds them.

Starting stays cheap: the command modules import boto3, rich or the emulator only when their
command runs, and ``serve``'s module (which imports aiohttp) is loaded only when ``serve`` is
asked for, so ``sagestream --help`` and ``sagestream invoke --help`` load none of them. Without
the ``serve`` extra, ``serve`` and ``demo`` say what to install (status 2); without rich,
``invoke-async --wait`` prints plain lines.

Exit status, every command: 0 done (also when stdout is closed early, as by ``| head``); 1 the
request, the stream or the inference failed; 2 a usage or configuration error, with nothing
sent (a bad option, an invalid parameter, no region, no credentials, an unknown profile);
124 ``invoke-async --wait`` timed out; 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

_COMMAND_MODULES = {
    "demo": "sagestream.cli.demo",
    "invoke": "sagestream.cli.invoke",
    "invoke-async": "sagestream.cli.invoke_async",
    "duplex": "sagestream.cli.duplex",
}
# `serve`: its module is imported only when it runs, so its one-line help is repeated here.
_SERVE_MODULE = "sagestream.cli.serve"
_SERVE_HELP = "run a local SageMaker Runtime endpoint emulator"

EXIT_INTERRUPTED = 130


def build_parser(*, serve: bool = False) -> argparse.ArgumentParser:
    """The ``sagestream`` parser; ``serve=True`` loads the ``serve`` command's own parser."""
    from sagestream import __version__

    parser = argparse.ArgumentParser(
        prog="sagestream",
        description="Stream inference from Amazon SageMaker AI endpoints, or emulate one locally.",
        epilog="'sagestream COMMAND --help' describes a command.",
    )
    parser.add_argument("--version", action="version", version=f"sagestream {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command, module in _COMMAND_MODULES.items():
        _add_command(subparsers, command, importlib.import_module(module))
    if serve:
        _add_command(subparsers, "serve", importlib.import_module(_SERVE_MODULE))
    else:
        subparsers.add_parser("serve", help=_SERVE_HELP)
    return parser


def _add_command(subparsers: Any, command: str, module: Any) -> None:
    """The parser of ``command``, from its module: its help, its arguments and its handler."""
    parser = subparsers.add_parser(
        command,
        help=module.HELP,
        description=module.DESCRIPTION,
        formatter_class=getattr(module, "FORMATTER_CLASS", argparse.HelpFormatter),
    )
    module.add_arguments(parser)
    parser.set_defaults(func=module.run, parser=parser)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sagestream`` with ``argv`` (default: the process's arguments); returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    # The parser itself has no option taking a value: the first other word names the command.
    command = next((word for word in args_list if not word.startswith("-")), None)
    try:
        parser = build_parser(serve=command == "serve")
    except ImportError as exc:
        if command != "serve":
            raise
        from sagestream.cli._common import missing_extra

        return missing_extra("serve", exc)
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away (`| head`): not an error for a command writing a stream.
        _drop_stdout()
        return 0


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit raises no second BrokenPipeError.

    As the Python documentation advises for SIGPIPE (library/signal.html, "Note on SIGPIPE").
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
