"""The ``sagestream`` entry point: help, startup cost, the command table."""

from __future__ import annotations

import json
import sys

import pytest
from _cli_helpers import aws_env, no_traceback, run_cli
from sagestream import __version__
from sagestream.cli import main

COMMANDS = ("demo", "invoke", "invoke-async", "serve")

# Print, as JSON on stderr, which of the modules a CLI command must not need at startup are
# loaded after `main(ARGV)` has printed its help.
_PROBE = """
import json, sys
from sagestream.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert exc.code == 0, exc.code
heavy = sorted(
    m for m in sys.modules
    if m.split(".")[0] in ("boto3", "aiohttp", "rich", "moto")
    or m == "botocore.session" or m.startswith("sagestream.emulator")
)
sys.stderr.write(json.dumps(heavy))
"""


@pytest.mark.parametrize(
    "argv", [["--help"], ["invoke", "--help"], ["invoke-async", "--help"], ["demo", "--help"]]
)
def test_help_imports_neither_boto3_nor_aiohttp_nor_the_emulator(argv: list[str]) -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], env=aws_env(), capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"usage: sagestream")
    assert json.loads(done.stderr) == []


def test_the_emulator_loads_when_serve_is_asked_for(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--help"])
    assert exc.value.code == 0
    assert "--token-delay" in capsys.readouterr().out  # serve's own parser, not a placeholder


def test_no_command_prints_the_help() -> None:
    done = run_cli(env=aws_env())
    assert done.returncode == 0
    assert done.stderr == b""
    out = done.stdout.decode()
    assert out.startswith("usage: sagestream")
    for command in COMMANDS:
        assert f"    {command}" in out


@pytest.mark.parametrize("argv", [[], *([c] for c in COMMANDS)])
def test_help_texts_are_plain_text(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: sagestream")
    for markup in ("``", ":class:", ":func:", ":meth:", "[bold", "**"):
        assert markup not in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"sagestream {__version__}\n"


def test_unknown_command_is_a_usage_error() -> None:
    done = run_cli("nonsense", env=aws_env())
    assert done.returncode == 2
    assert b"invalid choice: 'nonsense'" in done.stderr
    assert no_traceback(done.stderr)
