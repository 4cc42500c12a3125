"""Both clients on one core (``sagestream._base.BaseClient``): one constructor, and public
methods whose signatures, declared once on the core, stay in step."""

from __future__ import annotations

import inspect

import pytest
import sagestream
from sagestream._base import BaseClient

OPERATIONS = ("invoke", "invoke_stream", "invoke_async", "invoke_bidirectional", "from_boto3")


def _parameters(function: object) -> list[tuple[str, object, object]]:
    signature = inspect.signature(function)  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


def test_both_clients_are_built_by_the_one_core() -> None:
    assert issubclass(sagestream.Client, BaseClient)
    assert issubclass(sagestream.AsyncClient, BaseClient)
    assert sagestream.Client.__init__ is sagestream.AsyncClient.__init__ is BaseClient.__init__


@pytest.mark.parametrize("name", OPERATIONS)
def test_each_operation_takes_the_same_parameters_on_both_clients(name: str) -> None:
    assert _parameters(getattr(sagestream.Client, name)) == _parameters(getattr(sagestream.AsyncClient, name))


@pytest.mark.parametrize("name", ["invoke", "invoke_async"])
def test_the_async_clients_coroutine_methods_are_coroutine_functions(name: str) -> None:
    # Frameworks pick how to call a callable by asking (Starlette, LangChain's tools): the
    # declared-once operations must still be coroutine functions on AsyncClient, on every Python.
    method = getattr(sagestream.AsyncClient, name)
    assert inspect.iscoroutinefunction(method)
    assert not inspect.iscoroutinefunction(getattr(sagestream.Client, name))


def test_a_bad_session_is_refused_alike() -> None:
    for cls in (sagestream.Client, sagestream.AsyncClient):
        with pytest.raises(TypeError, match=r"session must be a boto3\.Session"):
            cls("us-east-1")  # type: ignore[arg-type]
