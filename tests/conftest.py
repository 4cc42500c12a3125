"""Shared pytest configuration. Fixtures live in plugin modules next to this file."""

from __future__ import annotations

import os
from pathlib import Path

# Registers the hypothesis profiles (`dev` by default, `ci` with --hypothesis-profile=ci).
import _hypothesis  # noqa: F401

# The emulator fixtures (`emulator`, boto3 clients against it) used by the client, async and
# emulator tests.
pytest_plugins = ["_emulator_fixtures", "_duplex_fixtures"]

# .ci/test-wheel runs the suite against an installed wheel: the package under test must be that
# one, never the source tree's python/.
if os.environ.get("SAGESTREAM_EXPECT_INSTALLED"):
    import sagestream

    _where = Path(sagestream.__file__).resolve()
    if "site-packages" not in _where.parts:
        raise RuntimeError(f"SAGESTREAM_EXPECT_INSTALLED is set but sagestream comes from {_where}")
