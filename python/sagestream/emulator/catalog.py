"""Model specs (``demo``, ``demo:FORMAT``, ``echo``, ``http://host:port``) to models."""

from __future__ import annotations

from .demo import DemoModel
from .faults import FORMATS
from .models import EchoModel, Model, ProxyModel

__all__ = ["BUILTIN_MODELS", "check_model_spec", "make_model"]

#: Built-in model names (anything else must be an ``http://host:port`` container URL).
BUILTIN_MODELS = ("demo", "echo")
_EXPECTED = "expected demo, demo:FORMAT (FORMAT: " + "|".join(FORMATS) + "), echo or http://host:port"


def check_model_spec(spec: str) -> str:
    """``spec`` if it names a model; ValueError saying what is expected otherwise."""
    name, sep, fmt = spec.partition(":")
    if spec.startswith(("http://", "https://")) or spec == "echo":
        return spec
    if name == "demo" and (not sep or fmt in FORMATS):
        return spec
    raise ValueError(f"unknown model {spec!r}: {_EXPECTED}")


def make_model(spec: str) -> Model:
    """``demo`` | ``demo:FORMAT`` | ``echo`` | ``http://host:port`` → a model."""
    check_model_spec(spec)
    if spec.startswith(("http://", "https://")):
        return ProxyModel(spec)
    if spec == "echo":
        return EchoModel()
    return DemoModel(spec.partition(":")[2] or None)
