"""Hypothesis profiles: a fast one for local runs, the full one in CI.

Each property test names its full example count with ``examples(n)``; the ``ci`` profile runs
that many, the ``dev`` profile (the default) a tenth of it. ``pytest --hypothesis-profile=ci``
(what ``make test-ci`` and CI run) selects the full one. Profiles are registered here, at the
import of ``conftest.py``, before hypothesis's plugin loads the selected one.
"""

from __future__ import annotations

from hypothesis import settings

#: The example count the ``ci`` profile stands for; ``examples(n)`` scales against it.
FULL = 1000

settings.register_profile("ci", max_examples=FULL, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=FULL // 10, deadline=None)
settings.load_profile("dev")


def examples(n: int) -> int:
    """``n`` examples under the ``ci`` profile, proportionally fewer (at least 10) under ``dev``."""
    return max(10, n * settings.default.max_examples // FULL)
