"""A plain ``pip install sagestream`` brings the boto stack and nothing else, and everything that
needs more says which extra to install.

The distribution list is computed from the installed metadata (the requirements of sagestream
without extras, then of each of those, markers evaluated for this interpreter): no network, and
the same answer pip's resolver reaches. ``.ci/test-wheel`` also installs the built wheel into a
fresh venv with no extra and lists what pip put there.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sagestream import WaitProgress
from sagestream.cli._waiting import WaitDisplay
from sagestream.extras import SERVE_INSTALL

#: What `pip install sagestream` may bring besides sagestream itself.
BOTO_STACK = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}

#: The packages of the extras, which the clients and the CLI's other commands never import.
EXTRA_ONLY = ("aiohttp", "h2", "hpack", "hyperframe", "rich", "moto", "cryptography", "werkzeug")


def plain_install_closure(name: str) -> set[str]:
    """The distributions installing ``name`` without extras pulls in, from installed metadata."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        dist = metadata.distribution(todo.pop())
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            key = canonicalize_name(requirement.name)
            if key not in seen:
                seen.add(key)
                todo.append(key)
    return seen


def test_a_plain_install_pulls_only_the_boto_stack() -> None:
    assert plain_install_closure("sagestream") == BOTO_STACK


def test_the_extras_carry_the_emulator_and_the_live_line() -> None:
    requires = [Requirement(line) for line in metadata.requires("sagestream") or []]

    def extra(name: str) -> set[str]:
        return {
            canonicalize_name(r.name)
            for r in requires
            if r.marker is not None and r.marker.evaluate({"extra": name})
        }

    assert {"aiohttp", "h2", "moto", "cryptography"} <= extra("serve")
    assert "sagestream" in extra("s3")  # the former name: sagestream[serve]
    assert extra("rich") == {"rich"}
    assert {"maturin", "ziglang"} <= extra("dev")
    assert "sagestream" in extra("test")  # sagestream[serve,rich]


def run_without_extras(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where the extras' packages cannot be imported."""
    blocker = textwrap.dedent(
        f"""
        import sys
        for name in {EXTRA_ONLY!r}:
            sys.modules[name] = None  # `import name` raises ImportError
        """
    )
    return subprocess.run(
        [sys.executable, "-c", blocker + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_clients_and_the_client_commands_need_no_extra() -> None:
    result = run_without_extras(
        """
        import sagestream, sagestream.reassembly, sagestream.eventstream, sagestream.batch
        from sagestream import _aio, _client, _patch, _jobs, _duplex
        from sagestream.cli import main
        for command in (["--help"], ["invoke", "--help"], ["invoke-async", "--help"],
                        ["duplex", "--help"], ["demo", "--help"]):
            try:
                main(command)
            except SystemExit as exit:
                assert exit.code == 0, (command, exit.code)
        """
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_serve_and_demo_name_the_extra_they_need(command: str) -> None:
    result = run_without_extras(
        f"""
        import sys
        from sagestream.cli import main
        sys.exit(main([{command!r}]))
        """
    )
    assert result.returncode == 2, result.stderr
    assert f"sagestream {command}: " in result.stderr
    assert SERVE_INSTALL in result.stderr
    assert "Traceback" not in result.stderr


def test_importing_the_emulator_names_the_extra() -> None:
    result = run_without_extras("import sagestream.emulator")
    assert result.returncode == 1
    assert "ImportError: sagestream.emulator needs the serve extra (" in result.stderr
    assert SERVE_INSTALL in result.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_wait_line_is_plain_on_a_terminal_without_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)
    stream = _Terminal()
    with WaitDisplay(stream, "id-3", bound=100.0) as display:
        display(WaitProgress("id-3", 0.05, 1, "waiting", "s3://b/o", "s3://b/f"))
        display(WaitProgress("id-3", 0.25, 2, "completed", "s3://b/o", "s3://b/f"))
    assert stream.getvalue() == "id-3: waiting after 0.1s (1 poll)\nid-3: completed after 0.2s (2 polls)\n"
