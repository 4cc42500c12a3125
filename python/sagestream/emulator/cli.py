"""Subcommands of the ``sagestream`` command (placeholder until implemented)."""

from __future__ import annotations

from typing import Any


def register(subparsers: Any) -> None:
    """Add this module's subcommands to the ``sagestream`` parser."""
