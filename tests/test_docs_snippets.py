"""Every Python and shell snippet of README.md and docs/*.md runs as written.

Each runs in a fresh directory and a network namespace of its own (so the documented fixed ports
are free whatever else runs on the machine) against ``sagestream serve`` started as the README
says, after the README's setup, ``eval "$(sagestream serve --print-env)"``
(``tests/_snippet_runner.py``). The conventions, and how to keep a snippet from running, are in
docs/development.md, "Documentation snippets".
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(__file__).resolve().parent / "_snippet_runner.py"
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Fenced blocks in these languages are run.
RUN = ("python", "bash")
#: Fenced blocks in these are not code to run (program output, diagrams, other languages).
NOT_SNIPPETS = ("", "text", "rust", "toml", "json", "yaml")
#: Words after the language in a fence's info string.
MARKERS = ("server", "not-run")

#: The blocks marked ``not-run``, by document and the start of their first line, and why they
#: cannot run here.
NOT_RUN = {
    ("README.md", "pip install '.[test,lint]' && make ci"): "runs the whole of CI, this test included",
    ("docs/development.md", "pip install -e '.[test,lint,dev]'"): (
        "builds the extension, runs every test suite and linter: what `make ci` does"
    ),
    ("docs/development.md", "cargo install cargo-fuzz"): "installs cargo-fuzz, then fuzzes for minutes",
}
#: Seconds a snippet may take, start of the emulator included, when not the default.
DEFAULT_TIMEOUT = 120.0
TIMEOUTS = {
    # Starting a local Ray instance and its actors: up to a minute on two busy cores.
    "import ray, sagestream.ray": 400.0,
}

_FENCE = re.compile(r"^```(\S*)[ \t]*(.*?)\s*$")


@dataclass(frozen=True)
class Snippet:
    """One fenced block: where it is, its language and markers, its code."""

    document: str
    line: int
    lang: str
    markers: tuple[str, ...]
    code: str

    @property
    def first_line(self) -> str:
        return next(line.strip() for line in self.code.splitlines() if line.strip())

    @property
    def where(self) -> str:
        return f"{self.document}:{self.line}"


def parse(path: Path) -> list[Snippet]:
    """The fenced blocks of a Markdown document (fences at the start of a line)."""
    found: list[Snippet] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        start = i
        i += 1
        while i < len(lines) and lines[i].rstrip() != "```":
            i += 1
        assert i < len(lines), f"{path.name}:{start + 1}: a fence that is never closed"
        code = "\n".join(lines[start + 1 : i]) + "\n"
        document = str(path.relative_to(ROOT))
        found.append(Snippet(document, start + 1, match[1], tuple(match[2].split()), code))
        i += 1
    return found


@cache
def all_snippets() -> list[Snippet]:
    return [s for path in DOCUMENTS for s in parse(path)]


def runnable() -> dict[str, list[Snippet]]:
    """The snippets to run, each code once (README.md and docs/ may show the same one)."""
    by_code: dict[str, list[Snippet]] = {}
    for snippet in all_snippets():
        if snippet.lang in RUN and "not-run" not in snippet.markers:
            by_code.setdefault(snippet.lang + "\0" + snippet.code, []).append(snippet)
    return by_code


def test_every_snippet_runs_or_says_why_not() -> None:
    """A block in an unknown language (```py, ```sh) would silently not run; a block kept from
    running is marked in its document and listed here with the reason, and the list holds no
    entry that matches no such block."""
    marked = set()
    for snippet in all_snippets():
        assert snippet.lang in RUN + NOT_SNIPPETS, f"{snippet.where}: fence language {snippet.lang!r}"
        assert set(snippet.markers) <= set(MARKERS), f"{snippet.where}: markers {snippet.markers}"
        if "not-run" in snippet.markers:
            keys = [k for k in NOT_RUN if k[0] == snippet.document and snippet.first_line.startswith(k[1])]
            assert len(keys) == 1, f"{snippet.where}: marked not-run, listed in NOT_RUN {len(keys)} times"
            marked.add(keys[0])
    assert marked == set(NOT_RUN), f"listed in NOT_RUN but not marked: {set(NOT_RUN) - marked}"
    assert len(runnable()) >= 20  # the documents were read


@cache
def _isolation() -> list[str] | None:
    """The command prefix that gives a snippet its own network namespace, or None."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    prefix = [
        unshare,
        "--user",
        "--map-root-user",
        "--net",
        "--pid",
        "--fork",
        "--kill-child",
        "--mount-proc",
    ]
    done = subprocess.run([*prefix, "true"], capture_output=True, check=False)
    return prefix if done.returncode == 0 else None


def _environment(home: Path, tmp: str) -> dict[str, str]:
    """The test's environment without its AWS settings, with this interpreter's scripts first
    on PATH (``sagestream``, ``aws``) and temporary files in ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTEST_", "COV_"))}
    env["TMPDIR"] = tmp  # Ray's sessions and sockets too, not /tmp/ray shared with other runs
    scripts = [sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]
    env["PATH"] = os.pathsep.join([*dict.fromkeys(scripts), env.get("PATH", "")])
    env["AWS_CONFIG_FILE"] = str(home / "aws-config")  # not the developer's profiles
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(home / "aws-credentials")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


def _params() -> list[object]:
    params = []
    for snippets in runnable().values():
        first = snippets[0]
        timeout = TIMEOUTS.get(first.first_line, DEFAULT_TIMEOUT)
        params.append(
            pytest.param(
                snippets, id=" = ".join(s.where for s in snippets), marks=pytest.mark.timeout(timeout + 60)
            )
        )
    return params


@pytest.mark.parametrize("snippets", _params())
def test_snippet_runs_as_written(snippets: list[Snippet], tmp_path: Path) -> None:
    snippet = snippets[0]
    prefix = _isolation()
    if prefix is None:
        pytest.skip("no network namespace (unshare --user --net): the documented ports may be taken")
    work = tmp_path / "work"
    work.mkdir()
    code_file = tmp_path / ("snippet.py" if snippet.lang == "python" else "snippet.sh")
    code_file.write_text(snippet.code)
    argv = [*prefix, sys.executable, str(RUNNER), snippet.lang, str(code_file), "--loopback"]
    if "server" in snippet.markers:
        argv.append("--server")
    timeout = TIMEOUTS.get(snippet.first_line, DEFAULT_TIMEOUT)
    # Short: Unix socket paths inside it (Ray's) must stay under 108 bytes.
    tmp = tempfile.mkdtemp(prefix="snippet-", dir="/tmp")
    try:
        done = subprocess.run(
            argv, cwd=work, env=_environment(tmp_path, tmp), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"{snippet.where} ran for more than {timeout} s: {exc.stdout!r} {exc.stderr!r}"
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report = f"{snippet.where} ({snippet.lang}):\n{snippet.code}\n--- stdout:\n{done.stdout}"
    report += f"\n--- stderr:\n{done.stderr}"
    assert done.returncode == 0, report
    assert "Traceback" not in done.stderr, report
    assert "Warning:" not in done.stderr, report
