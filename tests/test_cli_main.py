"""The ``sagestream`` entry point: help, startup cost, the command table."""

from __future__ import annotations

import argparse
import json
import sys

import pytest
from _cli_helpers import aws_env, no_traceback, run_cli
from sagestream import __version__
from sagestream.cli import build_parser, main

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


# What each command needs besides the option under test, so that only that option can fail.
_REQUIRED = {
    "demo": [],
    "invoke": ["ep", "--body", "x"],
    "invoke-async": ["ep", "--input-location", "s3://bucket/key"],
    "duplex": ["ep"],
    "serve": [],
}


def _numeric_options() -> list[tuple[str, str, argparse.Action]]:
    """Every option of every command whose value is a number."""
    parser = build_parser(serve=True)
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    found = []
    for name, command in commands.choices.items():
        for action in command._actions:
            if not action.option_strings or action.nargs == 0 or action.type is None:
                continue
            for sample in ("7", "120"):  # a value each numeric option takes (RequestTTLSeconds: 60+)
                try:
                    value = action.type(sample)  # type: ignore[operator]
                except (argparse.ArgumentTypeError, ValueError, OSError):
                    continue
                if isinstance(value, (int, float)):
                    found.append((name, action.option_strings[-1], action))
                break
    return found


def test_every_numeric_option_is_checked_by_its_type() -> None:
    """A bare int/float type accepts -3 or nan: every numeric option says what it accepts."""
    options = _numeric_options()
    assert {name for name, _, _ in options} == set(_REQUIRED)
    assert ("demo", "--tokens") in {(name, flag) for name, flag, _ in options}
    for name, flag, action in options:
        assert action.type not in (int, float), (name, flag)
        for bad in ("-3", "nan", "inf", "x"):
            with pytest.raises(argparse.ArgumentTypeError):
                action.type(bad)  # type: ignore[operator]


_NUMERIC = [(name, flag) for name, flag, _ in _numeric_options()]


@pytest.mark.parametrize(("command", "flag"), _NUMERIC, ids=[f"{name} {flag}" for name, flag in _NUMERIC])
def test_a_negative_number_is_a_usage_error(
    command: str, flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, *_REQUIRED[command], flag, "-1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err
    assert "-1" in err


def test_demo_rejects_what_it_used_to_take_silently() -> None:
    for argv in (["demo", "--tokens", "-3"], ["demo", "--tokens", "0"], ["demo", "--delay-ms", "-1"]):
        done = run_cli(*argv, env=aws_env())
        assert done.returncode == 2, argv
        assert done.stdout == b""
        assert b"usage: sagestream demo" in done.stderr
        assert no_traceback(done.stderr)
