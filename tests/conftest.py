"""Shared pytest configuration. Fixtures live in plugin modules next to this file."""

from __future__ import annotations

# Registers the hypothesis profiles (`dev` by default, `ci` with --hypothesis-profile=ci).
import _hypothesis  # noqa: F401

# The emulator fixtures (`emulator`, boto3 clients against it) used by the client, async and
# emulator tests.
pytest_plugins = ["_emulator_fixtures", "_duplex_fixtures"]
