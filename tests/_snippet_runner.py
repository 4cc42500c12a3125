"""Run one documentation snippet the way a reader would (used by tests/test_docs_snippets.py).

    python _snippet_runner.py LANG CODE_FILE [--server] [--loopback]

Run in the current directory, normally inside a fresh network namespace of its own
(``unshare --user --map-root-user --net``), so the documented fixed ports are free:

- ``--loopback``: bring the namespace's ``lo`` interface up first (it starts down).
- Unless ``--server``: start ``sagestream serve`` as the README says, with no options, and wait
  for its banner; run the snippet after ``eval "$(sagestream serve --print-env)"``, as the
  README's setup does; then stop the emulator with Ctrl-C (SIGINT), which must end it cleanly.
- ``--server``: the snippet itself starts a server (``sagestream serve ...``): it runs until its
  banner is out, then gets Ctrl-C and must exit 0.

``pip`` is a shell function that runs nothing: the snippet runs in the environment its install
commands make. Exit status: the snippet's, or 1 when the emulator misbehaved; what went wrong
is on stderr.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

#: Every snippet's shell starts with this: the README's setup, once.
SETUP = 'eval "$(sagestream serve --print-env)"\n'
PIP = 'pip() { echo "(snippet test: pip $* is not run; this environment has it)" >&2; }\n'
#: The banner's line that ends what the runner needs to see.
BANNER_END = "export AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME_HTTP2="
BANNER_WAIT = 90.0


def loopback_up() -> None:
    """``ip link set lo up``, without needing iproute2."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH14s", b"lo", flags | iff_up, b""))


def wait_for_banner(proc: subprocess.Popen[str], what: str) -> list[str]:
    """The lines ``proc`` printed up to its banner's end; raises if it ended or took too long."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + BANNER_WAIT
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith(BANNER_END):
            return lines
    raise RuntimeError(f"{what} printed no banner: {lines}")


def interrupt(proc: subprocess.Popen[str], what: str, log: IO[str] | None = None) -> list[str]:
    """Ctrl-C ``proc``'s process group; the problems with how it ended (none: clean exit 0)."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return [f"{what} did not stop within 30 s of Ctrl-C"]
    problems = []
    if proc.returncode != 0:
        problems.append(f"{what} exited {proc.returncode} after Ctrl-C")
    if log is not None:
        log.seek(0)
        text = log.read()
        if "Traceback" in text:
            problems.append(f"{what} logged a traceback:\n{text}")
    if problems and out:
        problems.append(f"its stdout: {out}")
    return problems


def main(argv: list[str]) -> int:
    lang, code_file = argv[0], Path(argv[1])
    server, loopback = "--server" in argv, "--loopback" in argv
    if loopback:
        loopback_up()
    code = code_file.read_text()
    if server:
        proc = subprocess.Popen(
            ["bash", "-c", PIP + code], stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            banner = wait_for_banner(proc, "the snippet")
        except RuntimeError as exc:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            print(exc, file=sys.stderr)
            return 1
        print("\n".join(banner))
        problems = interrupt(proc, "the snippet's server")
        print("\n".join(problems), file=sys.stderr)
        return 1 if problems else 0
    with tempfile.TemporaryFile("w+") as log:
        emulator = subprocess.Popen(
            ["sagestream", "serve"], stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True
        )
        try:
            wait_for_banner(emulator, "sagestream serve")
        except RuntimeError as exc:
            os.killpg(emulator.pid, signal.SIGKILL)
            emulator.communicate()
            log.seek(0)
            print(exc, log.read(), file=sys.stderr)
            return 1
        if lang == "python":
            command = ["bash", "-c", SETUP + f'exec "{sys.executable}" "{code_file}"']
        else:
            command = ["bash", "-e", "-o", "pipefail", "-c", PIP + SETUP + code]
        snippet = subprocess.run(command, stdin=subprocess.DEVNULL, check=False)
        problems = interrupt(emulator, "sagestream serve", log)
    print("\n".join(problems), file=sys.stderr)
    return snippet.returncode or (1 if problems else 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
