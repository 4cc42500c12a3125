"""Run a benchmark function under another build of sagestream, side by side with this one.

A change to the Rust core is measured against the build before it in the same run (same
machine, same load, rounds alternating): ``--baseline DIR`` names a directory holding that
build's ``sagestream`` package, for example main's::

    git archive main | tar -x -C /tmp/base
    (cd /tmp/base && maturin build --release -o dist)
    pip install --no-deps --target /tmp/base-site /tmp/base/dist/*.whl
    python benches/bench_requests.py --only gateway,hold --baseline /tmp/base-site

Each call runs in a fresh interpreter (``DIR`` first on ``sys.path``, so its ``sagestream`` is
imported instead of this environment's); the function does its own warm-up and measuring and
returns JSON-able numbers, so both builds are measured the same way.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_HERE = Path(__file__).resolve().parent

_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
import importlib
module = importlib.import_module(sys.argv[2])
print(json.dumps(getattr(module, sys.argv[3])(*json.loads(sys.argv[4]))))
"""


def call(build: str | None, module: str, function: str, *args: Any, python: str | None = None) -> Any:
    """``module.function(*args)`` (``module``: a file of this directory) in a fresh interpreter
    whose ``sagestream`` is the one in ``build`` (None: this environment's); its result.
    ``python``: another interpreter (another environment, e.g. :func:`aiobotocore_python`'s)."""
    env = dict(os.environ)
    if build is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (build, env.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [python or sys.executable, "-c", _CHILD, str(_HERE), module, function, json.dumps(args)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module}.{function} under {build or 'this build'} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def turns(items: list[T], round_: int) -> list[T]:
    """``items`` in the order to run them in round ``round_``: reversed every other round.
    Whatever runs first in a round costs measurably more (3 % for the same build run twice,
    the gateway's CPU per request), so no build may always go first."""
    return items if round_ % 2 == 0 else items[::-1]


def rounds(
    runners: dict[str, Callable[[], tuple[float, float, int]]], count: int, expected: int
) -> dict[str, list[tuple[float, float]]]:
    """Each runner once per round, taking :func:`turns`, for ``count`` rounds: its (CPU, wall)
    per round. A runner returns (CPU, wall, bytes received); any other count than ``expected``
    ends the benchmark."""
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in runners}
    for round_ in range(count):
        for name, runner in turns(list(runners.items()), round_):
            cpu, wall, received = runner()
            if received != expected:
                raise SystemExit(f"{name}: received {received} bytes, expected {expected}")
            results[name].append((cpu, wall))
    return results


def paired(this: list[float], baseline: list[float]) -> str:
    """The per-round ratios this / baseline (rounds pair up): median and quartiles. Rounds on
    this machine spread by ±20 %, the same build against itself included, so a difference
    inside the quartiles is not one."""
    ratios = sorted(a / b for a, b in zip(this, baseline, strict=True))
    q1, median, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    spread = f"quartiles {q1:.3f}-{q3:.3f}, {len(ratios)} rounds"
    return f"this / baseline, per round: median {median:.3f} ({spread})"


def which(build: str | None) -> str:
    """Where ``build``'s sagestream comes from (to print with the results)."""
    return str(call(build, "_builds", "_origin"))


def _origin() -> str:
    import sagestream

    return str(Path(sagestream.__file__).parent)


#: The environment aiobotocore is measured in when this one has none (``make env-aio``):
#: aiobotocore pins an older botocore, so the newest botocore's environment cannot hold it.
AIO_ENV = _HERE.parent / "build" / "envs" / "aio"


def aiobotocore_python() -> str:
    """The interpreter to measure aiobotocore with: this one when it has aiobotocore, else
    ``$SAGESTREAM_AIO_PYTHON`` or the ``make env-aio`` environment's."""
    import importlib.util

    if importlib.util.find_spec("aiobotocore") is not None:
        return sys.executable
    found = os.environ.get("SAGESTREAM_AIO_PYTHON") or str(AIO_ENV / "bin" / "python")
    if not Path(found).exists():
        raise SystemExit(
            "aiobotocore is not installed here (it pins an older botocore): `make env-aio` makes "
            "an environment for it, or set SAGESTREAM_AIO_PYTHON"
        )
    return found


def versions(python: str) -> str:
    """botocore's (and aiobotocore's) version in ``python``'s environment, for the results."""
    return str(call(None, "_builds", "_versions", python=python))


def _versions() -> str:
    import botocore

    text = f"botocore {botocore.__version__}"
    try:
        import aiobotocore

        text += f", aiobotocore {aiobotocore.__version__}"
    except ImportError:
        pass
    return text
