"""``sagestream duplex``: stdin lines (or a file in chunks) in, output parts out; and the
bidirectional ports of ``sagestream serve``."""

from __future__ import annotations

from pathlib import Path

from _cli_helpers import aws_env, no_traceback, run_cli
from _emulator_fixtures import ACCESS_KEY, REGION, SECRET_KEY, start_serve, stop_serve
from sagestream.emulator import Emulator


def test_stdin_lines_to_the_demo(duplex_emulator: Emulator) -> None:
    done = run_cli(
        "duplex",
        "demo",
        "--parts",
        "--duplex-endpoint-url",
        duplex_emulator.duplex_url,
        input=b"hello world\nagain\n",
        env=aws_env(duplex_emulator),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == [
        "UTF8 PARTIAL hello",
        "UTF8 PARTIAL hello world",
        "UTF8 COMPLETE hello world.",
        "UTF8 PARTIAL again",
        "UTF8 COMPLETE again.",
    ]
    assert b"5 parts" in done.stderr
    assert no_traceback(done.stderr)


def test_a_file_in_chunks_over_tls(duplex_emulator: Emulator, tmp_path: Path) -> None:
    audio = tmp_path / "audio.raw"
    audio.write_bytes(bytes(range(256)) * 40)
    done = run_cli(
        "duplex",
        "echo",
        "--file",
        str(audio),
        "--chunk-size",
        "1000",
        "--quiet",
        "--duplex-endpoint-url",
        str(duplex_emulator.duplex_tls_url),
        "--ca-bundle",
        str(duplex_emulator.duplex_ca_file),
        env=aws_env(duplex_emulator),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == audio.read_bytes()
    assert done.stderr == b""


def test_failures_and_usage_errors(duplex_emulator: Emulator, tmp_path: Path) -> None:
    env = aws_env(duplex_emulator)
    url = duplex_emulator.duplex_url
    done = run_cli(
        "duplex",
        "echo",
        "--duplex-endpoint-url",
        url,
        "--model-query-string",
        "fault=internal-stream-failure&after=1",
        input=b"a\nb\n",
        env=env,
    )
    assert done.returncode == 1
    assert done.stdout == b"a"
    assert b"InternalStreamFailure" in done.stderr
    assert no_traceback(done.stderr)
    done = run_cli(
        "duplex", "echo", "--duplex-endpoint-url", url, "--model-invocation-path", "x" * 101, env=env
    )
    assert done.returncode == 2
    assert b"ModelInvocationPath" in done.stderr
    done = run_cli(
        "duplex", "echo", "--duplex-endpoint-url", url, "--file", str(tmp_path / "missing"), env=env
    )
    assert done.returncode == 2
    assert b"cannot read" in done.stderr


def test_serve_prints_and_serves_its_bidirectional_ports() -> None:
    served = start_serve("--endpoint", "e=echo")
    try:
        lines = [line for line in served.banner if "bidirectional streams" in line]
        assert len(lines) == 2
        url = lines[0].split(": ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:")
        tls = lines[1].split(": ", 1)[1].split(" (CA: ")
        ca = tls[1].rstrip(")")
        env = aws_env(
            AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_DEFAULT_REGION=REGION
        )
        done = run_cli("duplex", "e", "--quiet", "--duplex-endpoint-url", url, input=b"one\n", env=env)
        assert (done.returncode, done.stdout) == (0, b"one"), done.stderr
        done = run_cli(
            "duplex",
            "e",
            "--quiet",
            "--duplex-endpoint-url",
            tls[0],
            "--ca-bundle",
            ca,
            input=b"two\n",
            env=env,
        )
        assert (done.returncode, done.stdout) == (0, b"two"), done.stderr
        # The environment variable the banner names points the command there too.
        env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME_HTTP2"] = url
        done = run_cli("duplex", "e", "--quiet", input=b"three\n", env=env)
        assert (done.returncode, done.stdout) == (0, b"three"), done.stderr
    finally:
        stop_serve(served)
