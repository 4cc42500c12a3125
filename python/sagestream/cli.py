"""The ``sagestream`` command: ``demo``, ``invoke``, ``invoke-async`` and ``serve``.

Each subcommand lives beside the code it drives and registers itself here.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules with a `register(subparsers)` function adding their subcommands. Each subcommand
# sets `func` (taking the parsed namespace, returning an exit code) with `set_defaults`.
_COMMAND_MODULES = (
    "sagestream._cli_client",  # demo, invoke
    "sagestream._cli_async",  # invoke-async
    "sagestream.emulator.cli",  # serve
)


def build_parser() -> argparse.ArgumentParser:
    from sagestream import __version__

    parser = argparse.ArgumentParser(
        prog="sagestream",
        description="Stream inference from Amazon SageMaker AI endpoints, or emulate one locally.",
    )
    parser.add_argument("--version", action="version", version=f"sagestream {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout closed early (e.g. `| head`): not an error for a streaming command.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
